"""h2 and enrichment with block-jackknife standard errors (deepwas.h2).

Windows cut from an msprime LD matrix carry z simulated under the model of Eqn 5 with a known GLM f; the
constant and GLM priors are fitted by maximum likelihood; the one-Newton-step jackknife replicates are
compared with full refits of every replicate, and the finite-difference Hessian with a second difference of
the exact NLL.
"""
import numpy as np
import pandas as pd
import pytest
import torch

from deepwas.window import make_window
from deepwas.h2 import (as_float64, get_theta, h2_table, jackknife_blocks, jackknife_f, jackknife_se,
                        newton_replicates, objective_loss, quantities, refit, refit_replicates, resolve_method,
                        set_theta, window_gradients, window_hessians)
from deepwas.ld_factors import factorise
from deepwas.priors import build_prior
from deepwas.ldsr import ldsr_inputs

N, S2, D_PRED = 200_000.0, 1.0, 2


@pytest.fixture(scope="module")
def windows(msprime_ld, torch_one_thread):
    R = msprime_ld(n_people=200, length=600_000, seed=7)
    rng = np.random.default_rng(1)
    m_win, n_core, step = 48, 24, 24
    out = []
    for start in range(0, R.shape[0] - m_win + 1, step)[:20]:
        idx = np.arange(start, start + m_win)
        Rw = R[np.ix_(idx, idx)]
        core = np.arange(12, 12 + n_core)
        fac = factorise(Rw, core, rtol=1e-6)
        freq = rng.uniform(0.05, 0.95, size=m_win)
        pred = rng.normal(size=(m_win, D_PRED))
        f = 2e-4 * (freq * (1 - freq)) ** 0.7 * np.exp(0.8 * pred[:, 0])          # true GLM prior
        b = rng.normal(size=m_win) * np.sqrt(N * f)
        lam, V = np.linalg.eigh(Rw)
        noise = (V * np.sqrt(np.clip(lam, 0, None))) @ rng.normal(size=m_win) * np.sqrt(S2)
        z = Rw @ b + noise
        factors = dict(G=fac.G, lam=fac.lam, U=fac.U, core=fac.core, ldscore=fac.ldscore, freq=freq)
        name = f"chr1_{start}_{start + m_win}"
        out.append(make_window(name, factors, fac.whiten(z[core]), pred))
        LDSR_EXTRAS[name] = ldsr_inputs(factors, z[core] ** 2, fac.ldscore[core], panel_size=200)
    assert len(out) == 20
    return out


LDSR_EXTRAS = {}


def _fitted(model, windows, objective="deepwas"):
    torch.manual_seed(0)
    prior, wins = as_float64(build_prior(model, D_PRED, 0, init_log_scale=np.log(1e-4)), windows)
    loss = objective_loss(objective, N, S2, LDSR_EXTRAS, h2_guess=0.3, M=2_000)
    refit(prior, wins, loss)
    return prior, wins, loss


def test_fd_hessian_matches_second_difference_of_the_exact_nll(windows):
    prior, wins, loss = _fitted("constant", windows)
    g, H = window_hessians(prior, wins, loss, fd_step=1e-4)
    theta = get_theta(prior)
    h = 1e-3

    def total(t):
        set_theta(prior, t)
        with torch.no_grad():
            return float(sum(loss(prior, w) for w in wins))

    second = (total(theta + h) - 2 * total(theta) + total(theta - h)) / h**2
    set_theta(prior, theta)
    assert H.sum(0)[0, 0] == pytest.approx(second, rel=1e-4)
    assert abs(g.sum()) < 1e-6 * H.sum()          # at the optimum of the full loss


