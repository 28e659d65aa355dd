# Config validation and the helpers that turn the config into file lists. Rules call helpers; helpers
# never call rules.
import math
import sys
from pathlib import Path

import pandas as pd

from deepwas.config import validate_config, validate_traits, write_effective_config
from deepwas.downloads import UKBB_LD_PANEL_SIZE
from deepwas.export import HELDOUT_LABEL, fold_training_chromosomes, scoring_plan
from deepwas.formats.plink import normalise_chrom, plink_paths, read_fam_size
from deepwas.panel import bim_positions, memory_mb, panel_windows, window_sizes
from deepwas.windows import Window, tile

# The schema is the only source of defaults: validate_config fills them into `config` (nested objects too,
# absent ones included) and stops a mistyped key with a few lines naming it and the closest valid name.
validate_config(
    config, str(Path(workflow.basedir, "config", "schema", "config.schema.yaml")), sources=workflow.configfiles
)
# Provenance: the effective config of this run (rewritten only when it changes, so it never triggers reruns).
write_effective_config(config, "results/config.yaml")

TRAITS = validate_traits(
    pd.read_csv(config["traits"], sep="\t", dtype=str, comment="#", keep_default_na=False),
    path=config["traits"],
    schema_path=str(Path(workflow.basedir, "config", "schema", "traits.schema.yaml")),
)
TRAITS = TRAITS.set_index("trait", drop=False)

CHROMS = [str(c) for c in config["chromosomes"]]
HELDOUT = [str(c) for c in config["heldout_chromosomes"]]
TRAIN_CHROMS = [c for c in CHROMS if c not in HELDOUT]
if not HELDOUT or not TRAIN_CHROMS or set(HELDOUT) - set(CHROMS):
    raise ValueError("config: heldout_chromosomes must be a non-empty proper subset of chromosomes")


wildcard_constraints:
    trait="[^/]+",
    chrom="[0-9XY]+",
    model="constant|glm|transformer",
    objective="deepwas|ldsr",


def traits():
    return list(TRAITS.index)


def trait_value(trait, key):
    v = TRAITS.loc[trait].get(key) if key in TRAITS.columns else None
    return None if v is None or (isinstance(v, float) and math.isnan(v)) else v


def ld_root():
    """Directory of the LD windows: the demo's, the workflow's own for a PLINK panel (source plink: one
    directory per chromosome, rule plink_ld_windows), else ld.dir (UKBB downloads, or the user's own for source local).
    """
    return {"demo": "resources/demo/ld", "plink": "resources/plink_ld"}.get(config["ld"]["source"], config["ld"]["dir"])


def plink_prefix():
    """ld.plink, the PLINK panel's path prefix (source plink); `{chrom}` in it stands for the chromosome."""
    prefix = config["ld"]["plink"]
    if not prefix:
        raise ValueError(
            "ld.source is plink but ld.plink is not set: give the path prefix of your .bed/.bim/.fam "
            "(e.g. ld.plink: panel/mypanel, or panel/chr{chrom} for one file set per chromosome)"
        )
    return str(prefix)


def plink_inputs(wildcards):
    """The .bed / .bim / .fam of one chromosome of the PLINK panel (rule plink_ld_windows)."""
    return {ext: str(path) for ext, path in plink_paths(plink_prefix(), wildcards.chrom).items()}


_BIM_POSITIONS, _PLINK_WINDOWS = {}, {}


def plink_positions(chrom):
    """Positions of one chromosome in the PLINK panel's .bim (each .bim is read once, at DAG time)."""
    bim = str(plink_paths(plink_prefix(), chrom)["bim"])
    if bim not in _BIM_POSITIONS:
        _BIM_POSITIONS[bim] = bim_positions(bim)
    pos = _BIM_POSITIONS[bim].get(normalise_chrom(chrom))
    if pos is None:
        raise ValueError(
            f"{bim}: no variant on chromosome {chrom} (chromosomes there: "
            f"{sorted(_BIM_POSITIONS[bim])}); drop it from `chromosomes` or point ld.plink at a panel that has it"
        )
    return pos


