"""Per-variant priors in PolyFun's layout (deepwas.export, deepwas.formats.priors, export_priors.py).

Two chromosomes of msprime LD cut into tiled windows and written as real factor files; constant and GLM
model files as train_prior.py writes them. Checked: the file columns are PolyFun's, parquet and text round
trip exactly, every variant has one row, SNPVAR = f sums to the prior's h2 (by hand for the constant prior),
f equals the evaluation path's f, each chromosome is scored by the model of its plan, and applying a
trained prior to the same variants gives identical f.
"""
import gzip

import numpy as np
import pandas as pd
import pytest
import torch

from deepwas.features.pred import FeatureScaler, pred_features
from deepwas.formats.factors import load_factors, save_factors
from deepwas.formats.model_file import ModelFile
from deepwas.window import make_window
from deepwas.export import (fold_of, fold_training_chromosomes, prior_from_checkpoint, scoring_plan, used_folds)
from deepwas.formats.priors import COLUMNS, POLYFUN_COLUMNS, read_priors, write_priors
from deepwas.ld_factors import factorise
from deepwas.priors import build_prior
from deepwas.windows import core_bounds, core_mask, tile

LENGTH, WIN, STRIDE, ALPHA = 100_000, 30_000, 10_000, 0.7


@pytest.fixture(scope="module")
def data(msprime_ld, tmp_path_factory, torch_one_thread):
    root = tmp_path_factory.mktemp("export")
    rng = np.random.default_rng(3)
    harm, factor_inputs = [], {}
    for chrom, seed in (("1", 7), ("2", 8)):
        R = msprime_ld(n_people=200, length=300_000, seed=seed)
        K = R.shape[0]
        pos = 1 + np.arange(K) * (LENGTH // K)
        keys = np.array([f"{chrom}:{p}:A:G" for p in pos])
        freq = rng.uniform(0.02, 0.98, size=K)
        ws = tile(chrom, LENGTH, WIN, STRIDE)
        bounds = core_bounds(ws, WIN, STRIDE)
        rows = []
        for w in ws:
            idx = np.flatnonzero((pos >= w.start) & (pos < w.end))
            core = np.flatnonzero(core_mask(pos[idx], bounds[w.name]))
            fac = factorise(R[np.ix_(idx, idx)], core, rtol=1e-6, name=w.name)
            save_factors(root / f"chr{chrom}" / f"{w.name}.npz", fac, pos[idx], keys[idx], freq[idx])
            rows.append({"window": w.name, "status": "ok", "n_core": fac.n, "n_extended": fac.m, "rank": fac.rank})
        pd.DataFrame(rows).to_csv(root / f"chr{chrom}.manifest.tsv", sep="\t", index=False)
        factor_inputs[chrom] = (root / f"chr{chrom}", root / f"chr{chrom}.manifest.tsv")
        harm.append(pd.DataFrame({"chromosome": chrom, "position": pos, "rsid": [f"rs{chrom}{i:04d}" for i in range(K)],
                                  "allele1": "A", "allele2": "G", "z": 0.0, "n": 1000.0, "eaf": freq, "_freq": freq}))
    harm = pd.concat(harm, ignore_index=True)
    harm.drop(columns="_freq").to_csv(root / "harmonised.tsv.gz", sep="\t", index=False)
    pred = pred_features({"freq": harm["eaf"].to_numpy(), "ldscore": rng.uniform(1, 20, len(harm))}, None)
    scaler = FeatureScaler.fit(["frequency", "maf", "ldscore"], [pred])
    models = {}
    for label, model, c in (("heldout", "constant", -9.0), ("fold1", "constant", -8.0), ("glm", "glm", -9.0)):
        torch.manual_seed(0)
        prior = build_prior(model, d_pred=3, d_func=0, init_log_scale=c, alpha=ALPHA)
        if model == "glm":
            with torch.no_grad():
                prior.body.lin.weight.normal_(0, 0.5)
        ModelFile(model=model, objective="deepwas", state=prior.state_dict(), scaler=scaler.state(), d_pred=3,
                  d_func=0, alpha=ALPHA, learn_alpha=False, init_log_scale=c).save(root / f"{label}.pt")
        models[label] = (root / f"{label}.pt", c)
    return root, factor_inputs, harm, models


def _export(root, factor_inputs, plan, model_paths, name):
    from deepwas.export import write_prior_files

    out_p = {c: root / name / f"chr{c}.parquet" for c in plan}
    out_t = {c: root / name / f"chr{c}.txt.gz" for c in plan}
    write_prior_files(plan, model_paths, {c: factor_inputs[c] for c in plan}, root / "harmonised.tsv.gz", None, None,
                      out_p, out_t, root / name / "summary.json")
    return {c: read_priors(out_p[c]) for c in plan}, {c: read_priors(out_t[c]) for c in plan}, out_t


def test_constant_priors_by_chromosome_plan(data):
    root, factor_inputs, harm, models = data
    plan = {"1": "fold1", "2": "heldout"}
    pq, txt, out_t = _export(root, factor_inputs, plan, {k: models[k][0] for k in plan.values()}, "const")
    with gzip.open(out_t["1"], "rt") as fh:
        header = fh.readline().rstrip("\n").split("\t")
    assert header[:6] == POLYFUN_COLUMNS == ["CHR", "SNP", "BP", "A1", "A2", "SNPVAR"] and header == COLUMNS
    total = 0.0
    for c, label in plan.items():
        t, h = pq[c], harm[harm["chromosome"] == c]
        pd.testing.assert_frame_equal(t, txt[c])                        # text round-trips exactly
        assert len(t) == len(h) and t["SNP"].is_unique and (t["MODEL"] == label).all()
        assert t["CHR"].dtype == np.int64 and (t["CHR"] == int(c)).all()
        by_rsid = h.set_index("rsid")
        assert (t["BP"].to_numpy() == by_rsid.loc[t["SNP"], "position"].to_numpy()).all()
        p = by_rsid.loc[t["SNP"], "eaf"].to_numpy()
        # Eqn 6, constant body (alpha is a float32 buffer of the prior)
        expected = np.exp(models[label][1]) * (p * (1 - p)) ** float(np.float32(ALPHA))
        np.testing.assert_allclose(t["SNPVAR"], expected, rtol=1e-12)
        assert (t["F"] == t["SNPVAR"]).all() and t["BP38"].isna().all()
        total += t["SNPVAR"].sum()
    import json

    summary = json.loads((root / "const" / "summary.json").read_text())
    assert summary["h2"] == pytest.approx(total, rel=1e-12)
    f_all = np.concatenate([pq[c]["F"] for c in plan])
    np.testing.assert_allclose(np.concatenate([pq[c]["ENRICHMENT"] for c in plan]), f_all / f_all.mean(), rtol=1e-12)
    assert summary["per_chromosome"]["2"]["model"] == "heldout"


def test_glm_f_equals_the_evaluation_path_and_apply_is_identical(data):

    root, factor_inputs, harm, models = data
    ck = ModelFile.load(models["glm"][0])
    prior, scaler = prior_from_checkpoint(ck, [])
    pq, _, _ = _export(root, factor_inputs, {"1": "heldout", "2": "heldout"}, {"heldout": models["glm"][0]}, "glm")
    t = pq["1"].set_index("BP")
    # the evaluation path: make_window over the whole extended set, prior in eval mode, core rows
    name = "chr1_20001_50001"
    fac = load_factors(factor_inputs["1"][0] / f"{name}.npz")
    w = make_window(name, fac, np.zeros(fac["lam"].shape[0]), scaler.transform(pred_features(fac, None)))
    with torch.no_grad():
        f_eval = prior(w.inputs).double().numpy()[fac["core"]]
    np.testing.assert_allclose(t.loc[fac["positions"][fac["core"]], "F"], f_eval, rtol=1e-6)
    assert t["F"].std() > 0.1 * t["F"].mean()                          # the GLM is not a constant
    # applying the trained prior again to the same variants: identical f, bit for bit
    again, _, _ = _export(root, factor_inputs, {"1": "applied", "2": "applied"}, {"applied": models["glm"][0]}, "app")
    for c in ("1", "2"):
        assert (again[c]["F"].to_numpy() == pq[c]["F"].to_numpy()).all()
        assert (again[c]["SNP"].to_numpy() == pq[c]["SNP"].to_numpy()).all()


def test_fold_plan():
    assert [fold_of(c, 2) for c in ("1", "2", "3", "22")] == [1, 2, 1, 2]
    assert fold_training_chromosomes(["1", "2", "3", "4", "5"], 2, 1) == ["2", "4"]
    plan = scoring_plan(["1", "2", "3", "6", "7"], ["6", "7"], 2)
    assert plan == {"1": "fold1", "2": "fold2", "3": "fold1", "6": "heldout", "7": "heldout"}
    assert used_folds(["1", "2", "3", "6"], ["6"], 3) == [1, 2, 3]
    assert scoring_plan(["1", "2", "6"], ["6"], 0) == {"6": "heldout"}
    with pytest.raises(ValueError, match="no chromosome"):
        fold_training_chromosomes(["1", "3"], 2, 1)
    with pytest.raises(ValueError, match="at least 2"):
        scoring_plan(["1", "6"], ["6"], 1)


def test_bad_prior_tables_are_refused(tmp_path):
    ok = pd.DataFrame({"CHR": ["1"], "SNP": ["rs1"], "BP": [10], "A1": ["A"], "A2": ["G"], "SNPVAR": [1e-5],
                       "BP38": [20], "F": [1e-5], "ENRICHMENT": [1.0], "MODEL": ["heldout"]})
    with pytest.raises(ValueError, match="lacks column"):
        write_priors(ok.drop(columns="SNPVAR"), tmp_path / "a.parquet")
    with pytest.raises(ValueError, match="negative or non-finite"):
        write_priors(ok.assign(SNPVAR=-1.0), tmp_path / "a.parquet")
    with pytest.raises(ValueError, match="duplicated"):
        write_priors(pd.concat([ok, ok]), tmp_path / "a.parquet")
    write_priors(ok, tmp_path / "a.parquet", tmp_path / "a.txt.gz")
    pd.testing.assert_frame_equal(read_priors(tmp_path / "a.parquet"), read_priors(tmp_path / "a.txt.gz"))
    assert read_priors(tmp_path / "a.parquet")["BP38"].iloc[0] == 20


def test_apply_errors_name_the_problem(data, tmp_path):
    root, factor_inputs, harm, models = data
    from deepwas.export import write_prior_files as main

    bad = tmp_path / "bad.tsv.gz"
    harm.drop(columns=["rsid", "_freq"]).to_csv(bad, sep="\t", index=False)
    args = ({"1": "m"}, {"m": models["glm"][0]}, {"1": factor_inputs["1"]})
    outs = ({"1": tmp_path / "a.parquet"}, {"1": tmp_path / "a.txt.gz"}, tmp_path / "s.json")
    with pytest.raises(ValueError, match=r"bad.tsv.gz: lacks column\(s\) \['rsid'\]"):
        main(*args, bad, None, None, *outs)
    other = tmp_path / "other.tsv.gz"
    harm.assign(position=harm["position"] + 1).drop(columns="_freq").to_csv(other, sep="\t", index=False)
    with pytest.raises(ValueError, match="none of the .* variants .* has an rsid"):
        main(*args, other, None, None, *outs)
    assert not (tmp_path / "a.parquet").exists()