@pytest.mark.parametrize("model", ["constant", "glm"])
def test_newton_jackknife_agrees_with_full_refits(windows, model):
    prior, wins, loss = _fitted(model, windows)
    blocks = jackknife_blocks(len(wins), 100)
    assert len(blocks) == 20                      # min(100, n_windows)
    theta = get_theta(prior).numpy()
    g, H = window_hessians(prior, wins, loss)
    newton = newton_replicates(theta, g, H, blocks)
    refits = refit_replicates(prior, wins, loss, blocks)
    assert np.allclose(get_theta(prior).numpy(), theta)        # parameters restored
    se_newton, se_refit = jackknife_se(newton), jackknife_se(refits)
    assert np.all(se_refit > 0)
    np.testing.assert_allclose(se_newton, se_refit, rtol=0.05)
    np.testing.assert_allclose(newton, refits, atol=0.2 * se_refit.max())
    # and on the reported quantities (h2 of all variants, prop h2 of a binary category)
    inputs = {"freq": torch.cat([w.inputs["freq"] for w in wins]), "pred": torch.cat([w.inputs["pred"] for w in wins])}
    chrom = np.repeat(["1", "2"], [len(inputs["freq"]) // 2, len(inputs["freq"]) - len(inputs["freq"]) // 2])
    cats = {"high_pred": (inputs["pred"][:, 0] > 0).double().numpy()}
    tabs = {}
    for method in ("newton", "refit"):
        reps, _ = jackknife_f(prior, wins, loss, inputs, 100, method=method)
        with torch.no_grad():
            f = prior(inputs).numpy()
        tabs[method] = h2_table(f, chrom, cats, reps, h2_ldsr=0.3, method=method).set_index("Category")
    for col in ("h2_std_error", "Prop._h2_std_error"):
        a, b = tabs["newton"][col], tabs["refit"][col]
        np.testing.assert_allclose(a.dropna(), b.dropna(), rtol=0.05, atol=1e-12)   # constant: Prop._h2 fixed
    assert tabs["newton"].loc["total", "h2_std_error"] > 0
    if model == "glm":   # the category carries enrichment (true log f slope 0.8 on pred 0)
        assert tabs["newton"].loc["high_pred", "Enrichment"] > 1.3
        assert tabs["newton"].loc["high_pred", "Prop._h2_std_error"] > 0


def test_quantities_by_hand():
    f = np.array([1.0, 2.0, 3.0, 4.0])
    chrom = np.array(["1", "1", "2", "2"])
    a = np.array([1.0, 0.0, 0.0, 1.0])
    c = np.array([0.5, 1.5, 2.5, 3.5])
    q = quantities(f, chrom, {"bin": a, "cont": c}).set_index("Category")
    assert q.loc["total", "h2"] == 10.0
    assert q.loc["chr1", "h2"] == 3.0 and q.loc["chr1", "Prop._h2"] == pytest.approx(0.3)
    assert q.loc["chr2", "Enrichment"] == pytest.approx(0.7 / 0.5)
    assert q.loc["bin", "Prop._SNPs"] == 0.5 and q.loc["bin", "Prop._h2"] == pytest.approx(0.5)
    assert q.loc["bin", "Enrichment"] == pytest.approx(1.0)
    # tau* of c: cov(f, c) = 1.25, sd(c) = sqrt(1.25), mean f = 2.5 -> sqrt(1.25) / 2.5
    assert q.loc["cont", "tau_star"] == pytest.approx(np.sqrt(1.25) / 2.5)
    assert q.loc["cont", "Kind"] == "continuous" and np.isnan(q.loc["cont", "Enrichment"])


def test_jackknife_of_a_mean_is_the_classical_standard_error():
    x = np.random.default_rng(0).normal(size=50)
    reps = np.array([np.delete(x, i).mean() for i in range(50)])
    assert jackknife_se(reps[:, None])[0] == pytest.approx(x.std(ddof=1) / np.sqrt(50), rel=1e-12)
    assert [len(b) for b in jackknife_blocks(7, 3)] == [3, 2, 2]
    with pytest.raises(ValueError, match="at least 2"):
        jackknife_blocks(1, 100)


def test_refit_survives_line_search_steps_that_overflow_f(windows):
    """With features 20x their scale the strong-Wolfe search of the first L-BFGS iterations tries steps whose
    f = exp(log f) overflows (unguarded, the exact solver raised on that non-finite phi; measured); refit
    shortens them and reaches the same optimum as on the unscaled features: GLM weights / 20, same intercept."""
    from deepwas.window import WindowData

    prior, wins = as_float64(build_prior("glm", D_PRED, 0, init_log_scale=np.log(1e-4)), windows)
    loss = objective_loss("deepwas", N, S2, None, h2_guess=0.3, M=2_000)
    theta = refit(prior, wins, loss)
    scaled = [WindowData(w.name, w.G, w.lam, w.y, {**w.inputs, "pred": 20 * w.inputs["pred"]}, w.n_core)
              for w in wins]
    prior20, _ = as_float64(build_prior("glm", D_PRED, 0, init_log_scale=np.log(1e-4)), windows)
    theta20 = refit(prior20, scaled, loss)
    np.testing.assert_allclose(20 * theta20[:D_PRED], theta[:D_PRED], rtol=1e-4, atol=1e-5)
    assert theta20[-1] == pytest.approx(theta[-1], abs=1e-5)
    assert abs(theta[0] - 0.8) < 0.3          # the true weight of the simulated GLM f


def test_auto_method_refits_when_blocks_are_few():
    assert resolve_method("auto", 4) == "refit" and resolve_method("auto", 19) == "refit"
    assert resolve_method("auto", 20) == "newton" and resolve_method("refit", 200) == "refit"
    assert resolve_method("auto", 200, "ldsr") == "refit"


@pytest.mark.parametrize("model", ["constant", "glm"])
def test_ldsr_objective_jackknife_refits_to_each_replicates_optimum(windows, model):
    """The LDSR loss is quartic in log f: one Newton step is 9-60% off the refits here, so 'auto' refits."""
    prior, wins, loss = _fitted(model, windows, "ldsr")
    blocks = jackknife_blocks(len(wins), 200)
    assert resolve_method("auto", len(blocks), "ldsr") == "refit"
    theta = get_theta(prior).numpy()
    g, H = window_hessians(prior, wins, loss)
    assert np.abs(g.sum(0)).max() < 1e-6 * np.abs(H.sum(0)).max()      # the full refit reached the optimum
    reps = refit_replicates(prior, wins, loss, blocks)
    for b, t in zip(blocks[:3], reps[:3]):     # each replicate minimises the loss without its block
        set_theta(prior, t)
        gb = window_gradients(prior, wins, loss)
        assert np.abs(np.delete(gb, b, 0).sum(0)).max() < 1e-6 * np.abs(H.sum(0)).max()
    set_theta(prior, theta)
    assert np.all(jackknife_se(reps) > 0)


# --- the prior_h2 rule's path on demo-like data: Newton replicates against full refits ------------------------------

WIN_LEN, WIN_STRIDE, CHROM_LEN = 150_000, 50_000, 600_000
NEWTON_SE_RTOL = 0.05      # measured: total-h2 SE 0.06% (constant) and 2.7% (GLM) apart; README, RESULTS.md


@pytest.fixture(scope="module")
def pipeline(tmp_path_factory, msprime_chromosome, msprime_genotypes, torch_one_thread):
    """Two msprime chromosomes of 300 people, ten 150-kb windows each on a 50-kb stride, a summary-level GWAS of
    N = 5,000 with h2 = 0.3 spread over every variant (z = sqrt(N) R beta + R^1/2 e with the chromosome's R, as
    the demo does), through the ld_factors, whiten and estimate_s2 steps. As in the demo, the chance correlations
    of a 300-person panel carry the rest of the chromosome into each window as noise of the form s2 R: s2 is
    fitted (about 4 here)."""
    import sys
    from pathlib import Path

    import pandas as pd

    from deepwas.formats.ukbb_ld import write_ld_window
    from deepwas.ld_factors import PSDLimits
    from deepwas.simulation.cohort import ld_matrix
    from deepwas.windows import core_table, tile

    sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "workflow" / "scripts"))
    import ld_factors as ld_factors_script
    import whiten as whiten_script

    root = tmp_path_factory.mktemp("h2pipe")
    rng = np.random.default_rng(11)
    n_gwas, h2 = 5_000.0, 0.3
    harm, train, allf = [], [], []
    for c, seed in (("1", 21), ("2", 22)):
        chrom = msprime_chromosome(300, CHROM_LEN, seed)
        X = msprime_genotypes(300, CHROM_LEN, seed)
        M = X.shape[0]
        v = pd.DataFrame({"rsid": [f"rs{c}_{k}" for k in range(M)], "chromosome": c, "position": chrom.positions,
                          "allele1": chrom.allele1, "allele2": chrom.allele2})
        beta = rng.normal(size=M) * np.sqrt(h2 / (2 * M))          # two chromosomes share h2
        z = np.sqrt(n_gwas) * (X @ (X.T @ beta)) / X.shape[1] + X @ rng.normal(size=X.shape[1]) / np.sqrt(X.shape[1])
        harm.append(v.assign(z=z, n=n_gwas, eaf=chrom.freq))
        wins = tile(c, CHROM_LEN, WIN_LEN, WIN_STRIDE)
        prefixes = []
        for w in wins:
            idx = np.flatnonzero((chrom.positions >= w.start) & (chrom.positions < w.end))
            write_ld_window(root / "ld" / w.name, ld_matrix(X[idx]), v.iloc[idx].reset_index(drop=True))
            prefixes.append(str(root / "ld" / w.name))
        man = pd.DataFrame({"name": [w.name for w in wins], "chromosome": c, "start": [w.start for w in wins],
                            "end": [w.end for w in wins], "kind": "npz"})
        core_table(man, WIN_LEN, WIN_STRIDE).to_csv(root / f"cores{c}.tsv", sep="\t", index=False)
        fdir, fman = root / f"factors/chr{c}", root / f"factors/chr{c}.manifest.tsv"
        ld_factors_script.main(prefixes, root / f"cores{c}.tsv", fdir, fman, 1e-6, 1e-4, PSDLimits(), panel_size=300)
        train.append((fdir, fman, root / f"stats{c}.npz"))
        allf.append((fdir, fman))
    pd.concat(harm, ignore_index=True).to_csv(root / "t.tsv.gz", sep="\t", index=False)
    for fdir, fman, st in train:
        whiten_script.main(str(root / "t.tsv.gz"), str(fdir), str(fman), str(st), rtol=1e-6)
    M_all = sum(len(h) for h in harm)
    from deepwas.s2 import estimate_trait_s2
    estimate_trait_s2(train, [m for _, m in allf], None, 0.7, root / "s2.json", s2_range=(0.5, 100.0), trait="t",
                      mismatch="none")
    return root, train, allf, M_all


