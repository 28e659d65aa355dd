"""Rule estimate_s2: the trait's per-window residual variance s2, sample size N and prior scale.

s2 is fitted by maximum likelihood jointly with a constant prior on the training windows (the trait sheet's
value wins when given); the LD-score-regression intercept is recorded beside it as a cross-check.
"""
import math

import numpy as np

from deepwas.formats.factors import read_manifest
from deepwas.io import setup_logging, write_json
from deepwas.priors import init_log_scale
from deepwas.s2 import estimate_s2, fit_constant_and_s2
from deepwas.sources import load_windows, trait_sample_size
from deepwas.window import make_window


def main(chrom_inputs, manifests, s2_sheet, alpha, out, log_path=None):
    log = setup_logging(log_path)
    # M: every variant that has LD and statistics lies in exactly one core
    M = int(sum(read_manifest(m)["n_core"].sum() for m in manifests))
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
    if not 0 < s2 < 10:
        raise ValueError(f"s2 = {s2} is not a usable residual variance; set a valid 's2' for this trait in the trait sheet")
    if not given and not 0.5 < s2_ml < 1.5:
        log.warning("maximum-likelihood s2 = %.3f is far from 1: check the statistics (confounding, wrong N, "
                    "sign errors) or set 's2' for this trait in the trait sheet", s2_ml)
    write_json(out, {"s2": s2, "source": "trait sheet" if given else "maximum likelihood (constant prior)",
                     "s2_ml": s2_ml, "init_log_scale": c_ml, "s2_ldsr_intercept": s2_ldsr, "h2_ldsr": h2_ldsr,
                     "N": N, "M": M, "n_windows": len(windows)})
    log.info("s2 = %.4f (ML %.4f, LDSR intercept %.4f), N = %.0f, M = %d", s2, s2_ml, s2_ldsr, N, M)


if "snakemake" in globals():
    sm = snakemake  # noqa: F821
    chrom_inputs = list(zip(sm.input.factors, sm.input.manifests_train, sm.input.stats))
    main(chrom_inputs, sm.input.manifests, sm.params.s2, sm.params.alpha, sm.output[0], sm.log[0])
