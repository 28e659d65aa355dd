"""`ld.source: local`: the user's own LD windows (UKBB layout) in ld.dir are found by listing, used read-only,
never downloaded, written or deleted; the workflow runs on them offline."""
from __future__ import annotations

import hashlib
import shutil
import subprocess
import sys
from pathlib import Path

import pandas as pd
import pytest
import yaml

ROOT = Path(__file__).parents[1]
E2E = ROOT / "tests" / "e2e"


def _config(**ld) -> dict:
    """The e2e scenario made smaller: three one-window chromosomes, one held out, a constant prior."""
    cfg = yaml.safe_load((E2E / "config.yaml").read_text())
    cfg.update(chromosomes=["1", "2", "3"], heldout_chromosomes=["3"], models=["constant"], objectives=["deepwas"])
    cfg["train"]["epochs"] = 2
    cfg["demo"].update(n_individuals=400)
    cfg["ld"].update(ld)
    return cfg


def _snakemake(work: Path, cfg: dict, *args):
    (work / "cfg.yaml").write_text(yaml.safe_dump(cfg))
    (work / "config").mkdir(exist_ok=True)
    shutil.copy(ROOT / "config" / "config.yaml", work / "config" / "config.yaml")
    return subprocess.run([sys.executable, "-m", "snakemake", *args, "-s", str(ROOT / "Snakefile"), "--cores", "1",
                           "--configfile", "cfg.yaml"], cwd=work, capture_output=True, text=True, timeout=900)


def _sha256s(root: Path) -> dict[str, str]:
    return {str(p.relative_to(root)): hashlib.sha256(p.read_bytes()).hexdigest()
            for p in sorted(root.rglob("*")) if p.is_file()}


@pytest.fixture(scope="module")
def user_data(tmp_path_factory):
    """The user's data, in their own directory: the demo cohort's LD windows, statistics and annotations
    (written once by rule demo_cohort in another directory, then copied)."""
    gen = tmp_path_factory.mktemp("gen")
    shutil.copy(E2E / "traits.tsv", gen / "traits.tsv")
    r = _snakemake(gen, _config(), "resources/demo/annotations.tsv.gz")
    assert r.returncode == 0, r.stderr[-4000:]
    work = tmp_path_factory.mktemp("work")
    mine = work / "mydata"
    shutil.copytree(gen / "resources/demo/ld", mine / "ld")
    shutil.copy(gen / "resources/demo/sumstats/enriched.sumstats.gz", mine / "enriched.sumstats.gz")
    shutil.copy(gen / "resources/demo/annotations.tsv.gz", mine / "annotations.tsv.gz")
    (work / "traits.tsv").write_text("trait\tpath\tformat\tn\ts2\nenriched\tmydata/enriched.sumstats.gz\tauto\t\t0.9\n")
    cfg = _config(source="local", dir="mydata/ld", panel_size=400)    # the demo cohort's 400 people
    cfg["features"]["annotations"] = "mydata/annotations.tsv.gz"
    return work, cfg


@pytest.mark.slow
def test_local_ld_runs_offline_and_leaves_user_files_untouched(user_data):
    work, cfg = user_data
    mine = work / "mydata"
    assert sorted(p.name for p in (mine / "ld").iterdir()) == sorted(
        f"chr{c}_1_600001.{e}" for c in (1, 2, 3) for e in ("npz", "gz"))
    before = _sha256s(mine)
    dry = _snakemake(work, cfg, "-n")
    assert dry.returncode == 0, dry.stderr[-3000:]
    jobs = dry.stdout.split("Job stats:")[1].split("total")[0]
    assert "download" not in jobs and "demo_cohort" not in jobs  # nothing is fetched or simulated
    r = _snakemake(work, cfg)
    assert r.returncode == 0, r.stderr[-4000:]
    assert _sha256s(mine) == before  # byte-identical: nothing written, moved or deleted in the user's directory
    # no lock record, no download, no demo LD (resources/ holds only the demo's synthetic tracks, if anything)
    assert not [p for p in (work / "resources").rglob("*") if "locks" in p.parts or "ld" in p.parts or "ukbb" in p.parts]
    s = pd.read_csv(work / "results/evaluation/summary.tsv", sep="\t")
    assert list(s["model"]) == ["constant"] and (s["n_windows"] == 1).all()
    man = pd.read_csv(work / "results/ld_factors/chr1.manifest.tsv", sep="\t")
    assert list(man["window"]) == ["chr1_1_600001"] and (man["status"] == "ok").all()
    # a rerun after a config edit: still nothing touches the user's files
    cfg2 = {**cfg, "download": {"retries": 9}}
    assert _snakemake(work, cfg2).returncode == 0
    assert _sha256s(mine) == before


def _placeholder_windows(work: Path) -> Path:
    """The e2e trait sheet in `work` and ld/ with one placeholder window (not read by a dry run) per chromosome."""
    shutil.copy(E2E / "traits.tsv", work / "traits.tsv")
    ld = work / "ld"
    ld.mkdir()
    for c in ("1", "2", "3"):
        for e in ("npz", "gz"):
            (ld / f"chr{c}_1_600001.{e}").write_bytes(b"x")
    return ld