def _model_file(path, model, train_inputs, s2_json):
    """A prior at the fitted constant's scale (what training starts from; the jackknife refines it first)."""
    import json

    from deepwas.features.pred import FeatureScaler, pred_feature_names
    from deepwas.formats.model_file import ModelFile
    from deepwas.sources import load_windows

    loaded = load_windows(train_inputs)
    scaler = FeatureScaler.fit(pred_feature_names([], False), [p for *_, p in loaded])
    c = json.loads(s2_json.read_text())["init_log_scale"]
    torch.manual_seed(0)
    prior = build_prior(model, d_pred=3, d_func=0, init_log_scale=c, alpha=0.7)
    ModelFile(model=model, objective="deepwas", state=prior.state_dict(), scaler=scaler.state(), d_pred=3, d_func=0,
              alpha=0.7, learn_alpha=False, init_log_scale=c).save(path)


@pytest.mark.parametrize("model", ["constant", "glm"])
def test_prior_h2_rule_newton_standard_errors_agree_with_refits(pipeline, model):
    from deepwas.h2 import write_prior_h2

    root, train, allf, M = pipeline
    _model_file(root / f"{model}.pt", model, train, root / "s2.json")
    tabs = {}
    for method in ("newton", "refit"):
        tabs[method] = write_prior_h2(root / f"{model}.pt", root / "s2.json", train, allf, None,
                                      root / f"h2_{model}_{method}.tsv", 20, method,
                                      harmonised=root / "t.tsv.gz").set_index("Category")
    a, b = tabs["newton"], tabs["refit"]
    assert a.loc["total", "n_blocks"] == 20 and a.loc["total", "M"] == M
    if model == "constant":
        assert a.loc["total", "se_method"] == "block jackknife, newton"
        assert b.loc["total", "se_method"] == "block jackknife, refit"
    else:   # the schema's weight decay 0.01 (write_prior_h2 without a train block) on the 3 GLM weights
        penalty = "(penalised by AdamW's weight decay 0.01 on 3 of 4 parameters; h2 at the penalised optimum "
        assert a.loc["total", "se_method"].startswith("block jackknife, newton " + penalty)
        assert b.loc["total", "se_method"].startswith("block jackknife, refit " + penalty)
    rel = float(abs(a.loc["total", "h2_std_error"] / b.loc["total", "h2_std_error"] - 1))
    print(f"\n{model}: h2 {a.loc['total', 'h2']:.4f} SE newton {a.loc['total', 'h2_std_error']:.5f} "
          f"refit {b.loc['total', 'h2_std_error']:.5f} (relative difference {rel:.4f})")
    assert 0 < b.loc["total", "h2_std_error"] < a.loc["total", "h2"]
    np.testing.assert_allclose(a["h2_std_error"], b["h2_std_error"], rtol=NEWTON_SE_RTOL)
    assert a.loc["total", "h2"] == b.loc["total", "h2"]                    # the point estimate is the trained prior's


