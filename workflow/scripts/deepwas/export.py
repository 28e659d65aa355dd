"""Per-variant priors from trained models, for fine-mapping and polygenic scores.

A trained prior f_theta (paper Eqn 6) is scored, in eval mode, on every variant that has LD: each variant
once, from the LD window whose core (i) holds it (cores tile the chromosome, so a variant in several
windows' extended sets (i)+ gets exactly one row, with the features of that window, as in the held-out
evaluation of Sec. 6.2). The per-variant heritability is SNPVAR = f: f_m is the variance of the effect of
a standardised genotype on a standardised trait, so sum_m f_m is the prior's h2.

Out-of-chromosome scoring: a variant's prior comes from a model not trained on its chromosome. Held-out
chromosomes (paper: 6, 7, 8) are scored by the main model (trained on all other chromosomes); the
training chromosomes are split into `k` chromosome groups (default 2: odd and even, like PolyFun's
ridge-regression step) and chromosome group g is scored by a model trained on the training
chromosomes outside g (`fold_training_chromosomes`). The prior table records which model scored each
chromosome ('heldout' or 'fold{g}').

Everything here is arrays and tables; files are read by the rule scripts and written by `formats.priors`.
"""
from __future__ import annotations

from pathlib import Path
from typing import Iterable

import numpy as np
import pandas as pd
import torch

from .features.pred import FeatureScaler, annotation_block, pred_features
from .formats.annotations import read_annotations
from .formats.factors import load_factors
from .formats.model_file import ModelFile
from .formats.priors import write_priors
from .harmonise import variant_key
from .inference import Inference
from .io import write_json
from .priors import build_prior
from .windows import chrom_key

HELDOUT_LABEL = "heldout"


# -- which model scores which chromosome ----------------------------------------------------------------

def fold_of(chrom: str, n_folds: int) -> int:
    """Chromosome group (1..n_folds) of a chromosome: (number - 1) mod n_folds + 1 (2 groups: odd = 1, even = 2)."""
    return (chrom_key(str(chrom)) - 1) % int(n_folds) + 1


def fold_training_chromosomes(train_chroms: Iterable[str], n_folds: int, fold: int) -> list[str]:
    """Training chromosomes of the fold-`fold` model: the training chromosomes outside chromosome group `fold`."""
    out = [str(c) for c in train_chroms if fold_of(c, n_folds) != int(fold)]
    if not out:
        raise ValueError(f"priors.folds = {n_folds}: fold {fold} would train on no chromosome (training "
                         f"chromosomes {list(train_chroms)}); use fewer folds or more chromosomes")
    return out


def scoring_plan(chromosomes: Iterable[str], heldout: Iterable[str], n_folds: int) -> dict[str, str]:
    """{chromosome: 'heldout' | 'fold{g}'}: the model that scores each chromosome (never one trained on it).

    n_folds = 0 scores the held-out chromosomes only (no fold models)."""
    heldout = {str(c) for c in heldout}
    plan = {}
    for c in map(str, chromosomes):
        if c in heldout:
            plan[c] = HELDOUT_LABEL
        elif n_folds and n_folds >= 2:
            plan[c] = f"fold{fold_of(c, n_folds)}"
        elif n_folds:
            raise ValueError(f"priors.folds must be 0 (held-out chromosomes only) or at least 2, not {n_folds}")
    return plan


def used_folds(chromosomes, heldout, n_folds: int) -> list[int]:
    """Fold numbers that score at least one chromosome (the fold models to train)."""
    return sorted({int(v[4:]) for v in scoring_plan(chromosomes, heldout, n_folds).values() if v != HELDOUT_LABEL})


# -- trained prior ------------------------------------------------------------------------------------------

