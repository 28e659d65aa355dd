"""deepwas.plots (paper Figs. 2-7, Table 1) checked on the data each figure draws (read back from the matplotlib
Axes, never pixels), and deepwas.region (the Fig. 3 per-variant f) against f of Eqn 6 computed by hand."""
import math

import matplotlib.pyplot as plt
import numpy as np
import pandas as pd
import pyBigWig
import pytest
import torch

from deepwas.features.normalise import write_normalisation
from deepwas.features.pred import FeatureScaler
from deepwas.features.tracks import build_track_store
from deepwas.features.variants import VariantTracks
from deepwas.formats.factors import save_factors
from deepwas.formats.model_file import ModelFile
from deepwas.ld_factors import factorise
from deepwas.plots import (TABLE1_COLUMNS, ablation_bars, ablation_table, fig2_timings, fig3_region, heldout_bars,
                           markdown_table, simulation_rmse_bars)
from deepwas.priors import build_prior
from deepwas.region import REGION_COLUMNS, region_enrichment


@pytest.fixture(autouse=True)
def _close_figures():
    yield
    plt.close("all")


# ------------------------------------------------------------------------------------------------ Fig. 2
def test_fig2_lines_are_the_finite_timings_per_method_and_panel(tmp_path):
    t = pd.DataFrame({
        "device": ["cpu"] * 5 + ["cuda"] * 2,
        "dtype": ["float64"] * 5 + ["float32"] * 2,
        "method": ["reference", "reference", "chol_A", "chol_A", "cg_A", "reference", "chol_A"],
        "n": [1000, 500, 500, 1000, 500, 500, 500],
        "seconds": ["4.0", "1.0", "0.1", "0.5", "nan", "0.02", "0.01"],
    })
    fig = fig2_timings(t, tmp_path / "fig2.png")
    assert (tmp_path / "fig2.png").read_bytes()[:4] == b"\x89PNG"
    cpu, cuda = fig.axes
    assert cpu.get_title() == "cpu, float64" and cuda.get_title() == "cuda, float32"
    lines = {ln.get_label(): ln for ln in cpu.get_lines()}
    assert set(lines) == {"reference", "chol_A"}                 # cg_A did not converge: no line
    np.testing.assert_array_equal(lines["reference"].get_xdata(), [500, 1000])   # sorted by n
    np.testing.assert_array_equal(lines["reference"].get_ydata(), [1.0, 4.0])
    np.testing.assert_array_equal(lines["chol_A"].get_ydata(), [0.1, 0.5])
    assert cpu.get_xscale() == "log" and cpu.get_yscale() == "log"
    assert [ln.get_label() for ln in cuda.get_lines()] == ["reference", "chol_A"]
    with pytest.raises(ValueError, match="Fig. 2.*lacks column.*seconds"):
        fig2_timings(t.drop(columns="seconds"))


# ------------------------------------------------------------------------------------------------ Fig. 3
def test_fig3_draws_sqrt_enrichment_and_the_selected_tracks():
    r = pd.DataFrame({"chromosome": "4", "position": [300, 100, 200], "key": ["a", "b", "c"],
                      "f": [4e-5, 1e-5, 1e-5], "enrichment": [4.0, 0.25, 1.0],
                      "peaks_0": [0.0, 2.0, -1.0], "conservation_1": [1.0, 1.0, 3.0]})
    fig = fig3_region(r, ["conservation_1"], title="t")
    top, track = fig.axes
    line = top.get_lines()[0]
    np.testing.assert_array_equal(line.get_xdata(), [100, 200, 300])          # sorted by position
    np.testing.assert_allclose(line.get_ydata(), [0.5, 1.0, 2.0])             # sqrt(f / E f)
    assert top.get_lines()[1].get_ydata()[0] == 1.0                           # the no-enrichment line
    assert track.get_ylabel() == "conservation_1"
    verts = track.collections[0].get_paths()[0].vertices
    assert verts[:, 1].max() == pytest.approx(3.0) and verts[:, 1].min() == pytest.approx(0.0)
    assert len(fig3_region(r, None).axes) == 1                                # no tracks: one panel
    with pytest.raises(ValueError, match="track\\(s\\) \\['phylop'\\] are not in the region table"):
        fig3_region(r, ["phylop"])


