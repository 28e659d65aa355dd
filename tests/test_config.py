"""The config: the schema is the only source of defaults (the paper's settings), every block is closed, a
mistyped key or trait-sheet column stops the run in a few lines naming it, and the effective config of each run
is the one it describes (results/config.yaml): the demo by default, the paper with --configfile config/ukbb.yaml.
"""
import copy
import os
import re
import shutil
import subprocess
import sys
from pathlib import Path

import pandas as pd
import pytest
import yaml

from deepwas.config import (CONFIG_SCHEMA, TRAITS_SCHEMA, ConfigError, block_defaults, load_config, validate_config,
                            validate_traits, write_effective_config)

ROOT = Path(__file__).resolve().parents[1]
MAX_LINES = 8          # "a few lines": the old raw jsonschema error printed 1,355 lines of schema


def _walk(schema, path=""):
    """(key path, subschema) of every property in the schema, oneOf / anyOf branches and by-name entries included."""
    for key, sub in schema.get("properties", {}).items():
        yield f"{path}{key}", sub
        yield from _walk(sub, f"{path}{key}.")
    entry = schema.get("additionalProperties")
    if isinstance(entry, dict):
        yield from _walk(entry, f"{path}<name>.")
    for branch in schema.get("oneOf", []) + schema.get("anyOf", []):
        yield from _walk(branch, path)


def _objects(schema, path="(top)"):
    """Every object schema: the root, each object property and each by-name entry."""
    if schema.get("type") == "object" or "object" in (schema.get("type") or []) or "properties" in schema:
        yield path, schema
    for key, sub in schema.get("properties", {}).items():
        yield from _objects(sub, key if path == "(top)" else f"{path}.{key}")
    entry = schema.get("additionalProperties")
    if isinstance(entry, dict):
        yield from _objects(entry, f"{path}.<name>")
    for branch in schema.get("oneOf", []) + schema.get("anyOf", []):
        yield from _objects(branch, path)


@pytest.mark.parametrize("schema_path", [CONFIG_SCHEMA, TRAITS_SCHEMA])
def test_every_key_is_described_and_every_object_is_closed(schema_path):
    schema = yaml.safe_load(open(schema_path))
    keys = list(_walk(schema))
    assert len(keys) > (100 if schema_path == CONFIG_SCHEMA else 4)
    undocumented = [k for k, sub in keys if not str(sub.get("description", "")).strip()]
    assert undocumented == []
    objects = list(_objects(schema))
    # closed: no unknown key, except a by-name mapping (demo.traits) whose entries are themselves closed
    open_ = [p for p, s in objects if s.get("additionalProperties", True) is True
             or (isinstance(s.get("additionalProperties"), dict) and "properties" not in s["additionalProperties"]
                 and s["additionalProperties"].get("type") == "object")]
    assert open_ == []
    assert all(s.get("additionalProperties") is False for p, s in objects if p.endswith("<name>"))
    # a block absent from the user's config is created (and then filled) only through its own default
    blocks = [k for k, sub in _walk({"properties": schema["properties"]}) if "properties" in sub]
    assert [k for k, sub in _walk({"properties": schema["properties"]}) if "properties" in sub
            and "<name>" not in k and "default" not in sub] == []
    assert len(blocks) >= (14 if schema_path == CONFIG_SCHEMA else 0)


def test_defaults_are_filled_into_nested_and_absent_blocks():
    cfg = validate_config({"harmonise": {"min_info": 0.5}})
    assert cfg["harmonise"] == {"min_info": 0.5, "palindromic_max_maf": 0.4, "min_maf": 0, "z_scale": "correlation",
                                "min_match_rate": 0.2, "strand_flip_threshold": 0.9, "n_max_spread": 0.1,
                                "reference_frequencies": None}
    assert cfg["train"]["lr"] == {"constant": 1e-3, "glm": 1e-3, "transformer": 1e-4}      # absent block, nested
    assert cfg["simulation"]["threshold"]["dims"] == [0, 2, 7, 12]
    partial = validate_config({"train": {"lr": {"glm": 0.5}}})
    assert partial["train"]["lr"] == {"constant": 1e-3, "glm": 0.5, "transformer": 1e-4}
    assert block_defaults("likelihood")["probes"] == 40
    # the iterative solver's defaults are the schema's
    from deepwas.likelihood.iterative import DEFAULTS
    assert DEFAULTS == {k: v for k, v in block_defaults("likelihood").items() if k != "solver"}


