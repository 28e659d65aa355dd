"""End-to-end (tests/e2e/config.yaml plus a one-run ablation): `snakemake all figures ablations`, then
`snakemake --report` names every figure with its caption and the tables and checks; `snakemake figures`
redraws the figures from the existing tables without any training job; the end-of-run message prints the
summary only when the run wrote it."""
import shutil
import subprocess
import sys
from pathlib import Path

import pandas as pd
import pytest

REPO = Path(__file__).resolve().parents[1]
# the e2e scenario has no tracks and trains constant + GLM: the ablation (tests/e2e/ablations.yaml) retrains the
# GLM without annotations


def snakemake(run, workdir, *args):
    """Snakemake with the session run's config files (tests/conftest.py e2e_run) in `workdir`."""
    cmd = [sys.executable, "-m", "snakemake", "-s", str(REPO / "Snakefile"), "--directory", str(workdir),
           "--configfile", *run.configfiles, "--cores", "2", *args]
    res = subprocess.run(cmd, capture_output=True, text=True)
    assert res.returncode == 0, res.stderr[-4000:]
    return res


@pytest.fixture(scope="module")
def run_dir(e2e_run):
    """The session's `snakemake all figures ablations` on tests/e2e (conftest.py e2e_run, shared with
    test_e2e_demo and test_e2e_priors): (workdir, its output)."""
    return e2e_run.dir, e2e_run.output


@pytest.mark.slow
def test_figures_tables_and_end_of_run_message(run_dir):
    d, out = run_dir
    for png in ("heldout_pct", "fig3_region", "fig6_ablations", "fig2"):
        assert (d / f"results/figures/{png}.png").read_bytes()[:4] == b"\x89PNG", png
    region = pd.read_csv(d / "results/figures/fig3_region.tsv", sep="\t")
    assert (region["chromosome"] == 5).all() and len(region) > 100         # first held-out chromosome
    assert region["enrichment"].mean() == pytest.approx(1.0, rel=1e-3)    # the whole chromosome: E f / E f
    t1 = pd.read_csv(d / "results/ablations/table1.tsv", sep="\t")
    full = pd.read_csv(d / "results/evaluation/summary.tsv", sep="\t").set_index(["model", "objective"])
    assert list(t1["ablation"]) == ["no_annotations"] and list(t1["model"]) == ["glm"]
    assert t1["full_pct_per_person"].iloc[0] == pytest.approx(full.loc[("glm", "deepwas"), "pct_per_person"])
    assert t1["difference"].iloc[0] == pytest.approx(t1["pct_per_person"].iloc[0] - t1["full_pct_per_person"].iloc[0], rel=1e-5)
    md = (d / "results/ablations/table1.md").read_text()
    assert "| trait | model | objective | ablation |" in md and "| enriched | glm | deepwas | no_annotations |" in md
    assert "enriched:" in out and "snakemake --report" in out and "logs/" in out


@pytest.mark.slow
def test_report_names_the_figures_and_tables(run_dir, e2e_run, tmp_path):
    d, _ = run_dir
    snakemake(e2e_run, d, "--report", str(tmp_path / "report.html"))
    html = (tmp_path / "report.html").read_text(errors="replace")
    assert len(html) > 50_000
    for name in ("heldout_pct.png", "fig3_region.png", "fig6_ablations.png", "fig2.png", "table1.tsv",
                 "summary.tsv", "enriched.report.json", "chr1.manifest.tsv", "Fig. 5", "Table 1",
                 "held-out percentage likelihood increase per person", "priors constant, glm with the objectives"):
        assert name in html, name


