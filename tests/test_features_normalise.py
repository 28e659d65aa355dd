"""Exact normalisation statistics and the track-order check (App. A.1 normalisation)."""
import numpy as np
import pyBigWig
import pytest

from deepwas.features.normalise import (
    NormalisationError, check_normalisation, mean_sd_arrays, track_statistics, write_normalisation)
from deepwas.features.tracks import build_track_store, open_track_store

SIZES = {"chr1": 4000, "chr2": 2500, "chr3": 1000}


@pytest.fixture
def store(tmp_path):
    rng = np.random.default_rng(1)
    bws = []
    for k, name in enumerate(["a", "b", "c"]):
        p = tmp_path / f"{name}.bw"
        bw = pyBigWig.open(str(p), "w")
        bw.addHeader(list(SIZES.items()), maxZooms=0)
        for c, L in SIZES.items():
            starts = np.arange(0, L - 10, 10)
            vals = (rng.normal(100.0 * k, 1.0 + k, starts.size)).tolist()   # large mean for track c
            bw.addEntries(c, int(starts[0]), values=vals, span=7, step=10)       # gaps of 3 bp
        bw.close()
        bws.append((name, str(p)))
    build_track_store(bws, SIZES, tmp_path / "store", block=999)
    return open_track_store(tmp_path / "store")


def test_statistics_equal_numpy(store, tmp_path):
    stats = write_normalisation(store.path, ["chr1", "chr3"], tmp_path / "norm.json")
    x = np.concatenate([np.load(store.path / "chr1.npy"), np.load(store.path / "chr3.npy")]).astype(np.float64)
    for j, t in enumerate(["a", "b", "c"]):
        assert stats["tracks"][t]["n"] == 5000
        assert stats["tracks"][t]["mean"] == pytest.approx(x[:, j].mean(), rel=1e-12, abs=1e-12)
        assert stats["tracks"][t]["sd"] == pytest.approx(x[:, j].std(), rel=1e-10)
    loaded = check_normalisation(tmp_path / "norm.json", store)
    m, s = mean_sd_arrays(loaded)
    assert m.shape == (3,) and s[2] > 0


def test_order_and_missing_detected(store, tmp_path):
    write_normalisation(store.path, ["chr2"], tmp_path / "norm.json")
    with pytest.raises(NormalisationError, match="order differs at index 1: statistics have 'b', features have 'c'"):
        check_normalisation(tmp_path / "norm.json", ["a", "c", "b"])
    with pytest.raises(NormalisationError, match=r"tracks without statistics \['d'\]"):
        check_normalisation(tmp_path / "norm.json", ["a", "b", "c", "d"])
    with pytest.raises(NormalisationError, match="not found"):
        check_normalisation(tmp_path / "absent.json", store)
    with pytest.raises(NormalisationError, match="not in the track store"):
        track_statistics(store, ["chr9"])
    check_normalisation(tmp_path / "norm.json", str(store.path))
