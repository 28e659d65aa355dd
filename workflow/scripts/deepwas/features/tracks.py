"""Track store: bigWig tracks converted to per-chromosome memory-mapped arrays, and the per-variant gather.

Store layout: see `formats.track_store` (one `{chrom}.npy` [chrom_len, n_tracks] per chromosome + `tracks.json`).

Why position-major ``[chrom_len, n_tracks]``: one variant's window ``[w, n_tracks]`` is then ONE contiguous
block of ``w * n_tracks * itemsize`` bytes (256 x 165 x 2 = 84 kB), and the windows of neighbouring variants
(13,000 variants in 3 Mb are ~230 bp apart) overlap or touch, so a whole LD window's gather streams through
the file almost sequentially. A track-major ``[n_tracks, chrom_len]`` layout would need ``n_tracks``
separate 512-byte reads per variant, spread over ``n_tracks`` regions of the file that lie a chromosome apart.
The transpose to the model's ``[n, d_func, w]`` happens on the small in-memory result.

Window convention
-----------------
For a variant at 1-based GRCh38 position ``p``, ``gather_windows`` returns the positions
``p - w//2, ..., p + (w - w//2) - 1`` (1-based), so **index ``w // 2`` holds the variant's own base**
(index 128 for w = 256; App. B.1's centre slice 113..143 then covers 15 bases left and right).
Positions before the chromosome start or past its end are 0. Unmapped variants (position <= 0, masked, or
a chromosome absent from the store) get an all-zero window and ``missing = True``; they never receive
another variant's values.

Values: NaN and gaps in a bigWig become 0 (counted in the build report as ``n_nan_or_gap``); eCLIP tracks
are summed (gaps as 0) into one ``all_eCLIP`` track at the position of the first eCLIP track in the manifest
(App. D.3).
"""
from __future__ import annotations

import hashlib
import os
from pathlib import Path
from typing import Iterable, Sequence

import numpy as np

from ..formats.track_store import STORE_FORMAT, TrackStore, TrackStoreError, chromosome_array_writer, write_store_meta
from ..formats.track_store import open_track_store  # noqa: F401  (the store's reader, re-exported beside the builder)

F16_MAX = float(np.finfo(np.float16).max)


def md5sum(path, chunk: int = 1 << 22) -> str:
    h = hashlib.md5()
    with open(path, "rb") as fh:
        while True:
            b = fh.read(chunk)
            if not b:
                break
            h.update(b)
    return h.hexdigest()


def _plan_tracks(bigwigs: Sequence[tuple[str, str]], eclip_group: Iterable[str] | None, eclip_name: str):
    """Return the output track list: [(output_name, [source paths...])] in manifest order."""
    names = [n for n, _ in bigwigs]
    dup = sorted({n for n in names if names.count(n) > 1})
    if dup:
        raise TrackStoreError(f"duplicate track names in the manifest: {dup}")
    group = set(eclip_group or ())
    unknown = group - set(names)
    if unknown:
        raise TrackStoreError(f"eclip_group names not in the manifest: {sorted(unknown)}")
    if eclip_name in names and group:
        raise TrackStoreError(f"track name {eclip_name!r} is reserved for the summed eCLIP track")
    plan: list[tuple[str, list[tuple[str, str]]]] = []
    placed = False
    for name, path in bigwigs:
        if name in group:
            if not placed:
                plan.append((eclip_name, [(n, p) for n, p in bigwigs if n in group]))
                placed = True
        else:
            plan.append((name, [(name, path)]))
    return plan


