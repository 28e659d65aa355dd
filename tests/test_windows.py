"""Window names, UKBB geometry and the tiling of cores (paper Sec. 4, App. D.1): every variant with LD is in exactly
one core, also with windows missing from the list."""
from __future__ import annotations

import numpy as np
import pytest

from deepwas.windows import Window, core_bounds, core_mask, tile

LENGTH, STRIDE = 3_000_000, 1_000_000
CHROM_LENGTH = 20_000_000


def _positions(rng, windows):
    """Random sorted positions over the chromosome plus every boundary that matters (and its neighbours)."""
    pos = rng.integers(1, CHROM_LENGTH + 1, 4000)
    edges = []
    for w in windows:
        for b in (w.start, w.start + STRIDE, w.start + 2 * STRIDE, w.end):
            edges += [b - 1, b, b + 1]
    pos = np.unique(np.r_[pos, edges, 1, CHROM_LENGTH])
    return pos[(pos >= 1) & (pos <= CHROM_LENGTH)]


def _assert_each_in_exactly_one_core(windows, rng):
    bounds = core_bounds(windows, LENGTH, STRIDE)
    assert set(bounds) == {w.name for w in windows}
    all_pos = _positions(rng, tile("1", CHROM_LENGTH, LENGTH, STRIDE))
    # the variants that have LD: union over the window files present, each file holding [start, end)
    files = {w.name: all_pos[(all_pos >= w.start) & (all_pos < w.end)] for w in windows}
    with_ld = np.unique(np.concatenate(list(files.values())))
    assert len(with_ld) > 1000
    count = np.zeros(len(with_ld), dtype=int)
    for w in windows:
        in_file = np.isin(with_ld, files[w.name])
        count += in_file & core_mask(with_ld, bounds[w.name])
    bad = with_ld[count != 1]
    assert bad.size == 0, f"positions in {np.unique(count[count != 1])} cores: {bad[:10]}"
    return bounds


def test_tile_covers_the_chromosome():
    ws = tile("1", CHROM_LENGTH, LENGTH, STRIDE)
    assert ws[0].start == 1 and ws[0].name == "chr1_1_3000001"
    assert [w.start for w in ws] == list(range(1, 17_000_002, STRIDE))
    assert ws[-1].end >= CHROM_LENGTH + 1 and ws[-2].end < CHROM_LENGTH + 1
    assert all(b.start - a.start == STRIDE for a, b in zip(ws, ws[1:]))


@pytest.mark.parametrize("seed", [0, 1, 2])
def test_full_tiling(seed):
    ws = tile("1", CHROM_LENGTH, LENGTH, STRIDE)
    bounds = _assert_each_in_exactly_one_core(ws, np.random.default_rng(seed))
    assert bounds[ws[0].name].lo == -np.inf and bounds[ws[-1].name].hi == np.inf


@pytest.mark.parametrize("missing", [
    [7],             # one window missing: neighbours still overlap (gap inside the 3 Mb)
    [0],             # first window missing
    [len(tile("1", CHROM_LENGTH, LENGTH, STRIDE)) - 1],   # last window missing
    [5, 6],          # two missing: neighbours just touch (b.start == a.end)
    [5, 6, 7],       # three missing: neighbours do not overlap
    [3, 10, 11, 12], # both kinds on one chromosome
])
@pytest.mark.parametrize("seed", [3, 4])
def test_tiling_with_gaps(missing, seed):
    ws = [w for k, w in enumerate(tile("1", CHROM_LENGTH, LENGTH, STRIDE)) if k not in missing]
    _assert_each_in_exactly_one_core(ws, np.random.default_rng(seed))


