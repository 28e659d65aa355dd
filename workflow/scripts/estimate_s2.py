"""Rule estimate_s2: the trait's residual variance s2 and sample size N (trait sheet value wins)."""
import math

import numpy as np
import pandas as pd

from deepwas.evaluation import estimate_s2
from deepwas.io import setup_logging, write_json


def main(stats_files, manifests, s2_sheet, out, log_path=None):
    log = setup_logging(log_path)
    # M: every variant that has LD and statistics lies in exactly one core
    n_variants_genome = int(sum(pd.read_csv(m, sep="\t")["n_core"].sum() for m in manifests))
    z2, l, n = [], [], []
    for p in stats_files:
        with np.load(p) as st:
            for k in st.files:
                (z2 if k.startswith("z2/") else l if k.startswith("ldscore/") else n if k.startswith("n/") else []).append(st[k])
    z2, l, n = map(np.concatenate, (z2, l, n))
    N = float(np.median(n))
    s2_ldsr, h2 = estimate_s2(z2, l, N, n_variants_genome)
    given = s2_sheet is not None and not (isinstance(s2_sheet, float) and math.isnan(s2_sheet))
    s2 = float(s2_sheet) if given else s2_ldsr
    if not given and not 1e-4 < h2 < 0.99:
        log.warning("LDSR h2 estimate %.3f is at its bound: the constant-prior LD score regression does not fit "
                    "this trait; set 's2' in the trait sheet (e.g. 1 - BOLT-LMM h2)", h2)
    if not 0 < s2 <= 1:
        raise ValueError(f"s2 = {s2} is outside (0, 1]; set a valid 's2' for this trait in the trait sheet")
    write_json(out, {"s2": s2, "source": "trait sheet" if given else "ldsr", "s2_ldsr": s2_ldsr, "h2_ldsr": h2,
                     "N": N, "M": int(n_variants_genome), "n_variants_used": int(z2.size)})
    log.info("s2 = %.4f (%s), LDSR h2 = %.4f, N = %.0f", s2, "trait sheet" if given else "LDSR", h2, N)


if "snakemake" in globals():
    sm = snakemake  # noqa: F821
    main(sm.input.stats, sm.input.manifests, sm.params.s2, sm.output[0], sm.log[0])