def prior_from_checkpoint(ck: ModelFile, track_names: list[str], source: str = "model file"):
    """(prior in eval mode, feature scaler) from a loaded model file (`formats.model_file.ModelFile`)."""
    if list(ck.track_names) != list(track_names):
        raise ValueError(f"{source} was trained on tracks {ck.track_names}, but the features read "
                         f"now have {list(track_names)}; retrain the model or fix features.tracks")
    prior = build_prior(ck.model, d_pred=ck.d_pred, d_func=ck.d_func, init_log_scale=0.0,
                        alpha=ck.alpha, learn_alpha=ck.learn_alpha, network=ck.network)
    prior.load_state_dict(ck.state)
    prior.eval()
    return prior, FeatureScaler.from_state(ck.scaler)


# -- per-variant features of the core variants ---------------------------------------------------------------

def iter_core_features(factor_inputs, annotations=None, tracks=None, freq: pd.Series | None = None):
    """Per window, the model inputs of its core variants (each variant with LD exactly once).

    factor_inputs: iterable of (factor_dir, manifest_tsv) of the `ld_factors` rule (no statistics needed).
    freq: allele1 frequencies by variant key (a trait's harmonised EAF): then only the core variants it holds
    are scored, with these frequencies (the variants the trait's model saw); None: every core variant, with
    the LD panel's frequency of the factor files (an error where the LD source records none).
    Yields dicts: window, keys, positions, freq, pred (raw 'pred' features as in `dataset.pred_features`,
    computed on the window's rows of the core variants), ann (annotation values or None), tracks
    ([n, d_func, w] normalised windows or None).
    """
    for factor_dir, manifest in factor_inputs:
        man = pd.read_csv(manifest, sep="\t")
        for name in man.loc[man["status"] == "ok", "window"]:
            fac = load_factors(Path(factor_dir) / f"{name}.npz", ("core", "ldscore", "positions", "freq", "keys"))
            core = np.asarray(fac["core"], dtype=np.int64)
            if freq is not None:
                f = freq.reindex(fac["keys"][core].astype(str)).to_numpy(dtype=np.float64)
                core, f = core[np.isfinite(f)], f[np.isfinite(f)]
            else:
                f = np.asarray(fac["freq"], dtype=np.float64)[core]
                if np.isnan(f).any():
                    raise ValueError(f"{factor_dir}/{name}.npz: {int(np.isnan(f).sum())} core variants have no "
                                     "LD-panel allele frequency; score a trait's variants (its harmonised table gives them) "
                                     "or use an LD source that records frequencies (harmonise.reference_frequencies)")
            keys = fac["keys"][core].astype(str)
            sub = {"freq": f, "ldscore": fac["ldscore"][core]}
            ann, _ = annotation_block(annotations, keys)
            win = missing = None
            if tracks is not None:
                win, missing = tracks(keys)
            yield {"window": str(name), "keys": keys, "positions": fac["positions"][core], "freq": sub["freq"],
                   "pred": pred_features(sub, ann, missing), "ann": ann, "tracks": win}


def model_inputs(batch: dict, scaler: FeatureScaler, dtype=torch.float32) -> dict:
    """The prior's input dict of a core batch, with the dtypes of `dataset.make_window`."""
    inputs = {"freq": torch.as_tensor(batch["freq"], dtype=torch.float64),
              "pred": torch.as_tensor(scaler.transform(batch["pred"]), dtype=dtype)}
    if batch.get("tracks") is not None:
        inputs["tracks"] = torch.as_tensor(batch["tracks"], dtype=dtype)
    return inputs


def predict_f(prior, inputs: dict, inference: Inference | None = None) -> np.ndarray:
    """f of every variant of `inputs`, the prior run by `inference` (default: CPU, batches of 4096 variants so
    that track windows of many variants fit); `prior` must be on its device (`Inference.place`)."""
    f = (inference or Inference())(prior, inputs).numpy()
    if not np.all(np.isfinite(f)) or (f < 0).any():
        raise FloatingPointError("the prior produced negative or non-finite f")
    return f