@pytest.mark.parametrize("typo, key, suggestion", [
    ({"chromosome": ["1", "2"]}, "chromosome", "chromosomes"),
    ({"harmonise": {"zscale": "raw"}}, "harmonise.zscale", "harmonise.z_scale"),
    ({"features": {"trackwindow": 64}}, "features.trackwindow", "features.track_window"),
    ({"likelihood": {"probs": 10}}, "likelihood.probs", "likelihood.probes"),
    ({"train": {"lr": {"transfomer": 0.1}}}, "train.lr.transfomer", "train.lr.transformer"),
    ({"demo": {"traits": {"t": {"h2": 0.5, "weights": {"coding": 1.0}, "trackscale": 1}}}},
     "demo.traits.t.trackscale", "demo.traits.t.track_scale"),
])
def test_unknown_key_names_it_and_the_closest_valid_name(typo, key, suggestion):
    with pytest.raises(ConfigError) as err:
        validate_config(copy.deepcopy(typo))
    msg = str(err.value)
    assert f"unknown key '{key}'" in msg and f"did you mean '{suggestion}'?" in msg
    assert len(msg.splitlines()) <= MAX_LINES


def test_bad_value_names_the_key_value_and_description():
    with pytest.raises(ConfigError) as err:
        validate_config({"train": {"epochs": "ten"}, "ld": {"factor_dtype": "float16"}})
    msg = str(err.value)
    assert "'train.epochs'" in msg and "'ten' is not of type 'integer'" in msg and "Passes over the training" in msg
    assert "'ld.factor_dtype'" in msg and "float16" in msg
    assert len(msg.splitlines()) <= MAX_LINES
    with pytest.raises(ConfigError, match=r"'train.weight_decay': 'constant' is a required property"):
        validate_config({"train": {"weight_decay": {"glm": 0.1}}})        # per model: all three or one number


def test_unknown_key_names_the_file_that_sets_it(tmp_path):
    (tmp_path / "a.yaml").write_text("train: {epochs: 3}\n")
    (tmp_path / "b.yaml").write_text("train: {epoch: 3}\n")
    with pytest.raises(ConfigError, match=r"unknown key 'train.epoch' in .*b\.yaml; did you mean 'train.epochs'"):
        load_config(tmp_path / "a.yaml", tmp_path / "b.yaml")


def _sheet(text):
    return pd.read_csv(pd.io.common.StringIO(text), sep="\t", dtype=str, comment="#", keep_default_na=False)


def test_trait_sheet_is_validated_with_defaults():
    t = validate_traits(_sheet("trait\tpath\tformat\tn\ts2\na\tx.gz\t\t1000\t\nb\ty.gz\tldsc\t\t0.9\n"), "s.tsv")
    assert list(t["format"]) == ["auto", "ldsc"]
    assert t.loc[0, "n"] == 1000.0 and pd.isna(t.loc[0, "s2"]) and t.loc[1, "s2"] == 0.9
    minimal = validate_traits(_sheet("trait\tpath\na\tx.gz\n"), "s.tsv")
    assert list(minimal.columns) == ["trait", "path", "format", "n", "s2"] and minimal.loc[0, "format"] == "auto"
    cases = [("trait\tpath\tformt\na\tx\n", r"s.tsv: unknown column 'formt'; did you mean 'format'\?"),
             ("trait\tfile\na\tx\n", r"s.tsv: unknown column 'file'"),
             ("trait\tformat\na\tauto\n", r"missing column\(s\) \['path'\]"),
             ("trait\tpath\tformat\na\tx\tldsc2\n", r"row 1 \(a\), column 'format': 'ldsc2' is not one of"),
             ("trait\tpath\tn\na\tx\tmany\n", r"column 'n': 'many' is not a number"),
             ("trait\tpath\ts2\na\tx\t-1\n", r"column 's2'"),
             ("trait\tpath\na/b\tx\n", r"column 'trait'"),
             ("trait\tpath\na\tx\na\ty\n", r"duplicated trait names \['a'\]")]
    for text, pattern in cases:
        with pytest.raises(ConfigError, match=pattern) as err:
            validate_traits(_sheet(text), "s.tsv")
        assert len(str(err.value).splitlines()) <= MAX_LINES


