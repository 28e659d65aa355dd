"""LD windows and the tiling of cores (paper Sec. 4: core (i) and extended (i)+ variants; App. D.1).

A window `chr{c}_{start}_{end}` covers [start, end) in GRCh37 and holds the extended set (i)+ (all of
its variants). Its core (i) is the central stride: `start + (length - stride) / 2 <= pos < that + stride`
(UKBB: 3 Mb windows, 1 Mb stride, core = middle 1 Mb). The first window of a chromosome, and the first
after a gap in the window list, extends its core down to its own start; the last window, and the last
before a gap, extends it up to its own end. Then every variant that has LD lies in exactly one core.
Cores are defined only from the window file's own GRCh37 positions, never from lifted coordinates.
"""
from __future__ import annotations

import re
from dataclasses import dataclass

import numpy as np

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


def core_bounds(windows: list[Window], length: int, stride: int) -> dict[str, CoreBounds]:
    """Core position range [lo, hi) of every window, with the edge and gap extensions (every variant in exactly one core).

    Between neighbours a < b on a chromosome: consecutive windows (b.start = a.start + stride) meet at
    their natural core boundary; windows that still overlap across missing windows meet at a.end (the
    shared variants go to a, which is the only file holding the ones just before b.start); windows that
    do not overlap leave a's core open to its end and b's open to its start.
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
        for w, l, h in zip(ws, lo, hi):
            out[w.name] = CoreBounds(l, h)
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
