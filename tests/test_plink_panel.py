"""`ld.source: plink`: LD windows from a PLINK 1 panel in the UKBB layout (deepwas.panel, formats.plink).

The windows' R is checked against a dense correlation of the panel's genotypes (msprime, written with
bed-reader), missing calls and monomorphic variants are counted, and the workflow runs end to end on the
small panel shipped in tests/data/plink (the README's worked example) without touching it."""
from __future__ import annotations

import hashlib
import json
import shutil
import subprocess
import sys
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
import yaml

from deepwas import panel as panel_mod
from deepwas.formats.factors import load_factors
from deepwas.formats.plink import PlinkFormatError, read_bim, read_fam_size, read_genotype_columns, write_plink
from deepwas.formats.ukbb_ld import read_ld_window
from deepwas.harmonise import variant_key
from deepwas.ldscore import unbiased_ldscore
from deepwas.panel import build_ld_windows, chromosome_windows, memory_mb, panel_windows, window_sizes
from deepwas.windows import core_bounds, core_mask

ROOT = Path(__file__).parents[1]
SHIPPED = ROOT / "tests" / "data" / "plink"
LENGTH, STRIDE = 100_000, 50_000


@pytest.fixture(scope="module")
def panel(tmp_path_factory, msprime_chromosome):
    """An msprime panel of 150 people on 200 kb with 1% missing calls, plus a monomorphic variant and a variant
    without any call (both at the position of their left neighbour, to exercise ties)."""
    ch = msprime_chromosome(150, 200_000, 5)
    rng = np.random.default_rng(0)
    G = ch.genotypes.T.astype(np.float64)                      # people x variants, allele1 counts
    G[rng.random(G.shape) < 0.01] = np.nan
    k_mono, k_none = G.shape[1] // 3, 2 * G.shape[1] // 3
    pos, a1, a2 = ch.positions.copy(), ch.allele1.copy(), ch.allele2.copy()
    for k, col in ((k_none, np.full(G.shape[0], np.nan)), (k_mono, np.full(G.shape[0], 2.0))):
        G = np.insert(G, k, col, axis=1)
        pos, a1, a2 = np.insert(pos, k, pos[k - 1]), np.insert(a1, k, "C"), np.insert(a2, k, "G")
    rsid = np.array([f"rs{i}" for i in range(G.shape[1])])
    prefix = tmp_path_factory.mktemp("panel") / "p"
    write_plink(prefix, G, "1", pos, a1, a2, rsid=rsid)
    dropped = {"rs" + str(k_mono), "rs" + str(k_none + 1)}
    return {"prefix": str(prefix), "G": G, "pos": pos, "rsid": rsid, "dropped": dropped}


@pytest.fixture(scope="module")
def built(panel, tmp_path_factory):
    out = tmp_path_factory.mktemp("ld")
    rep = build_ld_windows(panel["prefix"], "1", out / "chr1", LENGTH, STRIDE, report_path=out / "chr1.report.json")
    return out, rep


def _imputed(G):
    G = G.copy()
    mean = np.nanmean(np.where(np.isnan(G).all(0), 0.0, G), 0)
    return np.where(np.isnan(G), mean, G)


def test_plink_round_trip(panel):
    """formats.plink: what write_plink wrote reads back exactly (missing calls as NaN, allele1 counted)."""
    bim = read_bim(panel["prefix"] + ".bim")
    np.testing.assert_array_equal(bim["position"], panel["pos"])
    np.testing.assert_array_equal(bim["rsid"], panel["rsid"])
    assert list(bim["index"]) == list(range(len(bim))) and set(bim["chromosome"]) == {"1"}
    chunked = read_bim(panel["prefix"] + ".bim", "1", chunk_rows=7)             # a whole-genome .bim, in chunks
    pd.testing.assert_frame_equal(chunked, bim)
    n, m = panel["G"].shape
    cols = np.array([m - 1, 0, 7])
    G = read_genotype_columns(panel["prefix"] + ".bed", cols, n, m)
    np.testing.assert_array_equal(G, panel["G"][:, cols])          # NaN == NaN for assert_array_equal


def test_window_r_is_the_dense_correlation_of_the_imputed_panel(panel, built):
    out, rep = built
    G = _imputed(panel["G"])
    names = [w["window"] for w in rep["windows"]]
    assert len(names) >= 3
    for name in names:
        R, v = read_ld_window(out / "chr1" / name)
        cols = np.flatnonzero(np.isin(panel["rsid"], v["rsid"]))
        start, end = (int(x) for x in name.split("_")[1:])
        in_window = (panel["pos"] >= start) & (panel["pos"] < end) & ~np.isin(panel["rsid"], list(panel["dropped"]))
        np.testing.assert_array_equal(cols, np.flatnonzero(in_window))      # every window variant, in order
        np.testing.assert_array_equal(v["position"].to_numpy(), panel["pos"][cols])
        ref = np.corrcoef(G[:, cols].T)                                       # float64 dense reference
        np.testing.assert_allclose(R, ref, rtol=0, atol=2e-7)                 # stored as float32
        freq = np.nanmean(panel["G"][:, cols], 0) / 2                        # frequency among the calls
        np.testing.assert_allclose(v["freq"].to_numpy(), freq, rtol=0, atol=1e-6)


