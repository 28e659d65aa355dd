"""Rule whiten: per trait and chromosome, y = lam^-1/2 U^T z_(i) for every factorised window."""
import numpy as np
import pandas as pd

from deepwas.formats.factors import factor_path, load_factors, ok_rows
from deepwas.formats.whitened import write_whitened
from deepwas.harmonise import variant_key
from deepwas.io import setup_logging
from deepwas.ld_factors import whiten


def main(harmonised, factor_dir, manifest, out, log_path=None):
    log = setup_logging(log_path)
    t = pd.read_csv(harmonised, sep="\t", dtype={"chromosome": str})
    z = pd.Series(t["z"].to_numpy(), index=variant_key(t))
    n = pd.Series(t["n"].to_numpy(), index=z.index)
    arrays = {}
    for name in ok_rows(manifest)["window"]:
        fac = load_factors(factor_path(factor_dir, name))
        core_keys = fac["keys"][fac["core"]]
        zc = z.reindex(core_keys).to_numpy()
        if np.isnan(zc).any():
            raise ValueError(f"{harmonised}: {int(np.isnan(zc).sum())} core variants of {name} have no z-score; "
                             "the LD factors were built for another set of traits - rerun ld_factors")
        arrays[name] = {"y": whiten(fac["U"], fac["lam"], zc), "z2": zc**2, "ldscore": fac["ldscore"][fac["core"]],
                        "n": n.reindex(core_keys).to_numpy()}
    write_whitened(out, arrays)
    log.info("whitened %d windows", len(arrays))


if "snakemake" in globals():
    sm = snakemake  # noqa: F821
    main(sm.input.harmonised, sm.input.factors, sm.input.manifest, sm.output[0], sm.log[0])