def plink_windows(chrom):
    """Window names of one chromosome of the PLINK panel: the grid windows holding a .bim position."""
    ld = config["ld"]
    key = (plink_prefix(), str(chrom), ld["window_length"], ld["window_stride"])
    if key not in _PLINK_WINDOWS:
        _PLINK_WINDOWS[key] = [w.name for w in panel_windows(plink_positions(chrom), chrom, *key[2:])]
    return _PLINK_WINDOWS[key]


def plink_mem_mb(wildcards):
    """Memory of rule plink_ld_windows for one chromosome, from its largest window (known from the .bim)."""
    sizes = window_sizes(plink_positions(wildcards.chrom), [Window.parse(w) for w in plink_windows(wildcards.chrom)])
    return memory_mb(ld_panel_size(wildcards.chrom), max(sizes))


def ld_panel_size(chrom):
    """People the LD of a chromosome was computed on (LD-score bias correction): the demo cohort, the PLINK
    panel's .fam, else ld.panel_size (null: UKBB's 337,545; required for source local, see validate_config)."""
    ld = config["ld"]
    if ld["source"] == "demo":
        return config["demo"]["n_individuals"]
    if ld["source"] == "plink":
        return read_fam_size(plink_paths(plink_prefix(), chrom)["fam"])
    return UKBB_LD_PANEL_SIZE if ld["panel_size"] is None else ld["panel_size"]


def mismatch_panel_size():
    """People of the LD panel when the LD is not the statistics' own (ld.source plink or local, or
    likelihood.mismatch: panel): the finite-panel correction. 0 for UKBB and the demo under auto (in-sample LD)."""
    if config["ld"]["source"] not in ("plink", "local") and config["likelihood"]["mismatch"] != "panel":
        return 0
    return min(int(ld_panel_size(c)) for c in TRAIN_CHROMS)


def ld_manifest():
    """The window manifest: ld.manifest, else the shipped UKBB one for source ukbb; None for local without one."""
    path = config["ld"]["manifest"]
    if path:
        return shipped_path(path)
    return shipped_path("resources/ukbb_ld_windows.tsv") if config["ld"]["source"] == "ukbb" else None


_LOCAL_WINDOWS = {}


def local_ld_windows():
    """{chromosome: [window names]} of the user's windows in ld.dir (source local): every chr{c}_{start}_{end}.npz
    with its .gz, on the configured window grid. Read-only: nothing in ld.dir is ever written or deleted."""
    ld = config["ld"]
    root = Path(ld_root())
    if root not in _LOCAL_WINDOWS:
        if not root.is_dir():
            raise ValueError(
                f"ld.source is local but ld.dir {root} is not a directory: put your LD windows there "
                "(chr{c}_{start}_{end}.npz + .gz, UKBB layout) or set ld.dir"
            )
        found = {}
        for npz in sorted(root.glob("chr*_*_*.npz")):
            w = Window.parse(npz.name[: -len(".npz")])
            if not (root / f"{w.name}.gz").is_file():
                raise ValueError(f"{npz}: LD window without its variant table {w.name}.gz in {root}")
            if w.end - w.start != ld["window_length"] or (w.start - 1) % ld["window_stride"]:
                raise ValueError(
                    f"{npz}: not a {ld['window_length']}-bp window on the {ld['window_stride']}-bp grid "
                    "starting at 1; set ld.window_length / ld.window_stride to your windows' geometry"
                )
            found.setdefault(w.chrom, []).append(w)
        _LOCAL_WINDOWS[root] = {c: [w.name for w in sorted(ws)] for c, ws in found.items()}
    return _LOCAL_WINDOWS[root]


