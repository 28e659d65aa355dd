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


# --- long-range-LD regions (paper App. D.1) on the shipped UKBB manifest ------------------------------------

import sys                                                                     # noqa: E402
from pathlib import Path                                                       # noqa: E402

import pandas as pd                                                            # noqa: E402
import yaml                                                                    # noqa: E402

from deepwas.windows import core_table, in_regions, owner_windows, region_intervals   # noqa: E402

ROOT = Path(__file__).resolve().parents[1]
SCHEMA_LD = yaml.safe_load((ROOT / "config/schema/config.schema.yaml").read_text())["properties"]["ld"]["properties"]
REGIONS = SCHEMA_LD["long_range_regions"]["default"]
PRICE = {"6": (25_500_000, 33_500_000), "8": (8_000_000, 12_000_000), "11": (46_000_000, 57_000_000)}


def _shipped():
    return pd.read_csv(ROOT / "resources/ukbb_ld_windows.tsv", sep="\t", dtype={"chromosome": str})


@pytest.fixture(scope="module")
def cores_tsv(tmp_path_factory):
    """results/windows/cores.tsv as the window_table rule writes it from the shipped manifest."""
    sys.path.insert(0, str(ROOT / "workflow/scripts"))
    from window_table import main
    out = tmp_path_factory.mktemp("windows") / "cores.tsv"
    main(str(ROOT / "resources/ukbb_ld_windows.tsv"), [], out, SCHEMA_LD["window_length"]["default"],
         SCHEMA_LD["window_stride"]["default"], REGIONS)
    return pd.read_csv(out, sep="\t", dtype={"chromosome": str})


def test_default_regions_are_the_long_range_ld_regions():
    assert {r["chromosome"]: (r["start"], r["end"]) for r in REGIONS} == PRICE
    ex = region_intervals(REGIONS)
    assert ex["8"] == [(8_000_001, 12_000_001)]           # BED: positions 8,000,001 .. 12,000,000
    assert in_regions("8", np.array([8_000_000, 8_000_001, 12_000_000, 12_000_001]), ex).tolist() == [
        False, True, True, False]
    with pytest.raises(ValueError, match="start < end"):
        region_intervals([{"chromosome": "6", "start": 10, "end": 10}])


def test_no_core_in_a_long_range_region(cores_tsv):
    man = _shipped()
    assert len(cores_tsv) == len(man) and list(cores_tsv["window"]) == list(man["name"])
    ok = cores_tsv.dropna(subset=["core_start"])
    for chrom, (a, b) in PRICE.items():
        c = ok[ok["chromosome"] == chrom]
        hit = c[(c["core_start"] < b + 1) & (c["core_end"] > a + 1)]
        assert hit.empty, hit
    st = cores_tsv.set_index("window")
    # the windows of the review: their gap extension no longer reaches into chr8 8-12 Mb
    for w in ("chr8_7000001_10000001", "chr8_10000001_13000001", "chr6_25000001_28000001",
              "chr11_45000001_48000001", "chr11_46000001_49000001", "chr11_55000001_58000001"):
        assert st.at[w, "status"] == "no core: long-range LD" and pd.isna(st.at[w, "core_start"])
    assert (st.at["chr8_6000001_9000001", "core_start"], st.at["chr8_6000001_9000001", "core_end"]) == (7_000_001, 8_000_001)
    assert (st.at["chr8_11000001_14000001", "core_start"], st.at["chr8_11000001_14000001", "core_end"]) == (12_000_001, 13_000_001)
    assert (st.at["chr6_24000001_27000001", "core_end"], st.at["chr6_24000001_27000001", "status"]) == (25_500_001, "clipped: long-range LD")
    # chr6 33.5-35 Mb lies in npz2 windows but outside the region: the next npz window's core takes it, up to the region
    assert (st.at["chr6_33000001_36000001", "core_start"], st.at["chr6_33000001_36000001", "core_end"]) == (33_500_001, 35_000_001)
    assert cores_tsv["status"].value_counts().to_dict() == {
        "ok": 2755, "excluded: absent": 117, "excluded: long-range LD (npz2)": 14, "no core: long-range LD": 6,
        "clipped: long-range LD": 2}


