"""GRCh37 -> GRCh38 liftover of variant positions with pyliftover (paper App. D.3: the tracks are in GRCh38).

pyliftover works on 0-based coordinates: a 1-based GRCh37 position p is converted as p - 1 and the
result converted back with + 1. Each variant gets a GRCh38 position or NA plus a status:

    ok              exactly one hit, on the same chromosome
    unmapped        no hit (deleted or unaligned in hg38)
    multiple        more than one hit: ambiguous, left NA
    other_chrom     one hit on another chromosome: left NA (features would come from the wrong place)
    unknown_chrom   the chromosome is not in the chain file

Unmapped variants are never given a sentinel or a neighbour's position: they keep their GRCh37 row
(LD windows and cores are defined on GRCh37) and get missing-feature handling downstream; the counts
are in the report. The chain file is a pipeline input, never fetched here.
"""
from __future__ import annotations

import gzip
from pathlib import Path

import numpy as np
import pandas as pd

STATUSES = ("ok", "unmapped", "multiple", "other_chrom", "unknown_chrom")


def load_chain(path):
    from pyliftover import LiftOver

    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(f"{path}: chain file not found (download rule 'chain' makes it)")
    with open(path, "rb") as fh:
        gz = fh.read(2) == b"\x1f\x8b"
    with (gzip.open(path, "rb") if gz else open(path, "rb")) as fh:
        return LiftOver(fh)


def lift_positions(chrom, pos, lo) -> pd.DataFrame:
    """Lift 1-based GRCh37 positions; returns columns CHR38 (str or ''), POS38 (Int64, NA) and status."""
    chrom = pd.Series(chrom).astype(str).str.replace(r"^chr", "", regex=True).to_numpy()
    pos = np.asarray(pos, dtype=np.int64)
    out_pos = np.full(len(pos), -1, dtype=np.int64)
    out_chr = np.empty(len(pos), dtype=object)
    out_chr[:] = ""
    status = np.empty(len(pos), dtype=object)
    for i, (c, p) in enumerate(zip(chrom, pos)):
        hits = lo.convert_coordinate(f"chr{c}", int(p) - 1)
        if hits is None:
            status[i] = "unknown_chrom"
        elif len(hits) == 0:
            status[i] = "unmapped"
        elif len(hits) > 1:
            status[i] = "multiple"
        elif hits[0][0] != f"chr{c}":
            status[i] = "other_chrom"
        else:
            status[i] = "ok"
            out_chr[i] = c
            out_pos[i] = int(hits[0][1]) + 1
    res = pd.DataFrame({"CHR38": out_chr, "POS38": pd.array(out_pos, dtype="Int64"), "liftover_status": status})
    res.loc[res["liftover_status"] != "ok", "POS38"] = pd.NA
    return res


def liftover_table(df: pd.DataFrame, lo, chrom_col: str = "chromosome", pos_col: str = "position") -> tuple[pd.DataFrame, dict]:
    """Add CHR38/POS38/liftover_status to a variant table; report counts per status. Rows are never dropped."""
    lifted = lift_positions(df[chrom_col], df[pos_col], lo)
    out = pd.concat([df.reset_index(drop=True), lifted], axis=1)
    counts = out["liftover_status"].value_counts()
    report = {s: int(counts.get(s, 0)) for s in STATUSES}
    report["variants"] = int(len(out))
    return out, report
