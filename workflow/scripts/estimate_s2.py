"""Rule estimate_s2: the trait's per-window residual variance s2, sample size N and prior scale.

s2 is fitted by maximum likelihood jointly with a constant prior on the training windows (the trait sheet's
value wins when given); the LD-score-regression intercept is recorded beside it as a cross-check.
"""
import math

import numpy as np
import pandas as pd

from deepwas.dataset import load_windows, make_window, trait_sample_size
from deepwas.evaluation import estimate_s2
from deepwas.io import setup_logging, write_json
from deepwas.priors import init_log_scale
from deepwas.training import fit_constant_and_s2


def main(chrom_inputs, manifests, s2_sheet, alpha, out, log_path=None, s2_range=(0.5, 2.0), accept_outside=False,
         trait="trait"):
    log = setup_logging(log_path)
    # M: every variant that has LD and statistics lies in exactly one core
    M = int(sum(pd.read_csv(m, sep="\t")["n_core"].sum() for m in manifests))
    loaded = load_windows(chrom_inputs)
    N = trait_sample_size(loaded)
    z2 = np.concatenate([st["z2"] for _, _, st, _ in loaded])
    l = np.concatenate([st["ldscore"] for _, _, st, _ in loaded])
    s2_ldsr, h2_ldsr = estimate_s2(z2, l, N, M)
    windows = [make_window(name, fac, st["y"], p) for name, fac, st, p in loaded]
    freq = np.concatenate([fac["freq"][fac["core"]] for _, fac, _, _ in loaded])
    c0 = init_log_scale(freq, min(max(h2_ldsr, 0.01), 0.9), M, alpha)
    given = s2_sheet is not None and not (isinstance(s2_sheet, float) and math.isnan(s2_sheet))
    s2_ml, c_ml = fit_constant_and_s2(windows, N, alpha, c0)
    s2 = float(s2_sheet) if given else s2_ml
    lo, hi = s2_range
    if not (math.isfinite(s2) and s2 > 0):
        raise ValueError(f"{trait}: s2 = {s2} is not a usable residual variance; set a valid 's2' for this trait "
                         "in the trait sheet")
    if not given and not lo <= s2_ml <= hi:
        msg = (f"{trait}: maximum-likelihood s2 = {s2_ml:.4g} is outside the plausible range [{lo:g}, {hi:g}] (config "
               f"s2.min / s2.max; LDSR intercept {s2_ldsr:.4g}, h2 {h2_ldsr:.4g}, N = {N:.0f}, {len(windows)} windows). "
               "s2 is about 1 - h2 of one window for in-sample LD: a value far from 1 means a wrong N, sign errors, "
               "statistics that do not belong to the LD (another build or strand, an out-of-sample panel) or very "
               "few matched variants; check results/harmonised/" f"{trait}.report.json. If it is deliberate (a "
               "simulation), widen s2.min / s2.max or set s2.accept_outside: true; or give 's2' in the trait sheet.")
        if not accept_outside:
            raise ValueError(msg)
        log.warning(msg)
    write_json(out, {"s2": s2, "source": "trait sheet" if given else "maximum likelihood (constant prior)",
                     "s2_ml": s2_ml, "init_log_scale": c_ml, "s2_ldsr_intercept": s2_ldsr, "h2_ldsr": h2_ldsr,
                     "N": N, "M": M, "n_windows": len(windows)})
    log.info("s2 = %.4f (ML %.4f, LDSR intercept %.4f), N = %.0f, M = %d", s2, s2_ml, s2_ldsr, N, M)


if "snakemake" in globals():
    sm = snakemake  # noqa: F821
    chrom_inputs = list(zip(sm.input.factors, sm.input.manifests_train, sm.input.stats))
    main(chrom_inputs, sm.input.manifests, sm.params.s2, sm.params.alpha, sm.output[0], sm.log[0],
         s2_range=(sm.params.s2_check["min"], sm.params.s2_check["max"]),
         accept_outside=sm.params.s2_check["accept_outside"], trait=sm.wildcards.trait)