# ------------------------------------------------------------------------------------------- Figs. 4, 7
def test_simulation_bars_are_the_rmse_per_model_and_objective(tmp_path):
    t = pd.DataFrame({"truth": ["network"] * 4 + ["threshold"] * 2,
                      "model": ["glm", "constant", "glm", "constant", "constant", "glm"],
                      "objective": ["deepwas", "deepwas", "ldsr", "ldsr", "deepwas", "deepwas"],
                      "rmse_log_f": [0.5, 0.9, 0.7, 1.1, 0.8, 0.6]})
    fig = simulation_rmse_bars(t)
    net, thr = fig.axes[:2]
    assert [x.get_text() for x in net.get_xticklabels()] == ["constant", "glm"]   # paper order
    (deep, ldsr) = net.containers
    assert deep.get_label() == "deepwas" and ldsr.get_label() == "ldsr"
    assert [b.get_height() for b in deep] == [0.9, 0.5]
    assert [b.get_height() for b in ldsr] == [1.1, 0.7]
    assert thr.get_title() == "truth: threshold" and [b.get_height() for b in thr.containers[0]] == [0.8, 0.6]
    simulation_rmse_bars(t, tmp_path / "rmse.png")
    assert (tmp_path / "rmse.png").stat().st_size > 5000


# ------------------------------------------------------------------------------------------------ Fig. 5
def test_heldout_bars_are_the_gains_sorted_per_trait():
    s = pd.DataFrame({"trait": ["b", "a", "a", "a"], "model": ["glm", "glm", "constant", "oracle"],
                      "objective": ["deepwas", "ldsr", "deepwas", "truth"],
                      "pct_per_person": [0.3, 0.2, -0.1, 0.5]})
    fig = heldout_bars(s)
    a, b = fig.axes
    assert a.get_title() == "a" and b.get_title() == "b"
    assert [p.get_width() for p in a.patches] == [-0.1, 0.2, 0.5]
    assert [x.get_text() for x in a.get_yticklabels()] == ["constant\n(deepwas)", "glm\n(ldsr)", "oracle\n(truth)"]
    colours = [tuple(round(c, 3) for c in p.get_facecolor()[:3]) for p in a.patches]
    assert colours[2] == (0.498, 0.498, 0.498)                                 # the oracle is grey
    assert [p.get_width() for p in b.patches] == [0.3]


# ---------------------------------------------------------------------------------------- Fig. 6, Table 1
FULL = pd.DataFrame({"trait": ["x", "x", "y"], "model": ["transformer", "glm", "transformer"],
                     "objective": ["deepwas"] * 3, "n_windows": 2, "delta_nll": 1.0,
                     "pct_per_person": [2.0, 1.0, 4.0]})
ABL = pd.DataFrame({"ablation": ["w16", "no_cons", "w16"], "trait": ["x", "x", "y"],
                    "model": ["transformer"] * 3, "objective": ["deepwas"] * 3,
                    "pct_per_person": [1.5, 2.5, 1.0]})


def test_table1_compares_each_ablation_with_its_full_model():
    t = ablation_table(FULL, ABL)
    assert list(t.columns) == TABLE1_COLUMNS
    assert list(zip(t["trait"], t["ablation"])) == [("x", "no_cons"), ("x", "w16"), ("y", "w16")]
    np.testing.assert_allclose(t["full_pct_per_person"], [2.0, 2.0, 4.0])
    np.testing.assert_allclose(t["difference"], [0.5, -0.5, -3.0])
    np.testing.assert_allclose(t["relative"], [1.25, 0.75, 0.25])
    with pytest.raises(ValueError, match="no full-model result for x/constant/deepwas \\(ablation w16\\)"):
        ablation_table(FULL, ABL.assign(model=["constant", "transformer", "transformer"]))
    md = markdown_table(t).splitlines()
    assert md[0] == "| " + " | ".join(TABLE1_COLUMNS) + " |" and len(md) == 2 + len(t)
    assert md[2].split(" | ")[3:5] == ["no_cons", "2.5"]


