"""Rule whiten: per trait and chromosome, y = lam^-1/2 U^T z_(i) for every factorised window."""
from pathlib import Path

import numpy as np
import pandas as pd

from deepwas.dataset import load_factors
from deepwas.harmonise import variant_key
from deepwas.io import atomic_path, setup_logging
from deepwas.ld_factors import whiten


def main(harmonised, factor_dir, manifest, out, log_path=None):
    log = setup_logging(log_path)
    t = pd.read_csv(harmonised, sep="\t", dtype={"chromosome": str})
    z = pd.Series(t["z"].to_numpy(), index=variant_key(t))
    n = pd.Series(t["n"].to_numpy(), index=z.index)
    man = pd.read_csv(manifest, sep="\t")
    arrays = {}
    for name in man.loc[man["status"] == "ok", "window"]:
        fac = load_factors(Path(factor_dir) / f"{name}.npz")
        core_keys = fac["keys"][fac["core"]]
        zc = z.reindex(core_keys).to_numpy()
        if np.isnan(zc).any():
            raise ValueError(f"{harmonised}: {int(np.isnan(zc).sum())} core variants of {name} have no z-score; "
                             "the LD factors were built for another set of traits - rerun ld_factors")
        arrays[f"y/{name}"] = whiten(fac["U"], fac["lam"], zc)
        arrays[f"z2/{name}"] = zc**2
        arrays[f"ldscore/{name}"] = fac["ldscore"][fac["core"]]
        arrays[f"n/{name}"] = n.reindex(core_keys).to_numpy()
    with atomic_path(out) as tmp:
        np.savez(tmp, **arrays)
    log.info("whitened %d windows", sum(k.startswith("y/") for k in arrays))


if "snakemake" in globals():
    sm = snakemake  # noqa: F821
    main(sm.input.harmonised, sm.input.factors, sm.input.manifest, sm.output[0], sm.log[0])