def test_failed_jackknife_replicates_are_reported_not_a_silent_nan(monkeypatch):
    """A replicate whose refit diverged (non-finite parameters) or whose f overflows makes every SE NaN: the table
    says so in se_method, the point estimates stay."""
    import deepwas.h2 as h2mod
    from deepwas.h2 import failed_replicates, prior_h2

    f = np.full(6, 0.05)
    assert failed_replicates(np.zeros((4, 2)), [f] * 4) is None
    thetas = np.zeros((4, 2))
    thetas[1] = np.nan
    reps = [f, np.full(6, np.nan), np.r_[f[:5], np.inf], f]
    assert failed_replicates(thetas, reps) == (
        "2 of 4 jackknife replicates failed: 1 with non-finite parameters (the refit diverged; blocks 2); "
        "1 whose f overflows on some variants (blocks 3)")
    monkeypatch.setattr(h2mod, "as_float64", lambda prior, windows: (prior, windows))
    jk = h2mod.Jackknife(reps, thetas, kappa=np.zeros(2), theta=np.zeros(2), theta_opt=np.zeros(2), f_opt=f)
    monkeypatch.setattr(h2mod, "penalised_jackknife", lambda *a, **k: jk)
    ev = {"f": f, "chrom": np.array(["1"] * 3 + ["2"] * 3), "inputs": {}, "categories": {}}
    tab = prior_h2(None, "glm", ev, train_windows=[None] * 4, loss=None, n_blocks=4, objective="ldsr")
    tot = tab.set_index("Category").loc["total"]
    assert tot["h2"] == pytest.approx(0.3) and np.isnan(tot["h2_std_error"]) and tot["n_blocks"] == 0
    assert tot["se_method"] == ("none (block jackknife, refit: 2 of 4 jackknife replicates failed: 1 with non-finite "
                                "parameters (the refit diverged; blocks 2); 1 whose f overflows on some variants "
                                "(blocks 3))")


