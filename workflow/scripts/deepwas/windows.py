"""LD windows and the tiling of cores (paper Sec. 4: core (i) and extended (i)+ variants; App. D.1).

A window `chr{c}_{start}_{end}` covers [start, end) in GRCh37 and holds the extended set (i)+ (all of
its variants). Its core (i) is the central stride: `start + (length - stride) / 2 <= pos < that + stride`
(UKBB: 3 Mb windows, 1 Mb stride, core = middle 1 Mb). The first window of a chromosome, and the first
after a gap in the window list, extends its core down to its own start; the last window, and the last
before a gap, extends it up to its own end. Then every variant that has LD lies in exactly one core.
Cores are defined only from the window file's own GRCh37 positions, never from lifted coordinates.

Long-range-LD regions (App. D.1: "we do not include regions with long-range LD in chromosomes 6, 8 and
11") are cut out of every core: a core that reaches into a region stops at its edge, and no core is
extended into or across one (its variants have no flanking window on that side). Their variants stay in
the extended sets (i)+ of the windows that hold them, as LD of the core variants, but lie in no core.
"""
from __future__ import annotations

import re
from dataclasses import dataclass

import numpy as np
import pandas as pd

_NAME = re.compile(r"^chr(?P<chrom>[0-9XY]+)_(?P<start>\d+)_(?P<end>\d+)$")


@dataclass(frozen=True, order=True)
class Window:
    chrom_order: int
    start: int
    end: int
    chrom: str

    @property
    def name(self) -> str:
        return f"chr{self.chrom}_{self.start}_{self.end}"

    @classmethod
    def parse(cls, name: str) -> "Window":
        m = _NAME.match(name)
        if not m:
            raise ValueError(f"not a window name of the form chr{{c}}_{{start}}_{{end}}: {name!r}")
        chrom = m["chrom"]
        return cls(chrom_key(chrom), int(m["start"]), int(m["end"]), chrom)


def chrom_key(chrom: str) -> int:
    return {"X": 23, "Y": 24}.get(str(chrom), None) or int(chrom)


def tile(chrom: str, chrom_length: int, length: int, stride: int, first_start: int = 1) -> list[Window]:
    """All windows of one chromosome: starts first_start, first_start + stride, ... while start < length.

    The last window is the first whose end reaches the chromosome end, so the chromosome is covered.
    """
    out, start = [], first_start
    while True:
        out.append(Window(chrom_key(chrom), start, start + length, str(chrom)))
        if start + length >= chrom_length + first_start:
            return out
        start += stride


@dataclass(frozen=True)
class CoreBounds:
    lo: float   # inclusive
    hi: float   # exclusive
    clipped: bool = False   # cut at a long-range-LD region (possibly to nothing)

    @property
    def empty(self) -> bool:
        return not self.lo < self.hi


Intervals = dict[str, list[tuple[int, int]]]


def region_intervals(regions) -> Intervals:
    """Excluded regions as 1-based half-open position intervals per chromosome.

    `regions`: records {chromosome, start, end} in the BED convention (0-based start, end exclusive), so
    chr8 8,000,000-12,000,000 excludes positions 8,000,001 ... 12,000,000, which is exactly the span of
    the UKBB windows chr8_8000001_11000001 and chr8_9000001_12000001.
    """
    out: Intervals = {}
    for r in regions or ():
        chrom = str(r["chromosome"]).removeprefix("chr")
        start, end = int(r["start"]), int(r["end"])
        if not 0 <= start < end:
            raise ValueError(f"long-range LD region {dict(r)}: need 0 <= start < end (BED convention)")
        out.setdefault(chrom, []).append((start + 1, end + 1))
    return {c: sorted(v) for c, v in out.items()}


def in_regions(chrom: str, positions: np.ndarray, excluded: Intervals | None) -> np.ndarray:
    """Mask of the positions that lie inside an excluded region of `chrom`."""
    positions = np.asarray(positions)
    mask = np.zeros(positions.shape, dtype=bool)
    for a, b in (excluded or {}).get(str(chrom), ()):
        mask |= (positions >= a) & (positions < b)
    return mask


def _cut(w: Window, lo: float, hi: float, regions) -> CoreBounds:
    """Remove the regions from the core [lo, hi) of w (only its part inside the window file matters)."""
    clipped = False
    for a, b in regions:
        eff_lo, eff_hi = max(lo, w.start), min(hi, w.end)
        if not (a < eff_hi and b > eff_lo) or eff_lo >= eff_hi:
            continue
        clipped = True
        if a <= eff_lo and b >= eff_hi:
            return CoreBounds(float(eff_lo), float(eff_lo), True)
        if a <= eff_lo:
            lo = float(b)
        elif b >= eff_hi:
            hi = float(a)
        else:
            raise ValueError(f"{w.name}: long-range LD region [{a}, {b}) lies strictly inside the core "
                             f"[{eff_lo:.0f}, {eff_hi:.0f}) and would split it; use a smaller window stride")
    return CoreBounds(lo, hi, clipped)