def score_variants(prior, scaler: FeatureScaler, batches, label: str = "",
                   inference: Inference | None = None) -> pd.DataFrame:
    """Columns key, chromosome, position, allele1, allele2, window, F, MODEL: one row per core variant."""
    frames = []
    for b in batches:
        f = predict_f(prior, model_inputs(b, scaler), inference)
        parts = pd.Series(b["keys"]).str.split(":", expand=True)
        frames.append(pd.DataFrame({"key": b["keys"], "chromosome": parts[0].to_numpy() if len(parts) else [],
                                    "position": np.asarray(b["positions"], dtype=np.int64),
                                    "allele1": parts[2].to_numpy() if len(parts) else [],
                                    "allele2": parts[3].to_numpy() if len(parts) else [],
                                    "window": b["window"], "F": f, "MODEL": label}))
    cols = ["key", "chromosome", "position", "allele1", "allele2", "window", "F", "MODEL"]
    out = pd.concat(frames, ignore_index=True) if frames else pd.DataFrame(columns=cols)
    if out["key"].duplicated().any():
        raise ValueError(f"{int(out['key'].duplicated().sum())} variants are in two window cores; the LD factors "
                         "do not tile the chromosome (rerun ld_factors)")
    return out


def prior_table(scored: pd.DataFrame, rsid: pd.Series, pos38: pd.Series | None = None) -> tuple[pd.DataFrame, dict]:
    """The prior file's rows (formats.priors.COLUMNS) from `score_variants` output of all chromosomes.

    rsid / pos38: Series indexed by variant key. Variants without an rsid are dropped and counted
    ('no_rsid'); ENRICHMENT = f / mean f over the rows kept. Returns (table, counts)."""
    s = scored.copy()
    s["SNP"] = rsid.reindex(s["key"]).to_numpy()
    no_rsid = s["SNP"].isna() | (s["SNP"].astype(str) == "")
    s = s.loc[~no_rsid]
    bp38 = pos38.reindex(s["key"]).to_numpy() if pos38 is not None else np.full(len(s), np.nan)
    f = s["F"].to_numpy(dtype=np.float64)
    mean_f = f.mean() if len(f) else np.nan
    out = pd.DataFrame({"CHR": s["chromosome"].to_numpy(), "SNP": s["SNP"].astype(str).to_numpy(),
                        "BP": s["position"].to_numpy(np.int64), "A1": s["allele1"].to_numpy(),
                        "A2": s["allele2"].to_numpy(), "SNPVAR": f,
                        "BP38": pd.array(np.where(np.asarray(bp38, dtype=np.float64) > 0, bp38, np.nan), dtype="Float64")
                        .astype("Int64"),
                        "F": f, "ENRICHMENT": f / mean_f, "MODEL": s["MODEL"].to_numpy()})
    counts = {"n_variants": int(len(out)), "no_rsid": int(no_rsid.sum()), "h2": float(f.sum()),
              "mean_f": float(mean_f)}
    return out.sort_values(["CHR", "BP"], key=lambda c: c.map(chrom_key) if c.name == "CHR" else c,
                           kind="stable").reset_index(drop=True), counts


def split_by_chromosome(table: pd.DataFrame, chromosomes) -> dict[str, pd.DataFrame]:
    """{chromosome: its rows} for every requested chromosome (empty tables where none)."""
    chrom = table["CHR"].astype(str)
    return {str(c): table.loc[chrom == str(c)].reset_index(drop=True) for c in chromosomes}


def export_priors(plan: dict, priors: dict, factor_inputs: dict, rsid: pd.Series, pos38: pd.Series | None = None,
                  annotations=None, tracks=None, freq: pd.Series | None = None,
                  inference: Inference | None = None) -> tuple[pd.DataFrame, dict]:
    """The prior table of all chromosomes of `plan` ({chromosome: label}), each scored by priors[label].

    priors: {label: (prior, scaler)} (`prior_from_checkpoint`); factor_inputs: {chromosome: (factor_dir,
    manifest)}; freq: the harmonised EAF by variant key (`iter_core_features`); inference: device and batch size
    of the priors' forward (they must be on its device). Returns `prior_table`'s
    (table, counts) with per-chromosome h2 and scoring model in counts."""
    scored = []
    for chrom, label in plan.items():
        prior, scaler = priors[label]
        scored.append(score_variants(prior, scaler, iter_core_features([factor_inputs[chrom]], annotations, tracks,
                                                                       freq), label, inference))
    table, counts = prior_table(pd.concat(scored, ignore_index=True), rsid, pos38)
    if table.empty:
        raise ValueError(f"none of the {counts['no_rsid']} variants of the LD factors of chromosomes {list(plan)} has "
                         "an rsid in the harmonised table: is it for the same LD reference (same positions and "
                         "alleles)?")
    chrom = table["CHR"].astype(str)
    counts["per_chromosome"] = {c: {"model": plan[c], "n_variants": int((chrom == c).sum()),
                                    "h2": float(table.loc[chrom == c, "SNPVAR"].sum())} for c in plan}
    return table, counts