def test_every_position_outside_the_regions_in_exactly_one_core(cores_tsv):
    man = _shipped()
    npz = man[man["kind"] == "npz"]
    ex = region_intervals(REGIONS)
    swept = 0
    for chrom, wins in npz.groupby("chromosome"):
        cores = cores_tsv[(cores_tsv["chromosome"] == chrom)].dropna(subset=["core_start"])
        edges = np.r_[wins["start"], wins["end"], wins["start"] + 1_000_000, wins["start"] + 2_000_000,
                      [b for ab in ex.get(chrom, []) for b in ab]]
        pos = np.unique(np.r_[np.arange(wins["start"].min(), wins["end"].max(), 7_919), edges - 1, edges, edges + 1])
        in_file = np.zeros(pos.size, bool)
        for s, e in zip(wins["start"], wins["end"]):
            in_file |= (pos >= s) & (pos < e)
        pos = pos[in_file]
        count = np.zeros(pos.size, int)
        for s, e in zip(cores["core_start"], cores["core_end"]):
            count += (pos >= s) & (pos < e)
        inside = in_regions(chrom, pos, ex)
        assert np.all(count[inside] == 0), pos[inside & (count != 0)][:5]
        bad = pos[~inside & (count != 1)]
        assert bad.size == 0, (chrom, bad[:5], np.unique(count[~inside & (count != 1)]))
        swept += pos.size
    assert swept > 350_000


def test_absent_windows_still_extend_their_neighbours(cores_tsv):
    """Centromere gaps (windows absent from the bucket, outside the regions) extend the cores as before."""
    man = _shipped().set_index("name")
    st = cores_tsv.set_index("window")
    gaps = []
    for chrom, wins in man[man["kind"] == "npz"].groupby("chromosome"):
        ws = sorted(Window.parse(n) for n in wins.index)
        # acrocentric chromosomes (13-15, 21, 22) start with absent windows: the first core reaches down to its start
        assert st.at[ws[0].name, "core_start"] == ws[0].start and st.at[ws[-1].name, "core_end"] == ws[-1].end
        for a, b in zip(ws, ws[1:]):
            if b.start == a.start + STRIDE or st.at[a.name, "status"] != "ok" or st.at[b.name, "status"] != "ok":
                continue
            gaps.append(chrom)
            if b.start < a.end:
                assert st.at[a.name, "core_end"] == a.end == st.at[b.name, "core_start"]
            else:
                assert st.at[a.name, "core_end"] == a.end and st.at[b.name, "core_start"] == b.start
    assert sorted(gaps) == ["1", "16", "9"]      # the centromere gaps among the 117 absent windows


def test_region_cuts_a_small_tiling():
    ws = tile("1", CHROM_LENGTH, LENGTH, STRIDE)
    ex = {"1": [(6_500_001, 9_000_001)]}
    b = core_bounds(ws, LENGTH, STRIDE, ex)
    by = {w.start: b[w.name] for w in ws}
    assert (by[5_000_001].lo, by[5_000_001].hi, by[5_000_001].clipped) == (6_000_001, 6_500_001, True)
    assert by[6_000_001].empty and by[7_000_001].empty
    assert (by[8_000_001].lo, by[8_000_001].hi) == (9_000_001, 10_000_001) and not by[8_000_001].clipped
    # a region dropped from the window list (npz2): the neighbours extend up to the region, never across it
    kept = [w for w in ws if w.start not in (6_000_001, 7_000_001)]
    b = core_bounds(kept, LENGTH, STRIDE, ex)
    assert (b[ws[5].name].lo, b[ws[5].name].hi) == (6_000_001, 6_500_001)
    assert (b[ws[8].name].lo, b[ws[8].name].hi) == (9_000_001, 10_000_001)
    with pytest.raises(ValueError, match="strictly inside the core"):
        core_bounds(ws, LENGTH, STRIDE, {"1": [(6_200_001, 6_300_001)]})


def test_owner_is_the_core_window_else_the_most_central():
    ws = tile("1", 6_000_000, LENGTH, STRIDE)
    ex = {"1": [(3_000_001, 3_400_001)]}
    b = core_bounds(ws, LENGTH, STRIDE, ex)
    pos = np.array([1_500_000, 2_500_000, 3_200_000, 3_500_000])
    files = [pos[(pos >= w.start) & (pos < w.end)] for w in ws]
    keys = [np.array([f"1:{p}" for p in f]) for f in files]
    own = owner_windows(files, keys, ws, b)
    owner = {k: ws[o].start for kk, oo in zip(keys, own) for k, o in zip(kk, oo)}
    assert owner["1:1500000"] == 1 and owner["1:2500000"] == 1_000_001      # core windows
    assert owner["1:3500000"] == 2_000_001
    # 3.2 Mb is in the region (no core): the window holding it most centrally, chr1_2000001_5000001
    assert owner["1:3200000"] == 2_000_001