def build_track_store(
    bigwigs: Sequence[tuple[str, str]],
    chrom_sizes: dict[str, int],
    out_dir,
    dtype=np.float16,
    eclip_group: Iterable[str] | None = None,
    eclip_name: str = "all_eCLIP",
    block: int = 1 << 20,
    checksums: dict[str, str] | None = None,
) -> dict:
    """Convert bigWigs (``[(name, path), ...]`` in manifest order) into a store under ``out_dir``.

    ``chrom_sizes``: GRCh38 chromosome lengths; the store holds exactly these chromosomes (a chromosome a
    bigWig lacks is all 0 for that track, with coverage 0 in the report). ``checksums`` may pass known md5s
    (e.g. from a download lock file) to skip re-hashing; they are verified against nothing here.
    Processes ``block`` positions at a time for all tracks, so memory is ``block * n_tracks * 8`` bytes and
    each store file is written sequentially. Returns the metadata also written to ``tracks.json``.
    """
    import pyBigWig

    dtype = np.dtype(dtype)
    if dtype not in (np.dtype(np.float16), np.dtype(np.float32)):
        raise TrackStoreError(f"dtype must be float16 or float32, not {dtype}")
    out_dir = Path(out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    plan = _plan_tracks(bigwigs, eclip_group, eclip_name)
    n_tracks = len(plan)
    sources = {}
    for name, path in bigwigs:
        if not Path(path).exists():
            raise TrackStoreError(f"{path}: bigWig for track {name!r} does not exist")
        sources[name] = {"path": str(path), "md5": (checksums or {}).get(name) or md5sum(path)}

    handles = {}
    try:
        for name, path in bigwigs:
            bw = pyBigWig.open(str(path))
            if bw is None or not bw.isBigWig():
                raise TrackStoreError(f"{path}: not a readable bigWig (track {name!r})")
            handles[name] = bw
        report = {
            out: {"covered_bases": 0, "n_nan_or_gap": 0, "n_clipped_float16": 0, "chroms_missing": [],
                  "sources": [s for s, _ in members]}
            for out, members in plan
        }
        for chrom, L in chrom_sizes.items():
            L = int(L)
            with chromosome_array_writer(out_dir, chrom, (L, n_tracks), dtype) as arr:
                for j, (out, members) in enumerate(plan):
                    for src, _ in members:
                        if chrom not in handles[src].chroms():
                            report[out]["chroms_missing"].append(f"{src}:{chrom}")
                for s in range(0, L, block):
                    e = min(L, s + block)
                    buf = np.zeros((e - s, n_tracks), dtype=np.float64)
                    for j, (out, members) in enumerate(plan):
                        covered = np.zeros(e - s, dtype=bool)
                        for src, _ in members:
                            bw = handles[src]
                            bw_len = bw.chroms().get(chrom)
                            if bw_len is None or s >= bw_len:
                                continue
                            ee = min(e, bw_len)
                            v = np.asarray(bw.values(chrom, s, ee, numpy=True), dtype=np.float64)
                            ok = np.isfinite(v)
                            covered[: ee - s] |= ok
                            buf[: ee - s, j] += np.where(ok, v, 0.0)
                        n_cov = int(covered.sum())
                        report[out]["covered_bases"] += n_cov
                        report[out]["n_nan_or_gap"] += (e - s) - n_cov
                    if dtype == np.float16:
                        big = np.abs(buf) > F16_MAX
                        if big.any():
                            cols = np.nonzero(big.any(axis=0))[0]
                            for j in cols:
                                report[plan[j][0]]["n_clipped_float16"] += int(big[:, j].sum())
                            np.clip(buf, -F16_MAX, F16_MAX, out=buf)
                    arr[s:e] = buf.astype(dtype)
    finally:
        for bw in handles.values():
            bw.close()

    meta = {
        "format": STORE_FORMAT,
        "layout": "position_major",
        "shape": "[chrom_len, n_tracks]",
        "dtype": dtype.name,
        "track_names": [out for out, _ in plan],
        "chrom_sizes": {c: int(L) for c, L in chrom_sizes.items()},
        "sources": sources,
        "eclip_group": {"name": eclip_name, "members": sorted(set(eclip_group or ()))} if eclip_group else None,
        "window_convention": "index w//2 holds the variant's 1-based GRCh38 position p; index k holds p - w//2 + k",
        "gap_value": 0.0,
        "build_report": report,
    }
    write_store_meta(out_dir, meta)
    return meta


def _as_positions(pos) -> np.ndarray:
    """1-based positions as int64, with masked / negative / zero entries set to -1 (unmapped)."""
    if np.ma.isMaskedArray(pos):
        p = np.asarray(pos.filled(-1), dtype=np.int64)
    else:
        p = np.asarray(pos)
        if p.dtype.kind == "f":
            p = np.where(np.isfinite(p), p, -1).astype(np.int64)
        else:
            p = p.astype(np.int64)
    return np.where(p > 0, p, -1)


def gather_windows(store: TrackStore, chrom: str, pos_grch38, w: int = 256, dtype=np.float32, out=None):
    """Windows ``[n, d_func, w]`` around 1-based GRCh38 positions on one chromosome (see module docstring).

    ``pos_grch38``: int array (any order, duplicates allowed); -1 / 0 / masked / NaN mean unmapped.
    Returns ``(windows, missing)``; ``missing[i]`` is True for unmapped variants, whose rows are all 0.
    Vectorised: one fancy-indexed read of the memmap over variants sorted by position (so the file is
    streamed in order), then one transpose into the output.
    """
    p = _as_positions(pos_grch38)
    n = p.shape[0]
    d = store.n_tracks
    if out is None:
        out = np.zeros((n, d, w), dtype=dtype)
    else:
        if out.shape != (n, d, w):
            raise ValueError(f"out has shape {out.shape}, expected {(n, d, w)}")
        out[...] = 0
    arr = store.array(chrom)
    L = store.meta["chrom_sizes"].get(store.resolve(chrom), 0)
    missing = (p <= 0) | (p > L) if arr is not None else np.ones(n, dtype=bool)
    ok = np.nonzero(~missing)[0]
    if ok.size == 0:
        return out, missing
    order = ok[np.argsort(p[ok], kind="stable")]
    start = p[order] - 1 - w // 2                        # 0-based first index of each window
    inside = (start >= 0) & (start + w <= L)
    offs = np.arange(w, dtype=np.int64)
    # interior windows: rows are contiguous, read as [k, w, d]
    # (batched so the float16 intermediate stays small and cache-resident)
    ii = order[inside]
    ss = start[inside]
    batch = max(1, (1 << 25) // max(1, w * d * arr.itemsize))  # ~32 MB of source per batch
    for b in range(0, ii.size, batch):
        idx = ss[b:b + batch, None] + offs
        blk = arr[idx]                                   # [k, w, d] from the memmap
        dst = ii[b:b + batch]
        if dst[-1] - dst[0] == dst.size - 1 and (dst.size < 2 or np.all(np.diff(dst) == 1)):
            out[dst[0]:dst[-1] + 1] = blk.transpose(0, 2, 1)     # sorted input: plain slice, no scatter
        else:
            out[dst] = blk.transpose(0, 2, 1)
    # windows that cross a chromosome end: clip indices, zero the outside
    if (~inside).any():
        ie = order[~inside]
        idx = start[~inside, None] + offs
        valid = (idx >= 0) & (idx < L)
        blk = np.asarray(arr[np.clip(idx, 0, L - 1)], dtype=dtype)
        blk[~valid] = 0
        out[ie] = blk.transpose(0, 2, 1)
    return out, missing


def gather_windows_multi(store: TrackStore, chroms, pos_grch38, w: int = 256, dtype=np.float32):
    """Like ``gather_windows`` for variants on several chromosomes (``chroms`` an array of names)."""
    chroms = np.asarray(chroms).astype(str)
    p = _as_positions(pos_grch38)
    out = np.zeros((p.shape[0], store.n_tracks, w), dtype=dtype)
    missing = np.ones(p.shape[0], dtype=bool)
    for c in np.unique(chroms):
        sel = np.nonzero(chroms == c)[0]
        win, miss = gather_windows(store, c, p[sel], w=w, dtype=dtype)
        out[sel] = win
        missing[sel] = miss
    return out, missing


def drop_page_cache(paths) -> bool:
    """Ask the kernel to drop cached pages of these files (cold-cache benchmarks). False if unsupported."""
    if not hasattr(os, "posix_fadvise"):
        return False
    for p in paths:
        fd = os.open(p, os.O_RDONLY)
        try:
            os.fsync(fd)                     # dirty pages cannot be dropped
            os.posix_fadvise(fd, 0, 0, os.POSIX_FADV_DONTNEED)
        finally:
            os.close(fd)
    return True
