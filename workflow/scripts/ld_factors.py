"""Rule ld_factors: per window of one chromosome, the core from the window table, the core-block
eigendecomposition and the factor G (paper Eqn 5, App. C.1), and the LD score of each variant from its
own core window.

Memory is bounded by one window: R is read in ld.compute_dtype and factorised in blocks
(deepwas.ld_factors.factorise_window). A window's factor file is written as soon as every one of its
variants has its LD score, i.e. once the windows whose cores hold them (normally the next one) are done;
so at most the factors of one or two pending windows are held besides the current R.
"""
from contextlib import nullcontext
from pathlib import Path

import numpy as np
import pandas as pd
from tqdm.auto import tqdm

from deepwas.formats.factors import save_factors, write_manifest
from deepwas.formats.ukbb_ld import read_ld_variants, read_ld_window
from deepwas.formats.frequencies import read_reference_frequencies
from deepwas.harmonise import panel_frequency, variant_key
from deepwas.io import setup_logging
from deepwas.ld_factors import PSDLimits, factorise_window, ld_scores
from deepwas.ldscore import unbiased_ldscore
from deepwas.windows import CoreBounds, Window, in_regions, owner_windows, random_block, region_intervals


def thread_limit(threads):
    try:
        from threadpoolctl import threadpool_limits
    except ImportError:      # Snakemake also sets OMP/MKL/OPENBLAS_NUM_THREADS to the rule's threads
        return nullcontext()
    return threadpool_limits(int(threads))


def bounds_from_table(cores: pd.DataFrame, names) -> dict[str, CoreBounds]:
    """CoreBounds of the named windows from the window table (rows without a core: empty)."""
    t = cores.set_index("window")
    missing = [n for n in names if n not in t.index]
    if missing:
        raise ValueError(f"window table lacks {missing[:3]} ({len(missing)} windows); rerun rule window_table")
    out = {}
    for n in names:
        s, e = t.at[n, "core_start"], t.at[n, "core_end"]
        out[n] = CoreBounds(0.0, 0.0) if pd.isna(s) else CoreBounds(float(s), float(e), t.at[n, "status"] != "ok")
    return out