@pytest.mark.slow
def test_figures_are_redrawn_from_tables_without_training(run_dir, e2e_run, tmp_path):
    d = shutil.copytree(run_dir[0], tmp_path / "run", symlinks=True)   # the session's run stays as it was
    for png in ("heldout_pct", "fig3_region", "fig6_ablations"):
        (d / f"results/figures/{png}.png").unlink()
    dry = snakemake(e2e_run, d, "figures", "-n", "--quiet", "rules").stdout
    jobs = {line.split()[0] for line in dry.splitlines() if line[:1].isalpha() and len(line.split()) == 2
            and line.split()[1].isdigit()}
    assert {"plot_heldout", "plot_region", "ablation_table"} <= jobs
    assert not jobs & {"train", "train_ablation", "evaluate", "evaluate_ablation", "region_enrichment",
                       "summary", "ld_factors", "harmonise"}, jobs
    out = snakemake(e2e_run, d, "figures")
    assert (d / "results/figures/fig6_ablations.png").exists() and (d / "results/figures/heldout_pct.png").exists()
    text = out.stdout + out.stderr
    assert "enriched:" not in text and "snakemake --report" in text    # summary not rebuilt: not printed


def dry_jobs(workdir, configfile, *targets):
    """{rule: count} of a dry run of `targets` on tests/e2e/{configfile} (nothing runs), and its stderr."""
    cmd = [sys.executable, "-m", "snakemake", "-s", str(REPO / "Snakefile"), "--directory", str(workdir),
           "--configfile", str(REPO / "tests/e2e" / configfile), "--cores", "2", *targets, "-n", "--quiet", "rules"]
    res = subprocess.run(cmd, capture_output=True, text=True)
    assert res.returncode == 0, res.stderr[-4000:]
    jobs = {}
    for line in res.stdout.splitlines():
        parts = line.split()
        if len(parts) == 2 and parts[1].isdigit() and parts[0] != "total":
            jobs[parts[0]] = int(parts[1])
    return jobs, res.stderr


def test_ablations_and_figures_are_wired(tmp_path):
    """Dry runs on the tracks scenario: `ablations` retrains the transformer once per default ablation (reduced
    (i)+, w = 16, no conservation tracks, reduced network) and scores it; `figures` needs no ablation job and says so."""
    (tmp_path / "traits_tracks.tsv").write_text((REPO / "tests/e2e/traits_tracks.tsv").read_text())
    jobs, _ = dry_jobs(tmp_path, "tracks.yaml", "ablations")
    assert jobs["train_ablation"] == 4 and jobs["evaluate_ablation"] == 4 and jobs["ablation_table"] == 1
    # reduced (i)+: its own factors and statistics of the 2 training chromosomes, nothing else rebuilt
    assert jobs["ld_factors_ablation"] == 2 and jobs["whiten_ablation"] == 2 and jobs["ld_factors"] == 3
    assert jobs["train"] == 6                       # the full models it is compared with (deepwas, ldsr)
    jobs, err = dry_jobs(tmp_path, "tracks.yaml", "figures")
    assert {"region_enrichment", "plot_region", "plot_heldout", "fig2"} <= set(jobs)
    assert not {"train_ablation", "ablation_table", "simulate_semisynthetic"} & set(jobs)
    assert "run `snakemake ablations` first" in err and "run `snakemake simulation` first" in err


def test_an_ablation_typo_stops_at_validation(tmp_path):
    (tmp_path / "traits.tsv").write_text((REPO / "tests/e2e/traits.tsv").read_text())
    (tmp_path / "a.yaml").write_text("ablations:\n  models: [glm]\n  runs:\n    x: {track_windw: 16}\n")
    cmd = [sys.executable, "-m", "snakemake", "-s", str(REPO / "Snakefile"), "--directory", str(tmp_path),
           "--configfile", str(REPO / "tests/e2e/config.yaml"), str(tmp_path / "a.yaml"), "-n", "ablations"]
    res = subprocess.run(cmd, capture_output=True, text=True)
    out = res.stdout + res.stderr
    assert res.returncode != 0
    assert "unknown key 'ablations.runs.x.track_windw' in a.yaml; did you mean 'ablations.runs.x.track_window'?" in out