def test_missing_calls_and_monomorphic_variants_are_counted(panel, built):
    out, rep = built
    G = panel["G"]
    assert json.loads((out / "chr1.report.json").read_text()) == rep
    assert rep["panel_size"] == 150 and rep["n_variants_bim"] == G.shape[1]
    assert rep["dropped_monomorphic"] == 2                                    # the constant and the uncalled one
    assert rep["imputed_missing_calls"] == int(np.isnan(G).sum()) > 150
    assert rep["n_variants_with_missing"] == int(np.isnan(G).any(0).sum())
    assert rep["n_variants_written"] == G.shape[1] - 2
    written = set().union(*(set(read_ld_window(out / "chr1" / w["window"])[1]["rsid"]) for w in rep["windows"]))
    assert written == set(panel["rsid"]) - panel["dropped"]
    meta = json.loads((out / "chr1" / "panel.json").read_text())
    assert meta["panel_size"] == 150 == read_fam_size(panel["prefix"] + ".fam")
    assert meta["windows"] == [w["window"] for w in rep["windows"]]


def test_windows_known_before_the_build_are_the_built_ones(panel, built):
    out, rep = built
    names = [w.name for w in chromosome_windows(panel["prefix"], "1", LENGTH, STRIDE)]
    assert names == [w["window"] for w in rep["windows"]]
    assert sorted(p.name for p in (out / "chr1").glob("*.npz")) == sorted(n + ".npz" for n in names)
    assert names[0] == "chr1_1_100001" and all(int(n.split("_")[1]) % STRIDE == 1 for n in names)


def test_panel_windows_skip_empty_grid_windows_and_every_variant_has_one_core():
    pos = np.array([5, 120_000, 950_000, 950_001, 0])                      # 0: unplaced, ignored
    ws = panel_windows(pos, "3", 300_000, 100_000)
    assert [w.name for w in ws] == ["chr3_1_300001", "chr3_100001_400001", "chr3_700001_1000001"]
    bounds = core_bounds(ws, 300_000, 100_000)
    # a window's core is taken among the variants of its own file (positions in [start, end))
    hits = np.array([core_mask(pos[:4], bounds[w.name]) & (pos[:4] >= w.start) & (pos[:4] < w.end) for w in ws]).sum(0)
    np.testing.assert_array_equal(hits, 1)
    assert panel_windows(np.array([0, -1]), "3", 300_000, 100_000) == []


def test_only_the_window_columns_are_read(panel, monkeypatch, tmp_path):
    sizes = []
    real = panel_mod.read_genotype_columns

    def spy(bed, index, n_people, n_variants):
        sizes.append(len(index))
        return real(bed, index, n_people, n_variants)

    monkeypatch.setattr(panel_mod, "read_genotype_columns", spy)
    rep = build_ld_windows(panel["prefix"], "1", tmp_path / "w", LENGTH, STRIDE)
    M = panel["G"].shape[1]
    assert len(sizes) == rep["n_windows"] and max(sizes) < 0.7 * M          # never the whole chromosome
    assert sum(sizes) == sum(w["n_variants"] + w["n_monomorphic"] for w in rep["windows"])
    wins = chromosome_windows(panel["prefix"], "1", LENGTH, STRIDE)
    assert window_sizes(panel["pos"], wins) == sizes                         # known at DAG time (rule memory)
    assert memory_mb(150, max(sizes)) == 500 + int((24 * 150 * max(sizes) + 16 * max(sizes) ** 2) / 1e6)
    assert memory_mb(500, 20_000) == 500 + 240 + 6400                       # a 20,000-variant window: ~7 GB


