# Config validation and the helpers that turn the config into file lists. Rules call helpers; helpers
# never call rules.
import math
from pathlib import Path

import pandas as pd
from snakemake.utils import validate

from deepwas.windows import Window, tile

validate(config, schema="../../config/schema/config.schema.yaml")

TRAITS = pd.read_csv(config["traits"], sep="\t", dtype={"trait": str, "path": str, "format": str}, comment="#")
for _col in ("trait", "path"):
    if _col not in TRAITS.columns:
        raise ValueError(f"{config['traits']}: trait sheet lacks the column '{_col}' (columns: trait path format n s2)")
TRAITS = TRAITS.set_index("trait", drop=False)
if TRAITS.index.duplicated().any():
    raise ValueError(f"{config['traits']}: duplicated trait names {sorted(TRAITS.index[TRAITS.index.duplicated()])}")

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
    return "resources/demo/ld" if config["ld"]["source"] == "demo" else config["ld"]["dir"]


def windows(chrom):
    """Windows of one chromosome: the demo's geometry, or the shipped UKBB manifest."""
    ld = config["ld"]
    if ld["source"] == "demo":
        return [w.name for w in tile(chrom, config["demo"]["chrom_length"], ld["window_length"], ld["window_stride"])]
    man = pd.read_csv(shipped_path(ld["manifest"]), sep="\t", comment="#", dtype={"chromosome": str})
    man = man[(man["chromosome"] == str(chrom)) & (man["kind"] == "npz")]
    return list(man["name"])


def window_prefixes(chrom):
    return [f"{ld_root()}/{w}" for w in windows(chrom)]


def all_ld_variant_lists():
    return [f"{p}.gz" for c in CHROMS for p in window_prefixes(c)]


def n_variants_genome():
    return config["ld"].get("n_variants_genome") or 0


def chrom_inputs(chroms, trait):
    return {
        "factors": [f"results/ld_factors/chr{c}" for c in chroms],
        "manifests": [f"results/ld_factors/chr{c}.manifest.tsv" for c in chroms],
        "stats": [f"results/stats/{trait}/chr{c}.npz" for c in chroms],
    }


def use_tracks():
    """Whether the models read functional tracks (features.tracks): the store, liftover and normalisation."""
    return bool(config["features"].get("tracks", False))


def track_inputs(chroms):
    """Rule inputs of the track features of variants on `chroms` ({} without tracks)."""
    if not use_tracks():
        return {}
    return {
        "store": "results/features/store",
        "normalisation": "results/features/normalisation.json",
        "liftover": [f"results/liftover/chr{c}.tsv.gz" for c in chroms],
    }


def track_params(chroms):
    """What the train / evaluate scripts need to read track windows (None without tracks)."""
    if not use_tracks():
        return None
    return {"window": config["features"].get("track_window", 64),
            "liftover": {c: f"results/liftover/chr{c}.tsv.gz" for c in chroms}}


def demo_track_inputs(wildcards):
    """The demo's true f reads the synthetic tracks (when the models do): store and chain are inputs."""
    if not use_tracks() or config["ld"]["source"] != "demo":
        return {}
    return {"store": "results/features/store", "chain": dl_chain_file()}


def demo_track_truth():
    tt = config["demo"].get("track_truth")
    if not use_tracks() or config["ld"]["source"] != "demo" or not tt:
        return None
    return dict(tt, window=config["features"].get("track_window", 64))


def demo_truth(wildcards):
    return f"resources/demo/truth/{wildcards.trait}.tsv.gz"


def evaluated():
    out = [f"results/evaluation/{t}/{m}/{o}.json" for t in traits() for m in config["models"] for o in config["objectives"]]
    if config["ld"]["source"] == "demo" and config["demo"].get("oracle", True):
        out += [f"results/evaluation/{t}/oracle/truth.json" for t in traits()]
    return out


def get_final_output():
    return ["results/evaluation/summary.tsv", "results/summary.txt", "results/figures/heldout_pct.png",
            *priors_outputs()]   # workflow/rules/priors.smk


def print_summary():
    p = Path("results/summary.txt")
    if p.exists():
        print("\n" + p.read_text())


# --- downloads (issue 4) ---
# Helpers for workflow/rules/download.smk. Everything is read from local manifests at parse time: building
# the DAG makes no network call. `download:` keys are optional; defaults below (documented in config/README.md).
DOWNLOAD_DEFAULTS = {
    "s3_endpoint": None,
    "ld_bucket": "broad-alkesgroup-ukbb-ld",
    "ld_prefix": "UKBB_LD/",
    "sumstats_bucket": "broad-alkesgroup-public-requester-pays",
    "sumstats_prefix": "UKBB_409K/",
    "billing_project": None,
    "retries": 5,
    "backoff_s": 2.0,
    "chromosomes": None,
    "ukbb_traits": None,
    "ucsc_manifest": "config/manifests/ucsc_tracks.tsv",
    "fantom_manifest": "config/manifests/fantom_tissues.tsv",
    "fantom_base_url": "https://fantom.gsc.riken.jp/5/datahub/hg38/tpm/human.tissue.hCAGE/",
    "encode_manifest": "config/manifests/encode_experiments.tsv",
    "encode_base_url": "https://www.encodeproject.org",
    "encode_allow_warnings": True,
    "chain_url": "https://hgdownload.soe.ucsc.edu/goldenPath/hg19/liftOver/hg19ToHg38.over.chain.gz",
    "dbnsfp_archive": None,
}
UKBB_LD_DIR = config["ld"].get("dir", "resources/ukbb/ld")


def dl_cfg(key):
    return (config.get("download") or {}).get(key, DOWNLOAD_DEFAULTS[key])


def shipped_path(path):
    """A path from the config; relative ones that do not exist in the working directory are the workflow's own."""
    p = Path(path)
    return p if p.is_absolute() or p.exists() else Path(workflow.basedir) / p


def _dl_manifest(key):
    return pd.read_csv(shipped_path(dl_cfg(key)), sep="\t", comment="#", dtype=str, keep_default_na=False)


def dl_ld_chromosomes():
    return [str(c) for c in (dl_cfg("chromosomes") or CHROMS)]


def dl_ld_windows():
    """LD windows to download: kind 'npz' rows of the manifest on download.chromosomes (default: chromosomes)."""
    man = pd.read_csv(shipped_path(config["ld"].get("manifest", "resources/ukbb_ld_windows.tsv")), sep="\t", comment="#",
                      dtype={"chromosome": str})
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
        return f"resources/sumstats/{trait}/" + path.rstrip("/").rsplit("/", 1)[-1].split("?")[0]
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
    return config["features"].get("chain", "resources/chain/hg19ToHg38.over.chain.gz")
# --- end downloads ---