def test_trait_formats_match_the_reader():
    from deepwas.formats.sumstats import FORMATS
    enum = yaml.safe_load(open(TRAITS_SCHEMA))["properties"]["format"]["enum"]
    assert enum == ["auto", *FORMATS]


# ------------------------------------------------------------------------------------------ through Snakemake
def _snakemake(workdir, *args, timeout=120):
    """`snakemake -n` on the repository's Snakefile in `workdir`; (returncode, stdout + stderr)."""
    env = dict(os.environ, PYTHONPATH=str(ROOT / "workflow/scripts") + os.pathsep + os.environ.get("PYTHONPATH", ""))
    r = subprocess.run([sys.executable, "-m", "snakemake", "-n", "--nolock", "--cores", "1",
                        "-s", str(ROOT / "Snakefile"), *args],
                       cwd=workdir, capture_output=True, text=True, timeout=timeout, env=env)
    return r.returncode, r.stdout + r.stderr


def _e2e_copy(tmp_path, edit=lambda c: c, sheet=None):
    cfg = yaml.safe_load((ROOT / "tests/e2e/config.yaml").read_text())
    (tmp_path / "config.yaml").write_text(yaml.safe_dump(edit(cfg)))
    shutil.copy(ROOT / "tests/e2e/traits.tsv", tmp_path / "traits.tsv")
    if sheet is not None:
        (tmp_path / "traits.tsv").write_text(sheet)
    return tmp_path


def _nested_typo(c):
    c["harmonise"]["zscale"] = c["harmonise"].pop("z_scale")
    return c


def _top_typo(c):
    c["heldout_chromosome"] = c.pop("heldout_chromosomes")
    return c


@pytest.mark.parametrize("edit, sheet, expected", [
    (_top_typo, None, "config: unknown key 'heldout_chromosome' in config.yaml; did you mean 'heldout_chromosomes'?"),
    (_nested_typo, None, "config: unknown key 'harmonise.zscale' in config.yaml; did you mean 'harmonise.z_scale'?"),
    (lambda c: c, "trait\tpath\tformat\tsamplesize\ts2\nenriched\tx.gz\tauto\t\t0.9\n",
     "traits.tsv: unknown column 'samplesize'"),
    (lambda c: c, "trait\tpath\tfromat\tn\ts2\nenriched\tx.gz\tauto\t\t0.9\n",
     "traits.tsv: unknown column 'fromat'; did you mean 'format'?"),
])
def test_snakemake_stops_a_typo_with_a_short_message(tmp_path, edit, sheet, expected):
    rc, out = _snakemake(_e2e_copy(tmp_path, edit, sheet), "--configfile", "config.yaml")
    assert rc != 0
    assert expected in out
    assert len(out.splitlines()) <= 12, out                            # no schema dump
    assert "additionalProperties" not in out and "$schema" not in out


PAPER = {   # Sec. 6.2, App. A.1, A.3, B.1, D
    "heldout_chromosomes": ["6", "7", "8"], "chromosomes": [str(c) for c in range(1, 23)],
    "ld.source": "ukbb", "ld.window_length": 3_000_000, "ld.window_stride": 1_000_000,
    "features.tracks": True, "features.track_window": 256, "prior.alpha": 0.7, "prior.learn_alpha": False,
    "network.size": "full", "network.norm": "batch",
    "train.epochs": 10, "train.lr": {"constant": 1e-3, "glm": 1e-3, "transformer": 1e-4}, "train.warmup_steps": 100,
    "train.accumulate": 12, "train.weight_decay": 0.01, "train.clip_grad_norm": None,
    "models": ["constant", "glm", "transformer"], "objectives": ["deepwas", "ldsr"],
    "simulation.threshold": {"dims": [0, 2, 7, 12], "values": [0.7, 0.5, 1.37, 0.5],
                             "active_fractions": [0.5, 0.25, 1.0, 0.5]},
    "simulation.epochs": 10, "simulation.lr": {"constant": 1e-3, "glm": 1e-3, "transformer": 1e-4},
    "simulation.warmup_steps": 100, "simulation.accumulate": 12, "simulation.truths": ["network", "threshold"],
}
DEMO = {   # the demo's own settings (config/config.yaml), unchanged
    "heldout_chromosomes": ["4"], "ld.source": "demo", "features.track_window": 64, "network.size": "tiny",
    "network.norm": "layer", "network.dropout": 0.3, "train.epochs": 6, "train.warmup_steps": 20,
    "train.lr": {"constant": 0.02, "glm": 0.02, "transformer": 0.002}, "train.accumulate": 1, "train.seed": 1,
    "train.weight_decay": {"constant": 0.01, "glm": 0.01, "transformer": 0.1},
    "features.track_manifest": "resources/demo/tracks/manifest.tsv", "simulation.threshold.dims": [0, 1, 2, 3],
    "simulation.epochs": 8, "demo.n_gwas": None,
}


