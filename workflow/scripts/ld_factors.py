"""Rule ld_factors: per window of one chromosome, PSD repair, core tiling and the factor G (paper Sec. 4.2, App. A.3)."""
from functools import reduce
from pathlib import Path

import numpy as np
import pandas as pd
from tqdm.auto import tqdm

from deepwas.formats.factors import save_factors, write_manifest
from deepwas.formats.ukbb_ld import read_ld_window
from deepwas.harmonise import variant_key
from deepwas.io import setup_logging
from deepwas.ld_factors import factorise, make_psd
from deepwas.ldscore import unbiased_ldscore
from deepwas.windows import Window, core_bounds, core_mask, random_block


def main(window_prefixes, harmonised, out_dir, out_manifest, length, stride, rtol, diag_atol, max_clip,
         factor_dtype="float64", log_path=None, *, panel_size, reduced=None):
    """reduced: ablations.runs.{name}.reduced_windows ({max_variants, core_margin, seed}), reduced (i)+ (App. A.3):
    each window keeps a random run of at most max_variants variants, its core those core_margin bp inside it."""
    log = setup_logging(log_path)
    tables = [pd.read_csv(p, sep="\t", dtype={"chromosome": str}) for p in harmonised]
    keys = [set(variant_key(t)) for t in tables]
    shared = reduce(set.__and__, keys)
    eaf = pd.concat([t.assign(key=variant_key(t))[["key", "eaf"]] for t in tables]).groupby("key")["eaf"].mean()
    windows = [Window.parse(Path(p).name) for p in window_prefixes]
    bounds = core_bounds(windows, length, stride)
    rows = []
    for prefix, w in tqdm(list(zip(window_prefixes, windows)), desc="LD factors", unit="win", mininterval=5):
        R, variants = read_ld_window(prefix, diag_atol=diag_atol)
        vk = variant_key(variants).to_numpy()
        ldscore_full = unbiased_ldscore((R * R).sum(1), R.shape[0], panel_size)
        sel = np.flatnonzero(np.isin(vk, list(shared)))
        row = {"window": w.name, "n_file": len(vk), "n_without_stats": len(vk) - len(sel)}
        pos = variants["position"].to_numpy()[sel]
        if reduced:
            block, in_core = random_block(pos, reduced["max_variants"], reduced["core_margin"],
                                          np.random.default_rng([int(reduced.get("seed", 0)), w.start]))
            sel, pos, core = sel[block], pos[block], np.flatnonzero(in_core)
        else:
            core = np.flatnonzero(core_mask(pos, bounds[w.name]))
        if core.size == 0:
            rows.append(row | {"status": "excluded: empty core", "n_core": 0, "n_extended": len(sel), "rank": 0})
            log.warning("%s: no core variant with statistics; window excluded", w.name)
            continue
        Rs, psd = make_psd(R[np.ix_(sel, sel)], source=str(prefix) + ".npz", max_clip=max_clip)
        fac = factorise(Rs, core, rtol=rtol, name=w.name, ldscore=ldscore_full[sel])
        save_factors(Path(out_dir) / f"{w.name}.npz", fac, pos, vk[sel], eaf.reindex(vk[sel]).to_numpy(),
                     dtype=np.dtype(factor_dtype))
        rows.append(row | {"status": "ok", "n_core": fac.n, "n_extended": fac.m, "rank": fac.rank,
                           "psd_" + "n_negative": psd.n_negative, "psd_min_eigenvalue": psd.min_eigenvalue,
                           "psd_clipped_mass": psd.clipped_mass, "psd_max_abs_change": psd.max_abs_change})
    Path(out_dir).mkdir(parents=True, exist_ok=True)
    write_manifest(out_manifest, rows)
    log.info("%d windows, %d factorised", len(rows), sum(r["status"] == "ok" for r in rows))


if "snakemake" in globals():
    sm = snakemake  # noqa: F821
    p = sm.params
    main(p.prefixes, sm.input.harmonised, sm.output.factors, sm.output.manifest, p.length, p.stride, p.rtol,
         p.diag_atol, p.max_clip, p.factor_dtype, sm.log[0], panel_size=p.panel_size, reduced=p.get("reduced"))