def windows(chrom):
    """Windows of one chromosome: the demo's geometry, the manifest's 'npz' rows, or (source local without a
    manifest) the listing of ld.dir."""
    ld = config["ld"]
    if ld["source"] == "demo":
        return [w.name for w in tile(chrom, config["demo"]["chrom_length"], ld["window_length"], ld["window_stride"])]
    if ld["source"] == "plink":
        return plink_windows(chrom)
    if ld_manifest() is None:
        names = local_ld_windows().get(str(chrom), [])
        if not names:
            raise ValueError(
                f"ld.dir {ld_root()} has no LD window of chromosome {chrom} "
                f"(chr{chrom}_{{start}}_{{end}}.npz + .gz); drop it from `chromosomes` or add its windows"
            )
        return names
    man = pd.read_csv(ld_manifest(), sep="\t", comment="#", dtype={"chromosome": str})
    man = man[(man["chromosome"] == str(chrom)) & (man["kind"] == "npz")]
    return list(man["name"])


def window_prefixes(chrom):
    if config["ld"]["source"] == "plink":
        return [f"{ld_root()}/chr{chrom}/{w}" for w in windows(chrom)]
    return [f"{ld_root()}/{w}" for w in windows(chrom)]


def ld_window_inputs(chrom, exts=("npz", "gz")):
    """What a rule lists as input for one chromosome's LD windows. UKBB windows are downloaded into ld.dir beside
    Snakemake, not as its outputs (so no rerun can delete them): their lock records stand for them. The demo's
    windows are outputs of the demo rule; the user's own windows (source local) are plain inputs."""
    if config["ld"]["source"] == "ukbb":
        return [f"resources/locks/ukbb_ld/{w}.json" for w in windows(chrom)]
    if config["ld"]["source"] == "plink":
        return [f"{ld_root()}/chr{chrom}"]  # the directory output of rule plink_ld_windows
    return [f"{p}.{ext}" for p in window_prefixes(chrom) for ext in exts]


def all_ld_variant_lists():
    return [f"{p}.gz" for c in CHROMS for p in window_prefixes(c)]


def all_ld_variant_inputs():
    return [f for c in CHROMS for f in ld_window_inputs(c, exts=("gz",))]


def chrom_inputs(chroms, trait):
    return {
        "factors": [f"results/ld_factors/chr{c}" for c in chroms],
        "manifests": [f"results/ld_factors/chr{c}.manifest.tsv" for c in chroms],
        "stats": [f"results/stats/{trait}/chr{c}.npz" for c in chroms],
    }


# --- cluster resources ---
# GPUs are requested through the resource `gpu` (snakemake-executor-plugin-slurm turns it into `--gpus=N`);
# threads, runtime and memory of each rule are set in the workflow profile profiles/default/config.yaml.


def gpu_for(wildcards, job="train"):
    """GPUs of one job of a prior (by its `model` wildcard); 0 for every job when `train.device` is cpu.

    job 'train' (train, train_fold, ablations): the transformer `train.gpus` (default 1; the training script
    starts one process per GPU, torchrun, when there are several); constant and GLM 1 for the deepwas
    objective, whose cost is the exact likelihood: 17 s per window step on a CPU core (108 CPU-hours, about 27 h
    on 8 threads at UKBB size) against 0.031 s per window on a GPU (benchmarks/RESULTS.md); 0 for ldsr (no
    likelihood).
    job 'inference' (evaluate, export_priors, apply_prior_*, prior_h2): the transformer 1, one process (its
    forward is about 1,600 s per window on a CPU core: 207 CPU-hours to evaluate, about 1,500 to score the ~13M
    variants); constant and GLM 0: their evaluation is 11 s per held-out window on a CPU (1.4 CPU-hours in
    all), the GLM's scoring a linear map, and their jackknife runs in float64 on the CPU."""
    if str(config["train"]["device"]) == "cpu":
        return 0
    if wildcards.model != "transformer":
        return int(job == "train" and wildcards.objective == "deepwas")
    return int(config["train"]["gpus"]) if job == "train" else 1