def _get(cfg, dotted):
    for k in dotted.split("."):
        cfg = cfg[k]
    return cfg


@pytest.fixture(scope="module")
def effective(tmp_path_factory):
    """results/config.yaml of `snakemake -n` in a copy of config/: (paper run, demo run, seconds of the paper's)."""
    import time

    out = {}
    for name, args in (("ukbb", ["--configfile", "config/ukbb.yaml"]), ("demo", [])):
        work = tmp_path_factory.mktemp(name)
        shutil.copytree(ROOT / "config", work / "config")
        t0 = time.time()
        rc, log = _snakemake(work, *args, timeout=300)
        out[name + "_s"] = time.time() - t0
        assert rc == 0, log[-3000:]
        out[name] = yaml.safe_load((work / "results/config.yaml").read_text())
        out[name + "_log"] = log
    return out


def test_the_paper_run_is_the_papers(effective):
    cfg = effective["ukbb"]
    for key, value in PAPER.items():
        assert _get(cfg, key) == value, key
    assert cfg == load_config(ROOT / "config/ukbb.yaml")            # the Snakefile and the helper agree
    # nothing of the demo: no key takes the demo's value where the demo differs from the paper
    assert "dropout" not in cfg["network"]                           # the full size's (Enformer's) dropout
    import torch
    from deepwas.networks import SIZES
    full = SIZES[cfg["network"]["size"]]
    assert (full["dim"], full["depth"]) == (1536, 2) and 51e6 < full["expected_params"] < 53e6
    adamw = torch.optim.AdamW([torch.zeros(1, requires_grad=True)]).defaults
    assert cfg["train"]["weight_decay"] == adamw["weight_decay"]     # AdamW's default hyperparameters
    assert "extended by additional config" not in effective["ukbb_log"]
    print(f"paper DAG built offline in {effective['ukbb_s']:.1f} s")   # measured, not asserted (no wall-clock limits in tests)


def test_the_demo_stays_the_default(effective):
    cfg = effective["demo"]
    for key, value in DEMO.items():
        assert _get(cfg, key) == value, key
    assert cfg == load_config()
    assert cfg["traits"] == "config/traits.tsv" and cfg["chromosomes"] == ["1", "2", "3", "4"]


def test_effective_config_is_rewritten_only_when_it_changes(tmp_path):
    path = tmp_path / "results/config.yaml"
    cfg = load_config()
    assert write_effective_config(cfg, path)
    before = path.stat().st_mtime_ns
    os.utime(path, ns=(before - 10**9, before - 10**9))
    assert not write_effective_config(load_config(), path)           # same content: untouched
    assert path.stat().st_mtime_ns == before - 10**9
    cfg["train"]["epochs"] = 3
    assert write_effective_config(cfg, path)
    assert yaml.safe_load(path.read_text()) == cfg
    assert list(tmp_path.glob("results/.*tmp")) == []


def test_config_readme_is_generated_from_the_schema():
    r = subprocess.run([sys.executable, str(ROOT / "workflow/scripts/render_config_docs.py"), "--check"],
                       capture_output=True, text=True)
    assert r.returncode == 0, r.stderr


def test_no_config_fallback_defaults_outside_the_schema():
    """Config values are read as config[...][...]; a `.get(key, default)` on them would be a second default."""
    config_get = re.compile(r"\b(config|train_cfg|prior_cfg|solver_cfg|train|cfg)(\[[^\]]+\])*\.get\(")
    files = [*(ROOT / "workflow/rules").glob("*.smk"), ROOT / "Snakefile", *(ROOT / "workflow/scripts").glob("*.py"),
             ROOT / "workflow/scripts/deepwas/simulation.py"]
    hits = [f"{p.relative_to(ROOT)}:{i}: {line.strip()}" for p in files if p.exists()
            for i, line in enumerate(p.read_text().splitlines(), 1) if config_get.search(line)]
    assert hits == [], "\n".join(hits)
