"""Synthetic demo features: chain file read by pyliftover, bigWigs, and the App. B.1 truth on them."""
import numpy as np
import pyBigWig

from deepwas.features.tracks import build_track_store, gather_windows, open_track_store
from deepwas.liftover import lift_positions, load_chain
from deepwas.simulation.tracks import write_synthetic_bigwigs, write_synthetic_chain
from deepwas.simulation.truths import calibrate_thresholds, threshold_enrichment


def lift_with_chain(chain, chroms, pos):
    """1-based GRCh38 positions through the workflow's liftover, -1 where unmapped."""
    return lift_positions(chroms, pos, load_chain(chain))["POS38"].fillna(-1).to_numpy("int64")

HG19 = {"chr1": 200_000, "chr2": 120_000}


def test_chain_maps_as_intended(tmp_path):
    info = write_synthetic_chain(tmp_path / "demo.over.chain.gz", HG19, seed=3, n_blocks=3, gap_bp=500)
    assert len(info["unmapped"]) == 1 and info["unmapped"][0][0] == "chr1"
    rng = np.random.default_rng(0)
    chroms, pos, expect = [], [], []
    for c, a, b, q in info["blocks"]:
        for p0 in np.concatenate([[a, b - 1], rng.integers(a, b, 5)]):
            chroms.append(c); pos.append(p0 + 1); expect.append(q + (p0 - a) + 1)
    _, ga, gb = info["unmapped"][0]
    chroms += ["chr1"] * 3; pos += [ga + 1, (ga + gb) // 2, gb]; expect += [-1, -1, -1]
    got = lift_with_chain(tmp_path / "demo.over.chain.gz", chroms, pos)
    np.testing.assert_array_equal(got, expect)
    for c, L in info["grch38_sizes"].items():
        assert L > HG19[c]
        assert max(q + (b - a) for cc, a, b, q in info["blocks"] if cc == c) <= L


def test_demo_path_liftover_store_gather_truth(tmp_path):
    info = write_synthetic_chain(tmp_path / "c.chain.gz", HG19, seed=1)
    man = write_synthetic_bigwigs(tmp_path / "bw", info["grch38_sizes"], n_tracks=4, seed=2, n_eclip=2)
    names = [n for n, _ in man]
    assert names == ["peaks_0", "conservation_1", "sparse_signal_2", "peaks_3", "eclip_0", "eclip_1"]
    bw = pyBigWig.open(man[1][1])
    assert bw.chroms() == info["grch38_sizes"]
    bw.close()
    build_track_store(man, info["grch38_sizes"], tmp_path / "store",
                      eclip_group=[n for n in names if n.startswith("eclip_")])
    store = open_track_store(tmp_path / "store")
    assert store.track_names[-1] == "all_eCLIP" and store.n_tracks == 5
    pos19 = np.sort(np.random.default_rng(0).integers(1, HG19["chr1"] + 1, 400))
    _, ga, gb = info["unmapped"][0]
    pos19[:3] = [ga + 1, ga + 2, gb]                                  # inside the gap
    pos38 = lift_with_chain(tmp_path / "c.chain.gz", ["chr1"] * pos19.size, pos19)
    win, miss = gather_windows(store, "chr1", pos38, w=64)
    in_gap = (pos19 - 1 >= ga) & (pos19 - 1 < gb)
    assert in_gap[:3].all()
    np.testing.assert_array_equal(miss, in_gap)
    assert not win[in_gap].any()
    assert np.abs(win[~in_gap]).sum() > 0
    e = calibrate_thresholds(win, [0, 1], [0.3, 1.0])
    assert e[1] == -np.inf
    logf = threshold_enrichment(win, [0, 1], [0.7, 1.37], thresholds=e)
    assert np.all(np.isclose(logf, 1.37) | np.isclose(logf, 0.7 + 1.37))
    assert 0.1 < np.isclose(logf, 2.07).mean() < 0.5          # dim 0 active for ~30 % (ties at 0 lower it)