def test_fig6_bars_are_full_then_each_ablation(tmp_path):
    t = ablation_table(FULL, ABL)
    fig = ablation_bars(t, tmp_path / "fig6.png")
    x, y = fig.axes
    assert [p.get_height() for p in x.patches] == [2.0, 2.5, 1.5]
    assert [lab.get_text().split("\n")[0] for lab in x.get_xticklabels()] == ["full", "no_cons", "w16"]
    assert [p.get_height() for p in y.patches] == [4.0, 1.0]
    assert (tmp_path / "fig6.png").stat().st_size > 5000


# ----------------------------------------------------------------------------------- Fig. 3 per-variant f
@pytest.fixture(scope="module")
def glm_on_disk(msprime_ld, tmp_path_factory):
    """Three windows with tiling cores (every variant in one core), their manifest and statistics, and a GLM
    model file with chosen weights on the pred features (frequency, MAF, LD score)."""
    root = tmp_path_factory.mktemp("region")
    R = msprime_ld(n_people=100, length=60_000, seed=5)
    m = R.shape[0]
    rng = np.random.default_rng(1)
    pos = 1_000 + 50 * np.arange(m)
    keys = np.array([f"4:{p}:A:G" for p in pos])
    freq = rng.uniform(0.05, 0.95, m)
    (root / "factors").mkdir()
    cuts = [0, m // 3, 2 * m // 3, m]
    rows, arrays, ldscore = [], {}, np.zeros(m)
    for a, b in zip(cuts[:-1], cuts[1:]):
        lo, hi = max(0, a - 5), min(m, b + 5)
        fac = factorise(R[lo:hi, lo:hi], np.arange(a - lo, b - lo), rtol=1e-6)
        name = f"chr4_{a}_{b}"
        save_factors(root / "factors" / f"{name}.npz", fac, pos[lo:hi], keys[lo:hi], freq[lo:hi])
        ldscore[a:b] = fac.ldscore[fac.core]
        n = b - a
        arrays.update({f"y/{name}": np.zeros(fac.rank), f"z2/{name}": np.ones(n),
                       f"ldscore/{name}": fac.ldscore[fac.core], f"n/{name}": np.full(n, 1000.0)})
        rows.append({"window": name, "status": "ok", "n_core": fac.n, "n_extended": fac.m, "rank": fac.rank})
    pd.DataFrame(rows).to_csv(root / "manifest.tsv", sep="\t", index=False)
    np.savez(root / "stats.npz", **arrays)
    X = np.stack([freq, np.minimum(freq, 1 - freq), ldscore], 1)
    scaler = FeatureScaler.fit(["freq", "maf", "ldscore"], [X])
    prior = build_prior("glm", d_pred=3, d_func=0, init_log_scale=-9.0, alpha=0.7)
    with torch.no_grad():
        prior.body.lin.weight.copy_(torch.tensor([[0.5, -1.0, 0.2]]))
    ModelFile(model="glm", objective="deepwas", state=prior.state_dict(), scaler=scaler.state(), d_pred=3,
              d_func=0, alpha=0.7, learn_alpha=False, init_log_scale=-9.0).save(root / "model.pt")
    f = (freq * (1 - freq)) ** 0.7 * np.exp(-9.0 + ((X - X.mean(0)) / X.std(0)) @ np.array([0.5, -1.0, 0.2]))
    return [(root / "factors", root / "manifest.tsv", root / "stats.npz")], root / "model.pt", pos, keys, f


def test_region_f_is_eqn6_per_core_variant_and_enrichment_over_the_chromosome(glm_on_disk):
    chrom_inputs, model, pos, keys, f = glm_on_disk
    whole = region_enrichment(chrom_inputs, None, model, "4")
    assert list(whole.columns) == REGION_COLUMNS
    np.testing.assert_array_equal(whole["position"], pos)                     # each variant once, in order
    np.testing.assert_array_equal(whole["key"], keys)
    np.testing.assert_allclose(whole["f"], f, rtol=1e-5)
    np.testing.assert_allclose(whole["enrichment"], f / f.mean(), rtol=1e-5)
    assert whole["f"].std() > 0.1 * whole["f"].mean()                          # the weights matter
    lo, hi = int(pos[10]), int(pos[20])
    part = region_enrichment(chrom_inputs, None, model, "4", lo, hi)
    np.testing.assert_array_equal(part["position"], pos[10:21])
    np.testing.assert_allclose(part["enrichment"], f[10:21] / f.mean(), rtol=1e-5)   # E f: whole chromosome
    with pytest.raises(ValueError, match="no variant of chromosome 4 in \\[1, 2\\]"):
        region_enrichment(chrom_inputs, None, model, "4", 1, 2)
    assert math.isclose(float(whole["enrichment"].mean()), 1.0, rel_tol=1e-9)


def test_region_with_tracks_reads_each_variants_own_base_and_feeds_the_glm(glm_on_disk, tmp_path):
    """With track features: the track columns are the standardised value at the variant's own base (index
    w // 2 of its window), and f adds the GLM's weights on the window-averaged tracks (App. A.2)."""
    chrom_inputs, _, pos, keys, _ = glm_on_disk
    rng = np.random.default_rng(3)
    L, W = int(pos[-1]) + 500, 8
    bws = []
    for t in ("peaks_0", "conservation_1"):
        p = tmp_path / f"{t}.bw"
        bw = pyBigWig.open(str(p), "w")
        bw.addHeader([("4", L)], maxZooms=0)
        bw.addEntries("4", 0, values=rng.normal(size=L).tolist(), span=1, step=1)
        bw.close()
        bws.append((t, str(p)))
    build_track_store(bws, {"4": L}, tmp_path / "store", dtype=np.float32)
    write_normalisation(tmp_path / "store", ["4"], tmp_path / "norm.json")
    pd.DataFrame({"chromosome": "4", "position": pos, "allele1": "A", "allele2": "G", "POS38": pos + 3,
                  "liftover_status": "ok"}).to_csv(tmp_path / "lift.tsv", sep="\t", index=False)
    tracks = VariantTracks(tmp_path / "store", {"4": tmp_path / "lift.tsv"}, tmp_path / "norm.json", W)
    win, missing = tracks(keys)
    assert not missing.any()
    # the GLM: pred = [freq, maf, ldscore, tracks_missing] (all standardised to 0 here but tracks_missing)
    fac_freq = np.concatenate([np.load(f)["freq"][np.load(f)["core"]]
                               for f in sorted((chrom_inputs[0][0]).glob("*.npz"), key=lambda q: int(q.stem.split("_")[1]))])
    scaler = FeatureScaler(["freq", "maf", "ldscore", "tracks_missing"], np.zeros(4), np.ones(4))
    prior = build_prior("glm", d_pred=4, d_func=2, init_log_scale=-9.0, alpha=0.7)
    with torch.no_grad():
        prior.body.lin.weight.copy_(torch.tensor([[0.0, 0.0, 0.0, 0.0, 0.8, -0.5]]))
    ModelFile(model="glm", objective="deepwas", state=prior.state_dict(), scaler=scaler.state(), d_pred=4,
              d_func=2, alpha=0.7, learn_alpha=False, init_log_scale=-9.0,
              track_names=["peaks_0", "conservation_1"]).save(tmp_path / "model.pt")
    r = region_enrichment(chrom_inputs, None, tmp_path / "model.pt", "4", tracks=tracks)
    assert list(r.columns) == REGION_COLUMNS + ["peaks_0", "conservation_1"]
    np.testing.assert_allclose(r["peaks_0"], win[:, 0, W // 2], rtol=1e-6)
    np.testing.assert_allclose(r["conservation_1"], win[:, 1, W // 2], rtol=1e-6)
    f = (fac_freq * (1 - fac_freq)) ** 0.7 * np.exp(-9.0 + win.mean(-1) @ np.array([0.8, -0.5]))
    np.testing.assert_allclose(r["f"], f, rtol=1e-5)
    # the ablation without conservation tracks reads one track: a model trained on both is refused
    only_peaks = VariantTracks(tmp_path / "store", {"4": tmp_path / "lift.tsv"}, tmp_path / "norm.json", W,
                               exclude="conservation")
    with pytest.raises(ValueError, match="trained on tracks \\['peaks_0', 'conservation_1'\\]"):
        region_enrichment(chrom_inputs, None, tmp_path / "model.pt", "4", tracks=only_peaks)
