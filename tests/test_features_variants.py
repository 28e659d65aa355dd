"""features.variants.VariantTracks: LD-window variant keys -> lifted positions -> normalised track windows."""
import json

import numpy as np
import pandas as pd
import pyBigWig
import pytest

from deepwas.features.normalise import NormalisationError, write_normalisation
from deepwas.features.tracks import build_track_store
from deepwas.features.variants import VariantTracks

L, W = 2_000, 8


@pytest.fixture(scope="module")
def setup(tmp_path_factory):
    root = tmp_path_factory.mktemp("variants")
    rng = np.random.default_rng(0)
    bws, raw = [], {}
    for t in ("a", "b"):
        vals = rng.normal(3.0 if t == "b" else 0.0, 1.0 + (t == "b"), L)
        raw[t] = vals
        p = root / f"{t}.bw"
        bw = pyBigWig.open(str(p), "w")
        bw.addHeader([("chr1", L)], maxZooms=0)
        bw.addEntries("chr1", 0, values=vals.tolist(), span=1, step=1)
        bw.close()
        bws.append((t, str(p)))
    build_track_store(bws, {"chr1": L}, root / "store", dtype=np.float32)
    write_normalisation(root / "store", ["1"], root / "norm.json")
    pos37 = np.array([100, 200, 300, 400, 500])
    pos38 = [150, None, 1_000, 3, 1_998]          # unmapped; near both chromosome ends
    pd.DataFrame({"chromosome": "1", "position": pos37, "allele1": "A", "allele2": "C", "POS38": pos38,
                  "liftover_status": ["ok", "unmapped", "ok", "ok", "ok"]}).to_csv(root / "lift.tsv", sep="\t",
                                                                                     index=False)
    keys = np.array([f"1:{p}:A:C" for p in pos37])
    return root, raw, keys, pos38


def test_windows_are_the_standardised_track_values_around_the_lifted_position(setup):
    root, raw, keys, pos38 = setup
    vt = VariantTracks(root / "store", {"1": root / "lift.tsv"}, root / "norm.json", W)
    norm = json.loads((root / "norm.json").read_text())
    extra = np.array(["1:999:A:C"])                                   # not in the liftover table
    win, missing = vt(np.concatenate([keys[::-1], extra]))            # any order
    assert win.shape == (6, 2, W) and vt.d_func == 2 and vt.track_names == ["a", "b"]
    np.testing.assert_array_equal(missing, [False, False, False, True, False, True])
    assert not win[missing].any()
    for row, p in zip(win[:5], pos38[::-1]):
        if p is None:
            continue
        for d, t in enumerate(("a", "b")):
            want = np.zeros(W)
            for j in range(W):                       # index W // 2 holds the variant's own base
                q = p - W // 2 + j                   # 1-based position
                if 1 <= q <= L:
                    want[j] = (raw[t][q - 1] - norm["tracks"][t]["mean"]) / norm["tracks"][t]["sd"]
                else:
                    want[j] = -norm["tracks"][t]["mean"] / norm["tracks"][t]["sd"]   # 0-padded, then standardised
            np.testing.assert_allclose(row[d], want, rtol=1e-5, atol=1e-5)


def test_bad_inputs_are_named(setup, tmp_path):
    root, _, keys, _ = setup
    vt = VariantTracks(root / "store", {"1": root / "lift.tsv"}, root / "norm.json", W)
    with pytest.raises(ValueError, match="span chromosomes"):
        vt(np.array([keys[0], "2:5:A:C"]))
    with pytest.raises(KeyError, match="liftover_ld_variants"):
        vt(np.array(["2:5:A:C"]))
    bad = tmp_path / "lift.tsv"
    pd.read_csv(root / "lift.tsv", sep="\t").drop(columns="POS38").to_csv(bad, sep="\t", index=False)
    with pytest.raises(ValueError, match=r"lift.tsv: liftover table lacks column\(s\) \['POS38'\]"):
        VariantTracks(root / "store", {"1": bad}, root / "norm.json", W)(keys)
    stats = json.loads((root / "norm.json").read_text())
    stats["track_names"] = stats["track_names"][::-1]
    (tmp_path / "norm.json").write_text(json.dumps(stats))
    with pytest.raises(NormalisationError, match="track order differs at index 0"):
        VariantTracks(root / "store", {"1": root / "lift.tsv"}, tmp_path / "norm.json", W)


def test_excluded_tracks_are_left_out_with_their_normalisation(setup):
    """features.exclude_tracks (the Fig. 6 ablation without conservation tracks): the kept track's windows are
    exactly its windows in the full set; a pattern matching every track is an error."""
    root, _, keys, _ = setup
    full = VariantTracks(root / "store", {"1": root / "lift.tsv"}, root / "norm.json", W)
    only_b = VariantTracks(root / "store", {"1": root / "lift.tsv"}, root / "norm.json", W, exclude="^a$")
    assert only_b.track_names == ["b"] and only_b.d_func == 1
    win_full, miss_full = full(keys)
    win_b, miss_b = only_b(keys)
    assert win_b.shape == (5, 1, W)
    np.testing.assert_array_equal(win_b[:, 0], win_full[:, 1])
    np.testing.assert_array_equal(miss_b, miss_full)
    with pytest.raises(ValueError, match="leaves out every track"):
        VariantTracks(root / "store", {"1": root / "lift.tsv"}, root / "norm.json", W, exclude="a|b")