def test_local_ld_listing_errors(tmp_path):
    """The listing names what is wrong: a window without its variant table, a window off the grid, a
    chromosome without windows, a missing directory."""
    ld = _placeholder_windows(tmp_path)
    cfg = _config(source="local", dir="ld", panel_size=400)
    r = _snakemake(tmp_path, cfg, "-n")
    assert r.returncode == 0, r.stderr[-3000:]
    (ld / "chr3_1_600001.gz").unlink()
    r = _snakemake(tmp_path, cfg, "-n")
    assert r.returncode != 0 and "chr3_1_600001.npz: LD window without its variant table chr3_1_600001.gz" in r.stdout + r.stderr
    (ld / "chr3_1_600001.npz").unlink()
    r = _snakemake(tmp_path, cfg, "-n")
    assert "has no LD window of chromosome 3" in r.stdout + r.stderr
    (ld / "chr3_1_500001.npz").write_bytes(b"x")
    (ld / "chr3_1_500001.gz").write_bytes(b"x")
    r = _snakemake(tmp_path, cfg, "-n")
    assert "chr3_1_500001.npz: not a 600000-bp window on the 200000-bp grid" in r.stdout + r.stderr
    # with ld.manifest the directory is not listed: the manifest's npz rows are the windows
    pd.DataFrame({"name": [f"chr{c}_1_600001" for c in (1, 2, 3)] + ["chr3_1_500001"], "chromosome": ["1", "2", "3", "3"],
                  "start": [1] * 4, "end": [600001] * 3 + [500001], "kind": ["npz", "npz", "npz", "absent"]}).to_csv(
        tmp_path / "m.tsv", sep="\t", index=False)
    (ld / "chr3_1_600001.npz").write_bytes(b"x")
    (ld / "chr3_1_600001.gz").write_bytes(b"x")
    r = _snakemake(tmp_path, _config(source="local", dir="ld", manifest="m.tsv", panel_size=400), "-n")
    assert r.returncode == 0, r.stdout[-3000:] + r.stderr[-3000:]
    assert "ld/chr3_1_600001.npz" in r.stdout and "chr3_1_500001" not in r.stdout
    (ld / "chr3_1_600001.npz").unlink()
    (ld / "chr3_1_600001.gz").unlink()
    r = _snakemake(tmp_path, _config(source="local", dir="nowhere", panel_size=400), "-n")
    assert "ld.source is local but ld.dir nowhere is not a directory" in r.stdout + r.stderr
    assert sorted(p.name for p in ld.iterdir()) == ["chr1_1_600001.gz", "chr1_1_600001.npz", "chr2_1_600001.gz",
                                                     "chr2_1_600001.npz", "chr3_1_500001.gz", "chr3_1_500001.npz"]


def test_panel_size_is_required_for_local_ld_only():
    """The config helper (the Snakefile's validation) refuses local LD without ld.panel_size; UKBB LD keeps its
    own 337,545 (null in the config: the source's size), and a given size is kept as given."""
    from deepwas.config import ConfigError, load_config
    from deepwas.downloads import UKBB_LD_PANEL_SIZE

    with pytest.raises(ConfigError, match=r"'ld.panel_size' is required with ld.source: local: .* ld.dir \(mine\)"):
        load_config(overrides={"ld": {"source": "local", "dir": "mine"}})
    assert load_config(overrides={"ld": {"source": "local", "dir": "mine", "panel_size": 503}})["ld"]["panel_size"] == 503
    assert load_config(overrides={"ld": {"source": "ukbb"}})["ld"]["panel_size"] is None
    assert load_config(ROOT / "config/ukbb.yaml")["ld"]["panel_size"] == UKBB_LD_PANEL_SIZE == 337_545
    for source in ("demo", "plink"):                       # their sizes come from demo.n_individuals / the .fam
        assert load_config(overrides={"ld": {"source": source}})["ld"]["panel_size"] is None


def test_local_ld_needs_its_panel_size(tmp_path):
    """ld.source local has no default panel size (UK Biobank's 337,545 for a panel of a few hundred people
    would make the LD-score bias correction and the finite-panel correction silently wrong): the workflow stops
    at start, naming the key and what to put, before anything is planned or written; with the key it plans."""
    _placeholder_windows(tmp_path)
    r = _snakemake(tmp_path, _config(source="local", dir="ld"), "-n")
    out = r.stdout + r.stderr
    assert r.returncode != 0
    assert "'ld.panel_size' is required with ld.source: local: set it" in out, out[-3000:]
    assert "number of people the LD windows in ld.dir (ld) were computed on" in out
    assert not (tmp_path / "results").exists() and not (tmp_path / "resources").exists()
    r = _snakemake(tmp_path, _config(source="local", dir="ld", panel_size=503), "-n")
    assert r.returncode == 0, r.stderr[-3000:]
    assert yaml.safe_load((tmp_path / "results/config.yaml").read_text())["ld"]["panel_size"] == 503
