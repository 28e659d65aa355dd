"""Round trips of the project's own file formats (deepwas.formats): LD factors + manifest, whitened
statistics, the trained-model file (and a file written before the format version existed), annotations."""
import numpy as np
import pandas as pd
import pytest
import torch

from deepwas.formats.annotations import read_annotations
from deepwas.formats.factors import (FACTOR_ARRAYS, load_factors, ok_rows, ok_windows, read_manifest, save_factors,
                                     write_manifest)
from deepwas.formats.model_file import MODEL_FORMAT, ModelFile
from deepwas.formats.whitened import WhitenedStats, write_whitened
from deepwas.ld_factors import factorise


def test_factors_and_manifest_round_trip(msprime_ld, tmp_path):
    R = msprime_ld()[:30, :30]
    fac = factorise(R, np.arange(10, 20), rtol=1e-8)
    keys = np.array([f"1:{i}:A:G" for i in range(30)])
    save_factors(tmp_path / "w1.npz", fac, np.arange(30), keys, np.linspace(0.1, 0.9, 30), dtype=np.float32)
    got = load_factors(tmp_path / "w1.npz")
    assert set(FACTOR_ARRAYS) <= set(got)
    assert got["G"].dtype == np.float32 and got["lam"].dtype == np.float64
    np.testing.assert_allclose(got["G"], fac.G, rtol=1e-6)
    np.testing.assert_array_equal(got["core"], fac.core)
    np.testing.assert_array_equal(got["keys"], keys)
    part = load_factors(tmp_path / "w1.npz", ("freq", "keys"))
    assert sorted(part) == ["freq", "keys"]
    write_manifest(tmp_path / "m.tsv", [{"window": "w1", "status": "ok", "n_core": 10, "n_extended": 30},
                                        {"window": "w2", "status": "excluded: empty core", "n_core": 0,
                                         "n_extended": 3}])
    assert list(ok_rows(tmp_path / "m.tsv")["window"]) == ["w1"]
    base = {"y": np.ones(10), "z2": np.ones(10), "ldscore": np.ones(10), "n": np.ones(10)}
    write_whitened(tmp_path / "s.npz", {"w1": base})               # no trait view: the manifest's sizes
    assert ok_windows([(tmp_path, tmp_path / "m.tsv", tmp_path / "s.npz")]) == \
        [("w1", tmp_path / "w1.npz", tmp_path / "s.npz", 10, 30)]
    view = {"ext": np.arange(25), "core": np.arange(10, 18), "freq": np.full(25, 0.3)}
    write_whitened(tmp_path / "v.npz", {"w1": base | view})         # the trait's view: its own sizes
    assert ok_windows([(tmp_path, tmp_path / "m.tsv", tmp_path / "v.npz")]) == \
        [("w1", tmp_path / "w1.npz", tmp_path / "v.npz", 8, 25)]
    write_whitened(tmp_path / "e.npz", {})                           # no statistics in the window: left out
    assert ok_windows([(tmp_path, tmp_path / "m.tsv", tmp_path / "e.npz")]) == []
    (tmp_path / "bad.tsv").write_text("window\tstatus\nw1\tok\n")
    with pytest.raises(ValueError, match="bad.tsv: factor manifest lacks"):
        read_manifest(tmp_path / "bad.tsv")
    (tmp_path / "broken.npz").write_bytes(b"not a zip")
    with pytest.raises(ValueError, match="broken.npz: cannot read LD factor file"):
        load_factors(tmp_path / "broken.npz")


def test_whitened_round_trip(tmp_path):
    rng = np.random.default_rng(0)
    data = {name: {"y": rng.normal(size=4), "z2": rng.uniform(size=3), "ldscore": rng.uniform(1, 5, 3),
                   "n": np.full(3, 1000.0)} for name in ("chr1_a", "chr1_b")}
    write_whitened(tmp_path / "s.npz", data)
    with np.load(tmp_path / "s.npz") as z:                        # the documented layout: '{array}/{window}'
        assert sorted(z.files) == sorted(f"{a}/{w}" for w in data for a in ("y", "z2", "ldscore", "n"))
    with WhitenedStats(tmp_path / "s.npz") as st:
        assert st.names() == ["chr1_a", "chr1_b"]
        for name, arrays in data.items():
            got = st.window(name)
            for a, v in arrays.items():
                np.testing.assert_array_equal(got[a], v)
        assert list(st.window("chr1_b", ("y",))) == ["y"]
        with pytest.raises(ValueError, match="no \\['y', 'z2', 'ldscore', 'n'\\] for window chr1_c"):
            st.window("chr1_c")
    with pytest.raises(ValueError, match="lacks \\['n'\\]"):
        write_whitened(tmp_path / "t.npz", {"w": {"y": np.ones(1), "z2": np.ones(1), "ldscore": np.ones(1)}})