def main(window_prefixes, cores_path, out_dir, out_manifest, rtol, diag_atol, limits: PSDLimits, regions=(),
         factor_dtype="float64", compute_dtype="auto", threads=1, log_path=None, *, panel_size, reduced=None,
         reference_frequencies=None):
    """The factors depend on the LD source alone (never on the traits): (i)+ is every variant of the window file,
    (i) the window's core; each trait's restriction to its variants is the whiten rule's (`deepwas.whitening`).
    The stored `freq` is the LD panel's frequency of allele1 (the window file's `freq` column, else the
    harmonise.reference_frequencies table, else NaN); training uses each trait's own frequencies.

    reduced: ablations.runs.{name}.reduced_windows ({max_variants, core_margin, seed}), reduced (i)+ (App. A.3):
    each window keeps a seeded random run of at most max_variants variants, its core the variants at least
    core_margin bp inside the run and outside the long-range-LD regions (cores no longer tile the chromosome);
    LD scores stay those of each variant's own core window."""
    log = setup_logging(log_path)
    ref = read_reference_frequencies(reference_frequencies) if reference_frequencies else None
    windows = [Window.parse(Path(p).name) for p in window_prefixes]
    order = np.argsort(windows, kind="stable")
    windows = [windows[k] for k in order]
    prefixes = [str(window_prefixes[k]) for k in order]
    bounds = bounds_from_table(pd.read_csv(cores_path, sep="\t", dtype={"chromosome": str}), [w.name for w in windows])
    excluded = region_intervals(regions)
    # the variant lists first (small): who owns each variant's LD score
    lists = [read_ld_variants(p + ".gz") for p in prefixes]
    keys = [variant_key(v).to_numpy() for v in lists]
    owners = owner_windows([v["position"].to_numpy() for v in lists], keys, windows, bounds)
    ldscore_of: dict[str, float] = {}
    pending: dict[int, dict] = {}
    rows = [None] * len(windows)
    Path(out_dir).mkdir(parents=True, exist_ok=True)

    def flush(done: int):
        for k in [k for k, p in pending.items() if p["needs"] <= done]:
            p = pending.pop(k)
            fac = p["fac"]
            fac.ldscore = np.array([ldscore_of[x] for x in p["keys"]])
            save_factors(Path(out_dir) / f"{windows[k].name}.npz", fac, p["pos"], p["keys"], p["freq"],
                         dtype=np.dtype(factor_dtype), panel_size=panel_size)

    with thread_limit(threads):
        for k, (prefix, w) in enumerate(tqdm(list(zip(prefixes, windows)), desc="LD factors", unit="win", mininterval=5)):
            R, variants = read_ld_window(prefix, diag_atol=diag_atol, dtype=compute_dtype)
            vk = keys[k]
            own = np.flatnonzero(owners[k] == k)
            ldscore_of.update(zip(vk[own], unbiased_ldscore(ld_scores(R, own), R.shape[0], panel_size)))
            sel = np.arange(len(vk))
            pos = variants["position"].to_numpy()
            freq = panel_frequency(variants, ref)
            n_lr = int(in_regions(w.chrom, pos, excluded).sum())
            row = {"window": w.name, "n_file": len(vk), "n_long_range": n_lr,
                   "n_without_frequency": int(np.isnan(freq).sum())}
            if reduced:
                block, in_core = random_block(pos, reduced["max_variants"], reduced["core_margin"],
                                              np.random.default_rng([int(reduced["seed"]), w.start]))
                sel, pos = sel[block], pos[block]
                core = np.flatnonzero(in_core & ~in_regions(w.chrom, pos, excluded))   # long-range LD: in no core
            else:
                core = np.flatnonzero((pos >= bounds[w.name].lo) & (pos < bounds[w.name].hi))
            if core.size == 0:
                why = ("reduced run: no core variant outside long-range LD" if reduced else
                       "long-range LD region" if bounds[w.name].clipped else "no variant in the core")
                rows[k] = row | {"status": f"excluded: empty core ({why})", "n_core": 0, "n_extended": len(sel), "rank": 0}
                log.warning("%s: empty core (%s); window excluded", w.name, why)
            else:
                fac, psd = factorise_window(R, sel, core, rtol=rtol, name=prefix + ".npz", limits=limits)
                fac.name = w.name
                pending[k] = {"fac": fac, "pos": pos, "keys": vk[sel], "freq": freq[sel],
                              "needs": int(owners[k][sel].max())}
                rows[k] = row | {"status": "ok", "n_core": fac.n, "n_extended": fac.m, "rank": fac.rank,
                                 "psd_n_negative": psd.n_negative, "psd_min_eigenvalue": psd.min_eigenvalue,
                                 "psd_clipped_mass": psd.clipped_mass, "psd_max_abs_change": psd.max_abs_change}
            del R                # before the next window is read: one dense R at a time
            flush(k)
        flush(len(windows))
    write_manifest(out_manifest, rows)
    man = pd.DataFrame(rows)
    in_lr = {x for v, kk, w in zip(lists, keys, windows)
             for x in kk[in_regions(w.chrom, v["position"].to_numpy(), excluded)]}
    log.info("%d windows, %d factorised; %d LD variants lie in long-range-LD regions (in no core); %d window "
             "rows without a panel frequency", len(man), int((man["status"] == "ok").sum()), len(in_lr),
             int(man["n_without_frequency"].sum()))


if "snakemake" in globals():
    sm = snakemake  # noqa: F821
    p = sm.params
    main(p.prefixes, sm.input.cores, sm.output.factors, sm.output.manifest, p.rtol, p.diag_atol,
         PSDLimits(p.max_clip, p.max_clipped_mass, p.max_abs_change), p.regions, p.factor_dtype, p.compute_dtype,
         sm.threads, sm.log[0], panel_size=p.panel_size, reduced=p.reduced if hasattr(p, "reduced") else None,
         reference_frequencies=sm.input.get("reference_frequencies"))