def test_per_chromosome_files_and_chr_names(panel, tmp_path):
    """`{chrom}` in the prefix; a .bim that names chromosomes 'chr2' and holds another chromosome too."""
    G, pos = panel["G"][:, :200], panel["pos"][:200]
    chroms = np.array(["chr2"] * 150 + ["chr7"] * 50)
    write_plink(tmp_path / "chr2", G, chroms, pos, ["A"] * 200, ["C"] * 200)
    bim = read_bim(tmp_path / "chr2.bim", "2")
    assert len(bim) == 150 and set(bim["chromosome"]) == {"2"}
    rep = build_ld_windows(str(tmp_path / "chr{chrom}"), "2", tmp_path / "out", LENGTH, STRIDE)
    _, v = read_ld_window(tmp_path / "out" / rep["windows"][0]["window"])
    assert set(v["chromosome"]) == {"2"} and rep["n_variants_bim"] == 150
    write_plink(tmp_path / "x", G[:, :3], ["23", "23", "24"], pos[:3], ["A"] * 3, ["C"] * 3)
    assert list(read_bim(tmp_path / "x.bim")["chromosome"]) == ["X", "X", "Y"]
    assert len(read_bim(tmp_path / "x.bim", "X")) == 2 == len(read_bim(tmp_path / "x.bim", "23"))
    with pytest.raises(ValueError, match="no variant on chromosome 5"):
        build_ld_windows(str(tmp_path / "chr2"), "5", tmp_path / "out5", LENGTH, STRIDE)


def test_missing_panel_file_is_named(tmp_path):
    (tmp_path / "bad.bim").write_text("1 rs1 0 100 A C\n1 rs2 0 1e9x A C\n")
    with pytest.raises(PlinkFormatError, match=r"bad\.bim: line 2: non-numeric position '1e9x'"):
        read_bim(tmp_path / "bad.bim", chunk_rows=1)
    with pytest.raises(PlinkFormatError, match=r"nowhere/chr4\.fam: PLINK \.fam file not found"):
        build_ld_windows(str(tmp_path / "nowhere" / "chr{chrom}"), "4", tmp_path / "o", LENGTH, STRIDE)


def test_shipped_panel_is_small_and_matches_its_statistics():
    files = [p for p in SHIPPED.iterdir() if p.is_file()]
    assert sum(p.stat().st_size for p in files) < 2_000_000
    bim = read_bim(SHIPPED / "panel.bim")
    stats = pd.read_csv(SHIPPED / "gwas.sumstats.gz", sep="\t")
    assert read_fam_size(SHIPPED / "panel.fam") == 400 and sorted(set(bim["chromosome"])) == ["1", "2"]
    assert set(stats["SNP"]) < set(bim["rsid"]) and len(bim) - len(stats) == 2   # the two monomorphic ones


# --- end to end: the README worked example -------------------------------------------------------------


def _sha256s(root: Path) -> dict[str, str]:
    return {p.name: hashlib.sha256(p.read_bytes()).hexdigest() for p in sorted(root.iterdir()) if p.is_file()}


@pytest.mark.slow
def test_workflow_runs_on_the_shipped_plink_panel(tmp_path):
    """The worked example's config (tests/data/plink/config.yaml) with absolute paths, a constant prior and two
    epochs; the shipped panel and statistics are byte-identical afterwards."""
    cfg = yaml.safe_load((SHIPPED / "config.yaml").read_text())
    cfg["ld"]["plink"] = str(SHIPPED / "panel")
    cfg.update(traits="traits.tsv", models=["constant"])
    cfg["train"]["epochs"] = 2
    (tmp_path / "traits.tsv").write_text(f"trait\tpath\tformat\tn\ts2\ngwas\t{SHIPPED / 'gwas.sumstats.gz'}\tldsc\t\t\n")
    (tmp_path / "cfg.yaml").write_text(yaml.safe_dump(cfg))
    (tmp_path / "config").mkdir()
    shutil.copy(ROOT / "config" / "config.yaml", tmp_path / "config" / "config.yaml")
    before = _sha256s(SHIPPED)
    r = subprocess.run([sys.executable, "-m", "snakemake", "-s", str(ROOT / "Snakefile"), "--cores", "1",
                        "--configfile", "cfg.yaml"], cwd=tmp_path, capture_output=True, text=True, timeout=600)
    assert r.returncode == 0, r.stderr[-4000:]
    assert _sha256s(SHIPPED) == before
    again = subprocess.run([sys.executable, "-m", "snakemake", "-s", str(ROOT / "Snakefile"), "--cores", "1",
                            "--configfile", "cfg.yaml", "-n"], cwd=tmp_path, capture_output=True, text=True, timeout=300)
    assert again.returncode == 0 and "Nothing to be done" in again.stdout + again.stderr   # no spurious rebuild
    res = tmp_path / "resources" / "plink_ld"
    for c in ("1", "2"):
        rep = json.loads((res / f"chr{c}.report.json").read_text())
        assert rep["panel_size"] == 400 and rep["dropped_monomorphic"] == 1 and rep["imputed_missing_calls"] > 0
        man = pd.read_csv(tmp_path / f"results/ld_factors/chr{c}.manifest.tsv", sep="\t")
        assert list(man["window"]) == [w.name for w in chromosome_windows(str(SHIPPED / "panel"), c, 300_000, 100_000)]
        assert (man["status"] == "ok").all() and len(man) == 4
    # statistics without frequency: the frequency comes from the panel's variant lists
    h = json.loads((tmp_path / "results/harmonised/gwas.report.json").read_text())["harmonise"]
    assert h["matched"] == 2253 and h["frequency_from_reference"] == h["matched"]
    # LD scores are bias-corrected with the panel's size (400 from the .fam), not ld.panel_size
    name = man["window"].iloc[0]
    R, v = read_ld_window(res / "chr2" / name)
    fac = load_factors(tmp_path / "results/ld_factors/chr2" / f"{name}.npz", ["keys", "ldscore", "core"])
    core = np.asarray(fac["core"])          # a variant's LD score comes from the window whose core holds it
    at = pd.Series(np.arange(len(v)), index=variant_key(v).to_numpy()).loc[fac["keys"][core]].to_numpy()
    raw = (R * R).sum(1)
    np.testing.assert_allclose(fac["ldscore"][core], unbiased_ldscore(raw, len(v), 400)[at], rtol=1e-6)
    assert not np.allclose(fac["ldscore"][core], unbiased_ldscore(raw, len(v), 337_545)[at], rtol=1e-3)
    s = pd.read_csv(tmp_path / "results/evaluation/summary.tsv", sep="\t")
    assert list(s["model"]) == ["constant"] and (s["n_windows"] == 4).all()
    # default settings: likelihood.mismatch auto applies the finite-panel correction for the 400-person panel
    # (measured s2 1.87; 22.9 without it) and reports it in s2.json and the summary
    s2 = json.loads((tmp_path / "results/stats/gwas/s2.json").read_text())
    assert s2["panel_size"] == 400 and s2["lambda"] == 0.0 and 0.5 <= s2["s2"] <= 2.0
    assert s2["mismatch"]["s2_lambda0"] > 10 and 0 < s2["mismatch"]["kept_directions"] < s2["mismatch"]["directions"]
    assert "LD from a panel of 400 people: finite-panel correction" in (tmp_path / "results/summary.txt").read_text()