def gpu_partition(gpus):
    """`slurm_partition` for rules with a `gpu` resource, only when $DEEPWAS_SLURM_GPU_PARTITION is set: GPU
    jobs go there, the others stay in $DEEPWAS_SLURM_PARTITION. Unset, the site profile's partition applies
    to every job. `gpus` is the rule's `gpu` resource (an int or a callable of the wildcards)."""
    import os

    if not os.environ.get("DEEPWAS_SLURM_GPU_PARTITION"):
        return {}

    def partition(wildcards):
        n = gpus(wildcards) if callable(gpus) else gpus
        name = "DEEPWAS_SLURM_GPU_PARTITION" if n else "DEEPWAS_SLURM_PARTITION"
        if not os.environ.get(name):
            raise ValueError(f"DEEPWAS_SLURM_GPU_PARTITION is set but {name} is not: export {name}=<partition>")
        return os.environ[name]

    return {"slurm_partition": partition}


def torch_env(wildcards, job="train"):
    """Conda environment of a job of a prior (--sdm conda): the CUDA build of torch where the job gets a GPU."""
    return "../../envs/deepwas-cuda.yaml" if gpu_for(wildcards, job) else "../../envs/deepwas.yaml"


# --- end cluster resources ---


def use_tracks():
    """Whether the models read functional tracks (features.tracks): the store, liftover and normalisation."""
    return bool(config["features"]["tracks"])


def track_inputs(chroms):
    """Rule inputs of the features of variants on `chroms`: the annotation table (features.annotations, e.g.
    the dbNSFP table of rule dbnsfp_table) and with tracks the store, normalisation and liftover tables."""
    ann = {"annotations": config["features"]["annotations"]} if config["features"]["annotations"] else {}
    if not use_tracks():
        return ann
    return {
        **ann,
        "store": "results/features/store",
        "normalisation": "results/features/normalisation.json",
        "liftover": [f"results/liftover/chr{c}.tsv.gz" for c in chroms],
    }


def track_params(chroms):
    """What the train / evaluate scripts need to read track windows (None without tracks)."""
    if not use_tracks():
        return None
    return {
        "window": config["features"]["track_window"],
        "liftover": {c: f"results/liftover/chr{c}.tsv.gz" for c in chroms},
        "exclude": config["features"]["exclude_tracks"],
    }


def demo_track_inputs(wildcards):
    """The demo's true f reads the synthetic tracks (when the models do): store and chain are inputs."""
    if not use_tracks() or config["ld"]["source"] != "demo":
        return {}
    return {"store": "results/features/store", "chain": dl_chain_file()}


def demo_track_truth():
    tt = config["demo"]["track_truth"]
    if not use_tracks() or config["ld"]["source"] != "demo" or not tt:
        return None
    return dict(tt, window=config["features"]["track_window"])


def track_manifest():
    return config["features"]["track_manifest"]


def grch38_sizes():
    return config["features"]["chrom_sizes_grch38"]


def simulation_truths():
    return [str(t) for t in config["simulation"]["truths"]]


def demo_truth(wildcards):
    return f"resources/demo/truth/{wildcards.trait}.tsv.gz"


def evaluated():
    out = [
        f"results/evaluation/{t}/{m}/{o}.json" for t in traits() for m in config["models"] for o in config["objectives"]
    ]
    if config["ld"]["source"] == "demo" and config["demo"]["oracle"]:
        out += [f"results/evaluation/{t}/oracle/truth.json" for t in traits()]
    return out


def check_trait_paths():
    """Every trait-sheet path exists or is made by a rule (demo cohort, downloads); else stop naming the row.

    Checked when the DAG is built, so a missing file is an error even where an earlier harmonised table exists.
    """
    bad = []
    for t in traits():
        p = sumstats_input(t)
        if not Path(p).exists() and not any(r.is_producer(p) for r in workflow.rules):
            bad.append(f"row '{t}': {TRAITS.loc[t, 'path']} does not exist")
    if bad:
        raise ValueError(
            f"{config['traits']}: summary-statistics file(s) missing and made by no rule: "
            + "; ".join(bad)
            + ". Fix the path in the trait sheet or remove the row."
        )


def get_final_output():
    check_trait_paths()
    # the figures too, so that `snakemake --report` (which reports the default target's DAG) shows them
    return [
        "results/evaluation/summary.tsv",
        "results/summary.txt",
        "results/report/config.yaml",
        *figure_targets(),
        *priors_outputs(),
    ]  # workflow/rules/priors.smk


