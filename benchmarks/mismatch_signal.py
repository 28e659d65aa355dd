"""Where the finite-panel-corrected likelihood misses: its whitened statistic y' against the model at the truth.

For the region of `deepwas.simulation.ld_mismatch` (`simulate_region`, the windows of `run`: cores of 150
variants, 300 flanking variants each side) and LD from (a) the cohort or (b) the same-population panel with the
finite-panel correction (`likelihood.mismatch.panel_correction`), per set of windows (training = first half,
held out = second half), averaged over the whitened directions that are kept:

- noise: the true variance of the noise part of y' (1 when the correction of the residual term is right);
- signal true / model: the variance of the signal part of y' at the truth (phi = N h2 / M_genome), true (from
  the cohort's R, split into the rows of the core, of the flanks of (i)+ and of the variants beyond (i)+)
  against the model's (from the LD source, core and flanks: all the likelihood sees);
- excess: expected (noise - 1 + signal true - signal model: what the fit absorbs at the truth) and realized
  (mean of y'^2 - 1 - signal model over the directions, with the share of its 5 largest terms), and the
  realized excess split by least squares on the model's signal per direction into an intercept (taken up
  by s2) and a slope (taken up by the prior's scale: the relative change of h2).

    PYTHONPATH=workflow/scripts nice -n 10 python benchmarks/mismatch_signal.py --seeds 1 4
"""
from __future__ import annotations

import argparse

import numpy as np

from deepwas.likelihood.mismatch import panel_correction
from deepwas.simulation.ld_mismatch import simulate_region


def decompose(reg, R_src, n_panel: int, N: float, h2: float, M_genome: float, core_size: int, flank: int,
              window_starts) -> dict:
    """The averages of the module docstring over the windows starting at `window_starts` (n_panel 0: no
    correction, the LD source is the statistics' own)."""
    R, M, phi = reg.lds["a: cohort (in-sample)"], reg.M, N * h2 / M_genome
    acc = {k: [] for k in ("noise", "true_core", "true_flank", "true_beyond", "model_core", "model_flank", "excess")}
    for s in window_starts:
        e = min(s + core_size, M)
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

        acc["noise"].append(w2 * np.einsum("ik,ij,jk->k", U, R[np.ix_(core, core)], U))
        for k, RR, rows in (("true_core", R, core), ("true_flank", R, flank_idx), ("true_beyond", R, beyond),
                            ("model_core", R_src, core), ("model_flank", R_src, flank_idx)):
            acc[k].append(signal(RR, rows))
        y = np.sqrt(w2) * (U.T @ reg.z[core])
        acc["excess"].append(y ** 2 - 1.0 - acc["model_core"][-1] - acc["model_flank"][-1])
    out = {k: np.concatenate(v) for k, v in acc.items()}
    ex = np.sort(out["excess"])[::-1]
    # least squares of the realized excess on the model's signal: the intercept is what s2 takes up, the slope
    # the relative change of the prior's scale (h2) that absorbs it
    model = out["model_core"] + out["model_flank"]
    slope, intercept = np.polyfit(model, out["excess"], 1)
    return {"directions": ex.size, **{k: float(v.mean()) for k, v in out.items()},
            "as_s2": float(intercept), "as_h2": float(slope),
            "expected_excess": float(np.mean(out["noise"] - 1 + out["true_core"] + out["true_flank"]
                                             + out["true_beyond"] - out["model_core"] - out["model_flank"])),
            "top5_share": float(ex[:5].sum() / ex.sum())}


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--seeds", type=int, nargs="+", default=[1, 4])
    ap.add_argument("--panel", type=int, default=500)
    a = ap.parse_args()
    N, h2, M_genome, core_size, flank = 100_000, 0.5, 1_000_000, 150, 300
    print("| seed | LD | windows | kept directions | noise | signal true: core / flanks / beyond (i)+ | "
          "signal model: core / flanks | excess expected | excess realized (top 5 share) | "
          "realized: as s2 / as h2 |")
    print("| --- | --- | --- | --- | --- | --- | --- | --- | --- | --- |")
    for seed in a.seeds:
        reg = simulate_region(n_panel=a.panel, N=N, h2=h2, M_genome=M_genome, seed=seed)
        starts = list(range(0, reg.M, core_size))
        half = len(starts) // 2
        for label, n in (("a: cohort (in-sample)", 0), ("b: panel, same population", a.panel)):
            for name, ws in (("training", starts[:half]), ("held out", starts[half:])):
                r = decompose(reg, reg.lds[label], n, N, h2, M_genome, core_size, flank, ws)
                print(f"| {seed} | {label[0]} | {name} | {r['directions']} | {r['noise']:.3f} | {r['true_core']:.3f} / "
                      f"{r['true_flank']:.3f} / {r['true_beyond']:.3f} | {r['model_core']:.3f} / "
                      f"{r['model_flank']:.3f} | {r['expected_excess']:+.3f} | {r['excess']:+.3f} "
                      f"({r['top5_share']:.0%}) | {r['as_s2']:+.2f} / {r['as_h2']:+.0%} |", flush=True)


if __name__ == "__main__":
    main()