def core_bounds(windows: list[Window], length: int, stride: int,
                excluded: Intervals | None = None) -> dict[str, CoreBounds]:
    """Core position range [lo, hi) of every window, with the edge and gap extensions, minus `excluded`.

    Between neighbours a < b on a chromosome: consecutive windows (b.start = a.start + stride) meet at
    their natural core boundary; windows that still overlap across missing windows meet at a.end (the
    shared variants go to a, which is the only file holding the ones just before b.start); windows that
    do not overlap leave a's core open to its end and b's open to its start. Then the excluded regions
    (`region_intervals`) are cut out: a core stops at a region's edge, or is empty inside one. Every
    position outside the regions that lies in some window file still lies in exactly one core.
    """
    offset = (length - stride) // 2
    out: dict[str, CoreBounds] = {}
    by_chrom: dict[str, list[Window]] = {}
    for w in windows:
        by_chrom.setdefault(w.chrom, []).append(w)
    for ws in by_chrom.values():
        ws = sorted(ws)
        lo = [float(w.start + offset) for w in ws]
        hi = [float(w.start + offset + stride) for w in ws]
        lo[0], hi[-1] = -np.inf, np.inf
        for k in range(len(ws) - 1):
            a, b = ws[k], ws[k + 1]
            if b.start == a.start + stride:
                continue
            if b.start < a.end:
                hi[k] = lo[k + 1] = float(a.end)
            else:
                hi[k], lo[k + 1] = np.inf, -np.inf
        regions = (excluded or {}).get(ws[0].chrom, [])
        for w, l, h in zip(ws, lo, hi):
            out[w.name] = _cut(w, l, h, regions) if regions else CoreBounds(l, h)
    return out


def core_mask(positions: np.ndarray, bounds: CoreBounds) -> np.ndarray:
    positions = np.asarray(positions)
    return (positions >= bounds.lo) & (positions < bounds.hi)


def random_block(positions: np.ndarray, max_variants: int, margin: float, rng: np.random.Generator):
    """Reduced (i)+ ablation (paper App. A.3): a random run of at most `max_variants` contiguous variants of a
    window (indices into `positions`, which are sorted) and the mask of its core, the variants at least `margin`
    bp from both ends of the run. Cores of different windows need not tile the chromosome."""
    positions = np.asarray(positions)
    m = len(positions)
    k = min(m, int(max_variants))
    start = int(rng.integers(0, m - k + 1)) if m else 0
    idx = np.arange(start, start + k)
    p = positions[idx]
    core = (p >= p[0] + margin) & (p <= p[-1] - margin) if k else np.zeros(0, dtype=bool)
    return idx, core


CORE_TABLE_COLUMNS = ["window", "chromosome", "core_start", "core_end", "status"]


def core_table(manifest: pd.DataFrame, length: int, stride: int, excluded: Intervals | None = None) -> pd.DataFrame:
    """The window table: every manifest window with its core [core_start, core_end) and a status.

    `manifest`: columns name, chromosome, start, end, kind ('npz' windows are used; 'npz2' long-range-LD
    and 'absent' windows are listed as excluded). core_start / core_end are the core bounds within the
    window's own file (1-based, end exclusive; empty for windows without a core). Status: `ok`,
    `clipped: long-range LD`, `no core: long-range LD`, `excluded: long-range LD (npz2)`,
    `excluded: absent`.
    """
    used = manifest[manifest["kind"] == "npz"]
    wins = [Window.parse(n) for n in used["name"]]
    bounds = core_bounds(wins, length, stride, excluded)
    rows = []
    for name, chrom, kind in zip(manifest["name"], manifest["chromosome"].astype(str), manifest["kind"]):
        w = Window.parse(name)
        if kind != "npz":
            status = "excluded: long-range LD (npz2)" if kind == "npz2" else f"excluded: {kind}"
            rows.append((name, chrom, pd.NA, pd.NA, status))
            continue
        b = bounds[name]
        if b.empty:
            rows.append((name, chrom, pd.NA, pd.NA, "no core: long-range LD"))
            continue
        status = "clipped: long-range LD" if b.clipped else "ok"
        rows.append((name, chrom, int(max(b.lo, w.start)), int(min(b.hi, w.end)), status))
    out = pd.DataFrame(rows, columns=CORE_TABLE_COLUMNS)
    return out.astype({"core_start": "Int64", "core_end": "Int64"})


def owner_windows(positions: list[np.ndarray], keys: list[np.ndarray], windows: list[Window],
                  bounds: dict[str, CoreBounds]) -> list[np.ndarray]:
    """For each window's variants, the index (into `windows`) of the window whose LD score they take.

    A variant's LD score (l_m = sum_k R_mk^2, paper Sec. 2.2 and App. A.4) is computed in its own core
    window, the window whose core holds it, so that it is one number whichever window's extended set
    (i)+ the variant appears in, and never one truncated by a file edge. A variant in no core (inside a
    long-range-LD region) takes it from the window that holds it most centrally (largest distance to
    the window's edges; ties: the earlier window). Variants are identified by `keys` across windows.
    """
    frames = []
    for k, (pos, key, w) in enumerate(zip(positions, keys, windows)):
        pos = np.asarray(pos)
        frames.append(pd.DataFrame({"key": key, "k": k, "in_core": core_mask(pos, bounds[w.name]),
                                    "central": np.minimum(pos - w.start, w.end - pos)}))
    if not frames:
        return []
    df = pd.concat(frames, ignore_index=True)
    best = (df.sort_values(["key", "in_core", "central", "k"], ascending=[True, False, False, True], kind="stable")
              .drop_duplicates("key").set_index("key")["k"])
    return [best.reindex(np.asarray(key)).to_numpy(dtype=np.int64) for key in keys]