def print_summary(started_at):
    """End of a run: the held-out summary when this run (started at `started_at`, seconds since the epoch)
    wrote it, and where the figures, the report and the logs are."""
    p = Path("results/summary.txt")
    if p.exists() and p.stat().st_mtime >= started_at:
        print(f"\n{p.read_text()}")
    figs = sorted(str(f) for f in Path("results/figures").glob("*.png")) if Path("results/figures").is_dir() else []
    if figs:
        print("Figures: " + ", ".join(figs))
    print(
        "Report with figures and tables: snakemake --report report.html (add your --configfile); "
        "logs of every step: logs/ (training: logs/train/, per-epoch loss and time left)"
    )


# --- figures and ablations (paper Figs. 2-7, Table 1) ---
def _merged(base, overrides):
    """`base` with `overrides` merged in, nested dictionaries key by key (a copy; neither is changed)."""
    out = dict(base)
    for k, v in (overrides or {}).items():
        out[k] = _merged(base[k], v) if isinstance(v, dict) and isinstance(base.get(k), dict) else v
    return out


def fig3_choice():
    """(trait, model, objective, chromosome, start, end, tracks) of Fig. 3 from the `figures` block."""
    fc = config["figures"]
    trait = fc["trait"] or traits()[0]
    if trait not in traits():
        raise ValueError(f"figures.trait {trait!r} is not in the trait sheet {config['traits']} ({traits()})")
    model = fc["model"] or ("transformer" if "transformer" in config["models"] else config["models"][-1])
    objective = fc["objective"] or config["objectives"][0]
    if model not in config["models"] or objective not in config["objectives"]:
        raise ValueError(
            f"figures.model / figures.objective ({model}, {objective}) are not trained: "
            f"choose from models {config['models']} and objectives {config['objectives']}"
        )
    region = fc["region"]
    chrom = str(region["chromosome"] or HELDOUT[0])
    if chrom not in CHROMS:
        raise ValueError(f"figures.region.chromosome {chrom!r} is not one of `chromosomes` {CHROMS}")
    return trait, model, objective, chrom, region["start"], region["end"], fc["tracks"]


def ablation_names():
    return [str(a) for a in config["ablations"]["runs"]]


def ablation_run(name):
    """The settings one ablation changes (ablations.runs.{name})."""
    runs = config["ablations"]["runs"]
    if name not in runs:
        raise ValueError(f"no ablation named {name!r} in ablations.runs ({sorted(runs)})")
    return runs[name]


def ablation_config(name):
    """The run's config with the ablation's settings in place (track window, excluded tracks, annotations,
    network overrides; its reduced windows are read by ablation_reduced_windows)."""
    run = ablation_run(name)
    features = {k: run[k] for k in ("track_window", "exclude_tracks", "annotations") if k in run}
    network = run["network"] if "network" in run else {}  # an ablation changes only what it names
    return _merged(config, {"features": features, "network": network})


def ablation_reduced_windows(name):
    """Reduced (i)+ settings of the ablation (App. A.3), or None."""
    return ablation_run(name).get("reduced_windows")


def ablation_chrom_inputs(name, chroms, trait):
    """chrom_inputs of an ablation's training: its own factors and statistics under reduced (i)+, else the run's."""
    if not ablation_reduced_windows(name):
        return chrom_inputs(chroms, trait)
    root = f"results/ablations/{name}"
    return {
        "factors": [f"{root}/ld_factors/chr{c}" for c in chroms],
        "manifests": [f"{root}/ld_factors/chr{c}.manifest.tsv" for c in chroms],
        "stats": [f"{root}/stats/{trait}/chr{c}.npz" for c in chroms],
    }


def ablation_track_params(name, chroms):
    """track_params of the ablation's config (its track window and excluded tracks)."""
    if not use_tracks():
        return None
    feats = ablation_config(name)["features"]
    return {
        "window": feats["track_window"],
        "liftover": {c: f"results/liftover/chr{c}.tsv.gz" for c in chroms},
        "exclude": feats["exclude_tracks"],
    }