# -- the rules' entry points ----------------------------------------------------------------------------------

HARMONISED_COLUMNS = ("chromosome", "position", "rsid", "allele1", "allele2", "eaf")


def read_harmonised_variants(path) -> pd.DataFrame:
    """A harmonised table (results/harmonised/{trait}.tsv.gz) with its variant keys as index."""
    h = pd.read_csv(path, sep="\t", dtype={"chromosome": str, "rsid": str})
    missing = [c for c in HARMONISED_COLUMNS if c not in h.columns]
    if missing:
        raise ValueError(f"{path}: lacks column(s) {missing}; give a table written by the harmonise rule "
                         "(results/harmonised/{trait}.tsv.gz)")
    return h.set_axis(variant_key(h).to_numpy())


def variant_tracks(store, tracks_params: dict | None, normalisation):
    """The rules' track features (`features.variants.VariantTracks`) from params.tracks, or None without tracks."""
    if not tracks_params:
        return None
    from .features.variants import VariantTracks
    return VariantTracks(store, tracks_params["liftover"], normalisation, tracks_params["window"])


def write_prior_files(plan: dict, model_paths: dict, factor_inputs: dict, harmonised, annotations_path, tracks,
                      out_parquet: dict, out_text: dict, out_summary, liftover: dict | None = None,
                      train: dict | None = None, inference: dict | None = None) -> dict:
    """Rules export_priors / apply_prior: score the variants of a harmonised table with trained models and
    write the PolyFun-layout prior files per chromosome and their summary JSON (`formats.priors`).

    plan {chromosome: label}; model_paths {label: model.pt}; factor_inputs {chromosome: (dir, manifest)};
    harmonised: the trait's table (rsid, EAF: the variants scored and their frequencies); tracks: a
    `VariantTracks` or None; liftover {chromosome: table} for BP38, else the tracks' tables; out_parquet /
    out_text {chromosome: path}; train / inference: the config blocks that set the priors' device, autocast and
    batch size (`inference.Inference.from_config`). Returns the summary."""
    have = tracks.track_names if tracks is not None else []
    files = {label: ModelFile.load(p) for label, p in model_paths.items()}
    kinds = {ck.model for ck in files.values()}      # one model kind (the rules score a model and its folds)
    run = Inference.from_config(kinds.pop() if len(kinds) == 1 else "transformer", train, inference)
    priors = {label: prior_from_checkpoint(ck, have, str(model_paths[label])) for label, ck in files.items()}
    for prior, _ in priors.values():
        run.place(prior)
    h = read_harmonised_variants(harmonised)
    rsid = pd.Series(h["rsid"].to_numpy(), index=h.index)
    freq = pd.Series(pd.to_numeric(h["eaf"]).to_numpy(dtype=np.float64), index=h.index)
    pos38 = None
    if liftover:
        t = pd.concat([pd.read_csv(p, sep="\t", dtype={"chromosome": str}) for p in liftover.values()])
        pos38 = pd.Series(pd.to_numeric(t["POS38"]).to_numpy(), index=variant_key(t).to_numpy())
    table, counts = export_priors(plan, priors, factor_inputs, rsid, pos38, read_annotations(annotations_path),
                                  tracks, freq, run)
    for chrom, part in split_by_chromosome(table, plan).items():
        write_priors(part, out_parquet[chrom], out_text[chrom])
    counts["models"] = {k: str(v) for k, v in model_paths.items()}
    write_json(out_summary, counts)
    return counts
