"""Synthetic features for the demo cohort: bigWig tracks in GRCh38 coordinates and a UCSC chain file from
the demo's GRCh37 coordinates to them (the App. B.1 truth that reads them is in `truths`).

The demo then exercises the real path: GRCh37 variant -> pyliftover with the chain -> GRCh38 position ->
track store -> [d_func, w] window -> a ground-truth log f that depends on the track values around the
variant, so a model that reads tracks can beat one that cannot.
"""
from __future__ import annotations

import gzip
from pathlib import Path

import numpy as np

from ..io import atomic_path

TRACK_KINDS = ("peaks", "conservation", "sparse_signal", "eclip")


# ----------------------------------------------------------------------------------------------- chain
def write_synthetic_chain(path, chrom_sizes_hg19: dict[str, int], seed: int = 0, n_blocks: int = 3,
                          max_insert: int = 20_000, gap_bp: int = 2_000, gap_chrom: str | None = None) -> dict:
    """Write a gzipped UCSC chain mapping GRCh37 (target, ``t``) to synthetic GRCh38 (query, ``q``).

    Each chromosome is cut into ``n_blocks`` aligned blocks; GRCh38 gains an insertion of 1..max_insert bp
    before the first block and between blocks, so lifted positions move by a different offset per block.
    On ``gap_chrom`` (default: the first chromosome) one source gap of ``gap_bp`` bases in the middle of the
    chromosome is unaligned (``dt = gap_bp, dq = 0``): variants there are unmapped. Same chromosome names in
    both builds, + strand. Returns ``{"grch38_sizes": {...}, "blocks": [(chrom, t_start, t_end, q_start)],
    "unmapped": [(chrom, t_start, t_end)]}`` with 0-based half-open coordinates.
    """
    rng = np.random.default_rng(seed)
    gap_chrom = gap_chrom if gap_chrom is not None else next(iter(chrom_sizes_hg19))
    sizes38, blocks, unmapped = {}, [], []
    lines = []
    for cid, (chrom, L) in enumerate(chrom_sizes_hg19.items(), start=1):
        L = int(L)
        cuts = np.sort(rng.choice(np.arange(L // 10, L - L // 10), size=n_blocks - 1, replace=False)) \
            if n_blocks > 1 else np.array([], dtype=int)
        edges = [0] + [int(c) for c in cuts] + [L]
        segs = []  # (t_start, t_end, dt_after)
        gap_at = None
        if chrom == gap_chrom and gap_bp > 0:
            mid = L // 2
            k = int(np.searchsorted(edges, mid, side="right")) - 1
            gap_at = (max(edges[k] + 1, mid - gap_bp // 2), min(edges[k + 1] - 1, mid - gap_bp // 2 + gap_bp))
        for k in range(len(edges) - 1):
            a, b = edges[k], edges[k + 1]
            if gap_at and a < gap_at[0] < b:
                segs.append((a, gap_at[0]))
                segs.append((gap_at[1], b))
            else:
                segs.append((a, b))
        q = int(rng.integers(1, max_insert + 1))
        q_start0 = q
        body = []
        for i, (a, b) in enumerate(segs):
            blocks.append((chrom, a, b, q))
            q += b - a
            if i + 1 < len(segs):
                na = segs[i + 1][0]
                dt = na - b
                if dt > 0:
                    unmapped.append((chrom, b, na))
                    dq = 0
                else:
                    dq = int(rng.integers(1, max_insert + 1))
                body.append(f"{b - a}\t{dt}\t{dq}")
                q += dq
            else:
                body.append(f"{b - a}")
        q_end = q
        qsize = q_end + int(rng.integers(1, max_insert + 1))
        sizes38[chrom] = qsize
        lines.append(f"chain 1000 {chrom} {L} + 0 {L} {chrom} {qsize} + {q_start0} {q_end} {cid}")
        lines.extend(body)
        lines.append("")
    with atomic_path(path) as tmp:
        with gzip.open(tmp, "wt") as fh:
            fh.write("\n".join(lines) + "\n")
    return {"grch38_sizes": sizes38, "blocks": blocks, "unmapped": unmapped}


# ---------------------------------------------------------------------------------------------- tracks
def _smooth(x: np.ndarray, width: int) -> np.ndarray:
    k = np.ones(width) / width
    return np.convolve(x, k, mode="same")


def _track_values(kind: str, L: int, rng: np.random.Generator, bin_bp: int) -> tuple[np.ndarray, np.ndarray]:
    """Per-bin values (NaN = no data) for one chromosome, bins of ``bin_bp``."""
    nb = (L + bin_bp - 1) // bin_bp
    if kind == "conservation":            # phyloP-like: smooth, mostly slightly positive, conserved stretches
        x = _smooth(rng.normal(0, 1, nb), 25) * 5
        x += np.where(_smooth((rng.random(nb) < 0.01).astype(float), 15) > 0, 3.0, 0.0)
        x[rng.random(nb) < 0.002] = np.nan          # rare unaligned bins
        return x
    if kind in ("peaks", "eclip"):        # ChIP / eCLIP-like: sparse bursts of a few hundred bp
        rate = 0.004 if kind == "peaks" else 0.001
        centres = np.nonzero(rng.random(nb) < rate)[0]
        x = np.full(nb, np.nan)
        for c in centres:
            half = int(rng.integers(3, 30))
            h = rng.gamma(2.0, 4.0)
            idx = np.arange(max(0, c - half), min(nb, c + half + 1))
            v = h * np.exp(-0.5 * ((idx - c) / (half / 2 + 1)) ** 2)
            x[idx] = np.fmax(x[idx], v)
        return x
    if kind == "sparse_signal":           # CAGE-like: mostly 0, rare short spikes of high TPM
        x = np.zeros(nb)
        hits = rng.random(nb) < 0.002
        x[hits] = rng.lognormal(1.0, 1.0, hits.sum())
        return x
    raise ValueError(f"unknown track kind {kind!r}")


def write_synthetic_bigwigs(out_dir, chrom_sizes_grch38: dict[str, int], n_tracks: int = 8, seed: int = 0,
                            bin_bp: int = 4, n_eclip: int = 2) -> list[tuple[str, str]]:
    """Write ``n_tracks`` + ``n_eclip`` bigWigs (GRCh38) and return the manifest ``[(name, path)]``.

    Kinds cycle through peaks / conservation / sparse_signal; the last ``n_eclip`` are eCLIP-like and named
    ``eclip_{k}`` so ``build_track_store(..., eclip_group=[n for n, _ in manifest if n.startswith("eclip_")])``
    sums them into ``all_eCLIP``. Values are constant over bins of ``bin_bp`` bases; NaN bins are gaps.
    """
    import pyBigWig

    out_dir = Path(out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    rng = np.random.default_rng(seed)
    kinds = [TRACK_KINDS[k % 3] for k in range(n_tracks)] + ["eclip"] * n_eclip
    manifest = []
    for k, kind in enumerate(kinds):
        name = f"eclip_{k - n_tracks}" if kind == "eclip" else f"{kind}_{k}"
        path = out_dir / f"{name}.bw"
        with atomic_path(path) as tmp:
            bw = pyBigWig.open(str(tmp), "w")
            bw.addHeader([(c, int(L)) for c, L in chrom_sizes_grch38.items()], maxZooms=0)
            for c, L in chrom_sizes_grch38.items():
                L = int(L)
                x = _track_values(kind, L, rng, bin_bp).astype(np.float64)
                ok = np.nonzero(np.isfinite(x))[0]
                if ok.size == 0:
                    continue
                starts = ok * bin_bp
                ends = np.minimum(starts + bin_bp, L)
                bw.addEntries([c] * ok.size, starts.astype(np.int64).tolist(), ends=ends.astype(np.int64).tolist(),
                              values=x[ok].tolist())
            bw.close()
        manifest.append((name, str(path)))
    return manifest