@pytest.mark.slow
def test_workflow_per_chromosome_panel_files(tmp_path):
    """`ld.plink: .../chr{chrom}`: the shipped panel split into one file set per chromosome gives the same
    windows, byte for byte in R and variants, as the whole-genome file set."""
    bim, n = read_bim(SHIPPED / "panel.bim"), read_fam_size(SHIPPED / "panel.fam")
    for c in ("1", "2"):
        b = bim[bim["chromosome"] == c]
        G = read_genotype_columns(SHIPPED / "panel.bed", b["index"].to_numpy(), n, len(bim))
        write_plink(tmp_path / "split" / f"chr{c}", G, c, b["position"], b["allele1"], b["allele2"], rsid=b["rsid"])
    cfg = yaml.safe_load((SHIPPED / "config.yaml").read_text())
    cfg["ld"]["plink"] = str(tmp_path / "split" / "chr{chrom}")
    cfg["traits"] = "traits.tsv"
    (tmp_path / "traits.tsv").write_text(f"trait\tpath\tformat\tn\ts2\ngwas\t{SHIPPED / 'gwas.sumstats.gz'}\tldsc\t\t\n")
    (tmp_path / "cfg.yaml").write_text(yaml.safe_dump(cfg))
    (tmp_path / "config").mkdir()
    shutil.copy(ROOT / "config" / "config.yaml", tmp_path / "config" / "config.yaml")
    targets = [f"resources/plink_ld/chr{c}.report.json" for c in ("1", "2")]
    r = subprocess.run([sys.executable, "-m", "snakemake", *targets, "-s", str(ROOT / "Snakefile"), "--cores", "1",
                        "--configfile", "cfg.yaml"], cwd=tmp_path, capture_output=True, text=True, timeout=300)
    assert r.returncode == 0, r.stderr[-4000:]
    for c in ("1", "2"):
        names = [w.name for w in chromosome_windows(str(SHIPPED / "panel"), c, 300_000, 100_000)]
        assert json.loads((tmp_path / f"resources/plink_ld/chr{c}/panel.json").read_text())["windows"] == names
        whole = build_ld_windows(str(SHIPPED / "panel"), c, tmp_path / "whole" / c, 300_000, 100_000)
        for name in names:
            R1, v1 = read_ld_window(tmp_path / f"resources/plink_ld/chr{c}" / name)
            R2, v2 = read_ld_window(tmp_path / "whole" / c / name)
            np.testing.assert_array_equal(R1, R2)
            pd.testing.assert_frame_equal(v1, v2)
        assert whole["dropped_monomorphic"] == 1