def test_model_file_round_trip_and_legacy(tmp_path):
    state = {"w": torch.arange(3.0)}
    mf = ModelFile(model="glm", objective="deepwas", state=state, scaler={"names": ["a"], "mean": [0.0], "sd": [1.0]},
                   d_pred=1, d_func=0, alpha=0.7, learn_alpha=False, init_log_scale=-9.5, train={"steps": 3})
    mf.save(tmp_path / "model.pt")
    back = ModelFile.load(tmp_path / "model.pt")
    assert back.format == MODEL_FORMAT and back.model == "glm" and back.init_log_scale == -9.5
    assert back.track_names == [] and back.network is None and back.train == {"steps": 3}
    torch.testing.assert_close(back.state["w"], state["w"])
    # a file written before `format` existed: the same dict without it (and without track_names)
    legacy = {k: v for k, v in vars(mf).items() if k not in ("format", "track_names")}
    torch.save(legacy, tmp_path / "old.pt")
    old = ModelFile.load(tmp_path / "old.pt")
    assert old.format == MODEL_FORMAT and old.track_names == [] and old.d_pred == 1
    torch.save(dict(vars(mf), format=99), tmp_path / "new.pt")
    with pytest.raises(ValueError, match="new.pt: model file format 99"):
        ModelFile.load(tmp_path / "new.pt")
    torch.save({"model": "glm"}, tmp_path / "short.pt")
    with pytest.raises(ValueError, match="short.pt: model file lacks"):
        ModelFile.load(tmp_path / "short.pt")


def test_annotations(tmp_path):
    pd.DataFrame({"chromosome": ["1", "1"], "position": [5, 9], "allele1": ["A", "C"], "allele2": ["G", "T"],
                  "coding": [1.0, 0.0]}).to_csv(tmp_path / "a.tsv", sep="\t", index=False)
    a = read_annotations(tmp_path / "a.tsv")
    assert list(a.columns) == ["coding"] and a.shape == (2, 1)
    assert read_annotations(None) is None
    pd.DataFrame({"chromosome": ["1"], "position": [5], "allele1": ["A"], "allele2": ["G"],
                  "kind": ["x"]}).to_csv(tmp_path / "b.tsv", sep="\t", index=False)
    with pytest.raises(ValueError, match="b.tsv: annotation column\\(s\\) \\['kind'\\] are not numeric"):
        read_annotations(tmp_path / "b.tsv")


def test_truth_and_genotypes(tmp_path):
    from deepwas.formats.genotypes import read_genotypes, write_genotypes
    from deepwas.formats.truth import read_truth, write_truth

    v = pd.DataFrame({"rsid": ["rs1", "rs2"], "chromosome": ["1", "1"], "position": [5, 9],
                      "allele1": ["A", "C"], "allele2": ["G", "T"]})
    write_truth(tmp_path / "t.tsv.gz", v, np.array([1e-5, 2e-5]))
    assert list(pd.read_csv(tmp_path / "t.tsv.gz", sep="\t").columns) == ["chromosome", "position", "allele1",
                                                                         "allele2", "f"]
    f = read_truth(tmp_path / "t.tsv.gz")
    assert list(f.index) == ["1:5:A:G", "1:9:C:T"]
    np.testing.assert_array_equal(f.to_numpy(), [1e-5, 2e-5])
    G = np.array([[0, 1, 2], [2, 1, 0]], dtype=np.int8)
    write_genotypes(tmp_path / "g.npz", G, np.array([5, 9]), np.array(["A", "C"]), np.array(["G", "T"]))
    back = read_genotypes(tmp_path / "g.npz")
    np.testing.assert_array_equal(back["genotypes"], G)
    assert back["allele2"].tolist() == ["G", "T"]
