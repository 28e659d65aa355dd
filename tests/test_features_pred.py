"""Per-variant 'pred' features (App. A.1): frequency, MAF, LD score, annotations, tracks_missing; FeatureScaler."""
import numpy as np
import pandas as pd
import pytest

from deepwas.features.pred import FeatureScaler, annotation_block, pred_feature_names, pred_features


def _corr(m, seed=0):
    X = np.random.default_rng(seed).normal(size=(200, m)).cumsum(axis=1)
    return np.corrcoef(X, rowvar=False)


def test_frequency_maf_ldscore_columns():
    f = np.array([0.1, 0.5, 0.93])
    R = _corr(3)
    fac = {"freq": f, "ldscore": (R ** 2).sum(axis=1)}
    P = pred_features(fac, None)
    assert P.shape == (3, 3) and P.dtype == np.float64
    np.testing.assert_allclose(P[:, 0], f)
    np.testing.assert_allclose(P[:, 1], [0.1, 0.5, 0.07])
    np.testing.assert_allclose(P[:, 2], (R ** 2).sum(axis=1), rtol=1e-12)
    # an identity LD matrix has LD score 1
    np.testing.assert_allclose(pred_features({"freq": f, "ldscore": (np.eye(3) ** 2).sum(1)}, None)[:, 2], 1.0)
    assert pred_feature_names([]) == ["frequency", "maf", "ldscore"]


def test_annotations_and_tracks_missing():
    keys = np.array(["1:1:A:G", "1:2:A:G", "1:3:A:G"])
    ann = pd.DataFrame({"a": [1.0, 2.0], "b": [3.0, 4.0]}, index=["1:1:A:G", "1:3:A:G"])
    block, n_missing = annotation_block(ann, keys)
    assert n_missing == 1
    np.testing.assert_array_equal(block, [[1.0, 3.0], [0.0, 0.0], [2.0, 4.0]])
    P = pred_features({"freq": np.array([0.2, 0.3, 0.4]), "ldscore": np.ones(3)}, block, np.array([0, 1, 0]))
    assert P.shape == (3, 6)
    np.testing.assert_array_equal(P[:, :2], block)
    np.testing.assert_array_equal(P[:, -1], [0.0, 1.0, 0.0])
    assert pred_feature_names(["a", "b"], tracks=True) == ["a", "b", "frequency", "maf", "ldscore", "tracks_missing"]
    assert annotation_block(None, keys) == (None, 0)


def test_scaler_exact_and_state_round_trip():
    rng = np.random.default_rng(1)
    blocks = [rng.normal(size=(5, 3)), rng.normal(size=(7, 3))]
    blocks[0][:, 2] = blocks[1][:, 2] = 0.5                           # a constant column: sd 1, not 0
    sc = FeatureScaler.fit(["x", "y", "z"], blocks)
    X = np.concatenate(blocks)
    np.testing.assert_allclose(sc.mean, X.mean(0))
    np.testing.assert_allclose(sc.sd[:2], X.std(0)[:2])
    assert sc.sd[2] == 1.0
    back = FeatureScaler.from_state(sc.state())
    np.testing.assert_array_equal(back.transform(X), sc.transform(X))
    with pytest.raises(ValueError, match="no training variants"):
        FeatureScaler.fit(["x"], [])