def test_prior_h2_scores_the_windows_training_scored(pipeline, monkeypatch):
    """With reference-panel LD (s2.json records the panel size), the jackknife refits the prior on the
    finite-panel-corrected windows that training used (`likelihood.mismatch.correct_panel`), not the raw ones."""
    import json

    import deepwas.h2 as h2mod
    from deepwas.likelihood.mismatch import Mismatch
    from deepwas.sources import load_windows
    from deepwas.window import make_window

    root, train, allf, M = pipeline
    rec = json.loads((root / "s2.json").read_text())
    (root / "s2_panel.json").write_text(json.dumps({**rec, "panel_size": 300}))
    _model_file(root / "glm_panel.pt", "glm", train, root / "s2.json")
    seen = {}

    def capture(prior, model, ev, windows, *a, **k):
        seen["windows"] = windows
        return pd.DataFrame({"Category": ["total"]})

    monkeypatch.setattr(h2mod, "prior_h2", capture)
    monkeypatch.setattr(h2mod, "write_table", lambda *a, **k: None)
    h2mod.write_prior_h2(root / "glm_panel.pt", root / "s2_panel.json", train, allf, None, root / "unused.tsv", 20,
                         "newton", harmonised=root / "t.tsv.gz")
    loaded = load_windows(train)
    got = seen["windows"]
    assert len(got) == len(loaded)
    n_raw = n_kept = 0
    for w, (name, fac, st, p) in zip(got, loaded):
        want = make_window(name, fac, st["y"], np.zeros_like(p), mismatch=Mismatch(panel_size=300))
        assert w.name == name
        torch.testing.assert_close(w.lam, want.lam, rtol=0, atol=0)
        torch.testing.assert_close(w.G, want.G, rtol=0, atol=0)
        torch.testing.assert_close(w.y, want.y, rtol=0, atol=0)
        n_raw, n_kept = n_raw + len(fac["lam"]), n_kept + len(w.lam)
    assert n_kept < n_raw                                 # the correction dropped unresolved directions


def test_prior_h2_takes_the_weight_decay_and_accumulation_training_used(pipeline, monkeypatch):
    """The rule's jackknife penalty comes from the train block, resolved per model as training resolves it
    (`TrainConfig.from_config`), the schema's defaults when the block leaves them out."""
    import deepwas.h2 as h2mod

    root, train, allf, M = pipeline
    _model_file(root / "glm_wd.pt", "glm", train, root / "s2.json")
    seen = {}

    def capture(*a, **k):
        seen.update(k)
        return pd.DataFrame({"Category": ["total"]})

    monkeypatch.setattr(h2mod, "prior_h2", capture)
    monkeypatch.setattr(h2mod, "write_table", lambda *a, **k: None)
    args = (root / "glm_wd.pt", root / "s2.json", train, allf, None, root / "unused.tsv", 20, "newton")
    h2mod.write_prior_h2(*args, harmonised=root / "t.tsv.gz",
                         train={"weight_decay": {"constant": 0.0, "glm": 0.3, "transformer": 0.1}, "accumulate": 8})
    assert (seen["weight_decay"], seen["accumulate"]) == (0.3, 8)
    h2mod.write_prior_h2(*args, harmonised=root / "t.tsv.gz")
    assert (seen["weight_decay"], seen["accumulate"]) == (0.01, 12)     # the schema's defaults