def ablations_trained():
    """Whether ablations.models / ablations.objectives are all trained in the full run (Table 1 compares)."""
    ab = config["ablations"]
    return set(ab["models"]) <= set(config["models"]) and set(ab["objectives"]) <= set(config["objectives"])


def ablation_evaluated():
    ab = config["ablations"]
    if not ablations_trained():
        raise ValueError(
            f"ablations.models {ab['models']} / ablations.objectives {ab['objectives']} are not all "
            f"trained in the full run (models {config['models']}, objectives {config['objectives']}): "
            "nothing to compare with"
        )
    return [
        f"results/ablations/{a}/evaluation/{t}/{m}/{o}.json"
        for a in ablation_names()
        for t in traits()
        for m in ab["models"]
        for o in ab["objectives"]
    ]


def fig2_table():
    return shipped_path("benchmarks/results/fig2.tsv")


def figure_targets(notes=False):
    """Figures of `snakemake figures`: Figs. 2 (when the benchmark table exists), 3 and 5 always; Figs. 4/7
    and Fig. 6 + Table 1 only where `snakemake simulation` / `snakemake ablations` wrote their tables (the
    figures target never trains an experiment of its own)."""
    out = ["results/figures/fig3_region.png", "results/figures/heldout_pct.png"]
    if Path(fig2_table()).exists():
        out.append("results/figures/fig2.png")
    if all(Path(f"results/simulation/{t}/rmse.tsv").exists() for t in simulation_truths()):
        out.append("results/figures/simulation_rmse.png")
    elif notes:
        print(
            "figures: Figs. 4 and 7 need the semi-synthetic tables: run `snakemake simulation` first", file=sys.stderr
        )
    if ablation_names() and ablations_trained() and all(Path(f).exists() for f in ablation_evaluated()):
        out += ["results/figures/fig6_ablations.png", "results/ablations/table1.tsv", "results/ablations/table1.md"]
    elif notes:
        print("figures: Fig. 6 and Table 1 need the ablations: run `snakemake ablations` first", file=sys.stderr)
    return out


# --- downloads (App. D) ---
# Helpers for workflow/rules/download.smk. Everything is read from local manifests at parse time: building
# the DAG makes no network call. The `download:` block's defaults are in the schema (config/README.md).
def dl_cfg(key):
    return config["download"][key]


def shipped_path(path):
    """A path from the config; relative ones that do not exist in the working directory are the workflow's own."""
    p = Path(path)
    return p if p.is_absolute() or p.exists() else Path(workflow.basedir) / p


def _dl_manifest(key):
    return pd.read_csv(shipped_path(dl_cfg(key)), sep="\t", comment="#", dtype=str, keep_default_na=False)


def ukbb_ld_dir():
    """Where download_ukbb_ld_window writes: ld.dir, never with `ld.source` local (the user's directory)."""
    if config["ld"]["source"] == "local":
        raise ValueError(
            "ld.source is local: LD windows are never downloaded into ld.dir (your own windows); "
            "set ld.source: ukbb to download the UK Biobank windows"
        )
    return config["ld"]["dir"]


def dl_ld_chromosomes():
    return [str(c) for c in (dl_cfg("chromosomes") or CHROMS)]


def dl_ld_windows():
    """LD windows to download: kind 'npz' rows of the manifest on download.chromosomes (default: chromosomes)."""
    man = pd.read_csv(
        ld_manifest() or shipped_path("resources/ukbb_ld_windows.tsv"), sep="\t", comment="#", dtype={"chromosome": str}
    )
    man = man[man["chromosome"].isin(dl_ld_chromosomes()) & (man["kind"] == "npz")]
    return list(man["name"])


def dl_ukbb_traits():
    """Traits fetched from UKBB_409K: download.ukbb_traits, else trait-sheet rows whose path is under resources/ukbb/sumstats/."""
    if dl_cfg("ukbb_traits"):
        return list(dl_cfg("ukbb_traits"))
    return [t for t in traits() if str(TRAITS.loc[t, "path"]).startswith("resources/ukbb/sumstats/")]