def test_gap_bounds():
    all_ws = tile("1", CHROM_LENGTH, LENGTH, STRIDE)
    ws = [w for k, w in enumerate(all_ws) if k != 7]
    b = core_bounds(ws, LENGTH, STRIDE)
    a, c = all_ws[6], all_ws[8]                     # overlapping neighbours across the gap
    assert b[a.name].hi == a.end == b[c.name].lo
    assert b[a.name].lo == a.start + STRIDE and b[c.name].hi == c.start + 2 * STRIDE
    ws = [w for k, w in enumerate(all_ws) if k not in (5, 6, 7)]
    b = core_bounds(ws, LENGTH, STRIDE)
    assert b[all_ws[4].name].hi == np.inf and b[all_ws[8].name].lo == -np.inf


def test_chromosomes_are_tiled_independently():
    ws = tile("1", 5_000_000, LENGTH, STRIDE) + tile("2", 5_000_000, LENGTH, STRIDE)
    b = core_bounds(ws, LENGTH, STRIDE)
    for c in ("1", "2"):
        mine = [w for w in ws if w.chrom == c]
        assert b[mine[0].name].lo == -np.inf and b[mine[-1].name].hi == np.inf


def test_ukbb_middle_window_core():
    ws = tile("3", CHROM_LENGTH, LENGTH, STRIDE)
    w = ws[5]
    assert w.name == "chr3_5000001_8000001"
    b = core_bounds(ws, LENGTH, STRIDE)[w.name]
    assert (b.lo, b.hi) == (w.start + 1_000_000, w.start + 2_000_000)
    pos = np.array([w.start, w.start + 999_999, w.start + 1_000_000, w.start + 1_999_999, w.start + 2_000_000])
    assert core_mask(pos, b).tolist() == [False, False, True, True, False]


@pytest.mark.parametrize("name,chrom,order", [("chr1_1_3000001", "1", 1), ("chr22_16000001_19000001", "22", 22),
                                              ("chrX_2000001_5000001", "X", 23)])
def test_window_parse_round_trip(name, chrom, order):
    w = Window.parse(name)
    assert w.name == name and w.chrom == chrom and w.chrom_order == order
    assert w.end - w.start == LENGTH
    assert Window.parse(w.name) == w


def test_windows_sort_by_chromosome_then_start():
    names = ["chr10_1_3000001", "chr2_1000001_4000001", "chr2_1_3000001", "chrX_1_3000001"]
    assert [w.name for w in sorted(map(Window.parse, names))] == [
        "chr2_1_3000001", "chr2_1000001_4000001", "chr10_1_3000001", "chrX_1_3000001"]


@pytest.mark.parametrize("bad", ["chr1_1", "1_1_3000001", "chr1_1_3000001.npz", "chr1_a_b", "chrM_1_2", ""])
def test_window_parse_bad_name(bad):
    with pytest.raises(ValueError, match="not a window name") as err:
        Window.parse(bad)
    assert repr(bad) in str(err.value)


def test_random_block_is_a_contiguous_run_with_the_core_inside_the_margin():
    """Reduced (i)+ (App. A.3): at most max_variants contiguous variants, core >= margin bp from both ends."""
    from deepwas.windows import random_block

    pos = np.cumsum(np.random.default_rng(0).integers(1, 400, size=5_000))
    idx, core = random_block(pos, 1_000, 20_000, np.random.default_rng(4))
    assert len(idx) == 1_000 and (np.diff(idx) == 1).all() and 0 <= idx[0] <= 4_000
    p = pos[idx]
    want = (p - p[0] >= 20_000) & (p[-1] - p >= 20_000)
    np.testing.assert_array_equal(core, want)
    assert 0 < core.sum() < 1_000
    again, _ = random_block(pos, 1_000, 20_000, np.random.default_rng(4))
    np.testing.assert_array_equal(idx, again)                                  # seeded
    starts = {int(random_block(pos, 1_000, 20_000, np.random.default_rng(s))[0][0]) for s in range(20)}
    assert len(starts) > 10                                                    # random runs, not one place
    small, small_core = random_block(pos[:50], 1_000, 1e9, np.random.default_rng(1))
    np.testing.assert_array_equal(small, np.arange(50))                        # the whole window when smaller
    assert not small_core.any()                                                # a margin wider than the run
