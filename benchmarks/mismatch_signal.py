"""Where the finite-panel-corrected likelihood misses: its whitened statistic y' against the model at the truth.

For the blocks of `deepwas.simulation.ld_mismatch` (`simulate_region`, the windows of `run`: cores of about 150
variants inside one independent msprime block, flanks to the block's edges or `--flank` variants each side) and
LD from (a) the cohort or (b) the same-population panel with the finite-panel correction
(`likelihood.mismatch.panel_correction`), per set of windows (training = the first half of the blocks, held
out = the rest), averaged over the whitened directions that are kept:

- noise: the true variance of the noise part of y' (1 when the correction of the residual term is right);
- signal true / model: the variance of the signal part of y' at the truth (phi = N h2 / M_genome), true (from
  the cohort's R, split into the rows of the core, of the flanks of (i)+ and of the block's variants beyond (i)+;
  the other blocks add none: the simulated signal has no LD between blocks)
  against the model's (from the LD source, core and flanks: all the likelihood sees; with the correction the
  core rows are those of the shrunk core block U diag(t) U^T, `likelihood.mismatch.correct_panel`, or with
  `--core panel` the panel's R^[i,i] as is);
- excess: expected (noise - 1 + signal true - signal model: what the fit absorbs at the truth) and realized
  (mean of y'^2 - 1 - signal model over the directions, with the share of its 5 largest terms), and the
  realized excess split by least squares on the model's signal per direction into an intercept (taken up
  by s2) and a slope (taken up by the prior's scale: the relative change of h2);
- in the lowest third of the kept sample eigenvalues of each window: true signal over the model's, core and flanks.

    PYTHONPATH=workflow/scripts nice -n 10 python benchmarks/mismatch_signal.py --seeds 1 4 [--blocks 200] [--flank 300]
        [--core shrunk|panel] [--cache DIR]
"""
from __future__ import annotations

import argparse

import numpy as np

from deepwas.likelihood.mismatch import panel_correction
from deepwas.simulation.ld_mismatch import LABELS, core_bounds
from mismatch import load_or_simulate  # benchmarks/mismatch.py: the same --cache of simulated blocks


def decompose(blocks, label: str, n_panel: int, N: float, h2: float, M_genome: float, core_size: int,
              flank: int | None, shrunk_core: bool = True) -> dict:
    """The averages of the module docstring over the windows of `blocks` (n_panel 0: no correction, the LD source
    is the statistics' own; shrunk_core False: the panel's core block as is in the signal term, the model before
    the shrunk core)."""
    phi = N * h2 / M_genome
    acc = {k: [] for k in ("noise", "true_core", "true_flank", "true_beyond", "model_core", "model_flank", "excess",
                           "low")}
    for blk in blocks:
        for s, e in core_bounds(blk.M, core_size):
            _window(blk, blk.lds[LABELS[0]], blk.lds[label], n_panel, phi, s, e, blk.M if flank is None else flank,
                    acc, shrunk_core)
    out = {k: np.concatenate(v) for k, v in acc.items()}
    low = out.pop("low")
    ex = np.sort(out["excess"])[::-1]
    # least squares of the realized excess on the model's signal: the intercept is what s2 takes up, the slope
    # the relative change of the prior's scale (h2) that absorbs it
    model = out["model_core"] + out["model_flank"]
    slope, intercept = np.polyfit(model, out["excess"], 1)
    return {"directions": ex.size, **{k: float(v.mean()) for k, v in out.items()},
            "as_s2": float(intercept), "as_h2": float(slope),
            "expected_excess": float(np.mean(out["noise"] - 1 + out["true_core"] + out["true_flank"]
                                             + out["true_beyond"] - out["model_core"] - out["model_flank"])),
            "top5_share": float(ex[:5].sum() / ex.sum()),
            "low_core": float(out["true_core"][low].sum() / out["model_core"][low].sum()),
            "low_flank": float(out["true_flank"][low].sum() / out["model_flank"][low].sum())}


