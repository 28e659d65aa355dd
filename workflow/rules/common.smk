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
    man = pd.read_csv(ld["manifest"], sep="\t", dtype={"chromosome": str})
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


def demo_truth(wildcards):
    return f"resources/demo/truth/{wildcards.trait}.tsv.gz"


def evaluated():
    out = [f"results/evaluation/{t}/{m}/{o}.json" for t in traits() for m in config["models"] for o in config["objectives"]]
    if config["ld"]["source"] == "demo" and config["demo"].get("oracle", True):
        out += [f"results/evaluation/{t}/oracle/truth.json" for t in traits()]
    return out


def get_final_output():
    return ["results/evaluation/summary.tsv", "results/summary.txt", "results/figures/heldout_pct.png"]


def print_summary():
    p = Path("results/summary.txt")
    if p.exists():
        print("\n" + p.read_text())