def sumstats_input(trait):
    """Local path of a trait's statistics: a URL in the trait sheet becomes resources/sumstats/{trait}/{file}."""
    path = str(TRAITS.loc[trait, "path"])
    if path.startswith(("http://", "https://")):
        return f"resources/sumstats/{trait}/{Path(path.split('?')[0]).name}"
    return path


_DL_TRACKS = {}


def dl_tracks():
    """(source, name, manifest row) in the fixed feature order: UCSC, FANTOM, ENCODE manifests (read once)."""
    keys = ("ucsc_manifest", "fantom_manifest", "encode_manifest")
    cache_key = tuple(str(shipped_path(dl_cfg(k))) for k in keys)
    if cache_key not in _DL_TRACKS:
        rows = [(k.split("_")[0], r["name"], dict(r)) for k in keys for _, r in _dl_manifest(k).iterrows()]
        names = [r[1] for r in rows]
        if len(set(names)) != len(names):
            raise ValueError("config/manifests: duplicated track names across the UCSC/FANTOM/ENCODE manifests")
        _DL_TRACKS[cache_key] = rows
    return _DL_TRACKS[cache_key]


def dl_track_names():
    return [name for _, name, _ in dl_tracks()]


def dl_track_files():
    return [f"resources/tracks/{s}/{n}.bigWig" for s, n, _ in dl_tracks()]


def dl_track_locks():
    return [f"resources/locks/tracks/{s}/{n}.json" for s, n, _ in dl_tracks()]


def dl_track_row(source, name):
    """The manifest row (dict of strings) of one track."""
    for s, n, row in dl_tracks():
        if s == source and n == name:
            return row
    raise ValueError(f"no {source} track named {name!r} in config/manifests")


def dl_track_url(source, name):
    return dl_track_row(source, name)["url"]


def dl_encode_accession(name):
    return dl_track_row("encode", name)["accession"]


def dl_chain_file():
    return config["features"]["chain"]


# --- end downloads ---


# --- per-variant priors (workflow/rules/priors.smk) ---


def priors_cfg(key):
    return config["priors"][key]


def prior_models():
    return [m for m in (priors_cfg("models") or config["models"]) if m in config["models"]]


def prior_plan():
    """{chromosome: 'heldout' | 'fold{g}'}: which model scores which chromosome."""
    return scoring_plan(CHROMS, HELDOUT, priors_cfg("folds"))


def fold_chroms(fold):
    return fold_training_chromosomes(TRAIN_CHROMS, priors_cfg("folds"), int(fold))


def scoring_model(trait, model, objective, label):
    if label == HELDOUT_LABEL:
        return f"results/train/{trait}/{model}/{objective}/model.pt"
    return f"results/train_folds/{trait}/{model}/{objective}/{label}/model.pt"


def prior_files(prefix, chroms):
    return {
        "parquet": [f"{prefix}/chr{c}.parquet" for c in chroms],
        "text": [f"{prefix}/chr{c}.txt.gz" for c in chroms],
    }


def priors_outputs():
    out = []
    for t in traits():
        for m in prior_models():
            for o in config["objectives"]:
                out += prior_files(f"results/priors/{t}/{m}/{o}", prior_plan())["parquet"]
                out.append(f"results/h2/{t}/{m}/{o}.tsv")
    for name, a in priors_cfg("apply").items():
        out += prior_files(f"results/priors_applied/{name}", applied_chroms(a))["parquet"]
    return out


def applied_chroms(a):
    return [str(c) for c in (a.get("chromosomes") or CHROMS)]


def applied_model(a):
    m = a["model"]
    if m.endswith(".pt"):
        return m
    parts = m.split("/")
    if len(parts) != 3:
        raise ValueError(f"config priors.apply: model {m!r} is neither 'trait/model/objective' nor a .pt path")
    return f"results/train/{parts[0]}/{parts[1]}/{parts[2]}/model.pt"


def copy_effective_config(src, dst):
    """The effective config checked against the schema again and copied for the report (rule effective_config)."""
    import shutil

    import yaml

    validate_config(yaml.safe_load(Path(src).read_text()), sources=[src])
    shutil.copyfile(src, dst)