def _window(blk, R, R_src, n_panel, phi, s, e, flank, acc, shrunk_core=True):
    """One window's terms (module docstring), appended to acc."""
    M = blk.M
    core, flank_idx = np.arange(s, e), np.r_[max(0, s - flank):s, e:min(M, e + flank)]
    beyond = np.setdiff1d(np.arange(M), np.r_[core, flank_idx])
    lam, U = np.linalg.eigh(R_src[np.ix_(core, core)])
    keep = lam > 1e-8 * lam.max()
    lam, U, d = lam[keep], U[:, keep], np.ones(int(keep.sum()))
    if n_panel:
        keep, d = panel_correction(lam, len(core), n_panel)
        lam, U = lam[keep], U[:, keep]
    w2 = 1.0 / (lam * d)                                      # y' = w2^1/2 U^T z_core

    def signal(RR, rows):
        return phi * w2 * np.sum((RR[rows][:, core] @ U) ** 2, 0)

    # the likelihood's core rows: the panel's R^[i,i] U = U diag(lam), or with the correction the shrunk core block
    # U diag(t) U^T (t = lam d; `likelihood.mismatch.correct_panel`)
    model_core = phi * w2 * (lam * d) ** 2 if n_panel and shrunk_core else phi * w2 * lam ** 2
    acc["low"].append(lam < np.quantile(lam, 1 / 3))

    acc["noise"].append(w2 * np.einsum("ik,ij,jk->k", U, R[np.ix_(core, core)], U))
    for k, RR, rows in (("true_core", R, core), ("true_flank", R, flank_idx), ("true_beyond", R, beyond),
                        ("model_flank", R_src, flank_idx)):
        acc[k].append(signal(RR, rows))
    acc["model_core"].append(model_core)
    y = np.sqrt(w2) * (U.T @ blk.z[core])
    acc["excess"].append(y ** 2 - 1.0 - acc["model_core"][-1] - acc["model_flank"][-1])


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--seeds", type=int, nargs="+", default=[1, 4])
    ap.add_argument("--panel", type=int, default=500)
    ap.add_argument("--blocks", type=int, default=200)
    ap.add_argument("--flank", type=int, default=None, help="flanking variants each side (default: the block)")
    ap.add_argument("--core", choices=["shrunk", "panel"], default="shrunk", help="the signal term's core block with "
                    "the correction: shrunk U diag(t) U^T (the likelihood's) or the panel's as is (the earlier model)")
    ap.add_argument("--cache", default=None,
                    help="the --cache folder of benchmarks/mismatch.py (its blocks are reused)")
    a = ap.parse_args()
    N, h2, M_genome, core_size = 100_000, 0.5, 1_000_000, 150
    print("| seed | LD | windows | kept directions | noise | signal true: core / flanks / beyond (i)+ | "
          "signal model: core / flanks | excess expected | excess realized (top 5 share) | "
          "realized: as s2 / as h2 | lowest third of kept lam, true / model: core, flanks |")
    print("| --- | --- | --- | --- | --- | --- | --- | --- | --- | --- | --- |")
    for seed in a.seeds:
        sim = dict(n_cohort=4000, n_panel=a.panel, n_blocks=a.blocks, block_length=5e5, seed=seed)
        reg = load_or_simulate(sim, a.cache)          # N, h2 and M_genome above are simulate_region's defaults
        for label, n in ((LABELS[0], 0), (LABELS[1], a.panel)):
            for name, bs in (("training", reg.blocks[:reg.n_train]), ("held out", reg.blocks[reg.n_train:])):
                r = decompose(bs, label, n, N, h2, M_genome, core_size, a.flank, a.core == "shrunk")
                print(f"| {seed} | {label[0]} | {name} | {r['directions']} | {r['noise']:.3f} | {r['true_core']:.3f} / "
                      f"{r['true_flank']:.3f} / {r['true_beyond']:.3f} | {r['model_core']:.3f} / "
                      f"{r['model_flank']:.3f} | {r['expected_excess']:+.3f} | {r['excess']:+.3f} "
                      f"({r['top5_share']:.0%}) | {r['as_s2']:+.2f} / {r['as_h2']:+.0%} | {r['low_core']:.2f}, "
                      f"{r['low_flank']:.2f} |", flush=True)


if __name__ == "__main__":
    main()
