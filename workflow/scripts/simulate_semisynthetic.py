"""Rule simulate_semisynthetic: one semi-synthetic replicate (paper Sec. 6.1) on the real LD and features.

Truth f, statistics through the LD factors, training of every model x objective and the held-out RMSE of
log f are in `deepwas.simulation.semisynthetic`; this script only reads the inputs and writes the outputs.
"""
import torch

from deepwas.features.variants import VariantTracks
from deepwas.io import setup_logging, write_json, write_table
from deepwas.simulation.semisynthetic import data_fingerprint, load_factor_windows, run_simulation, simulation_config, variant_table
from deepwas.training import pick_device


def main(truth, factor_dirs, manifests, chromosomes, heldout, store, normalisation, liftover, track_window, sim,
         network, alpha, train, checkpoint_root, out_rmse, out_details, log_path=None, threads=1):
    log = setup_logging(log_path)
    torch.set_num_threads(max(1, int(threads)))
    cfg = simulation_config(sim)
    windows = load_factor_windows({str(c): (d, m) for c, d, m in zip(chromosomes, factor_dirs, manifests)})
    tracks = VariantTracks(store, dict(zip(map(str, chromosomes), liftover)), normalisation, track_window)
    variants = variant_table(windows, tracks)
    log.info("%d windows, %d variants, %d tracks x %d bp", len(windows), variants.M, variants.d_func, track_window)
    fp = data_fingerprint(truth, cfg, windows, dict(network=network, alpha=alpha, train=train, w=track_window,
                                                    tracks=tracks.track_names, heldout=list(heldout)))
    table, details = run_simulation(truth, windows, variants, heldout, cfg, f"{checkpoint_root}/{fp}", alpha=alpha,
                                    network=network, train=train, device=pick_device(train["device"]))
    details["workdir"] = f"{checkpoint_root}/{fp}"
    write_table(out_rmse, table, float_format="%.6g")
    write_json(out_details, details)


if "snakemake" in globals():
    sm = snakemake  # noqa: F821
    p = sm.params
    main(sm.wildcards.truth, sm.input.factors, sm.input.manifests, p.chromosomes, p.heldout, sm.input.store,
         sm.input.normalisation, sm.input.liftover, p.track_window, p.simulation, p.network, p.alpha, p.train,
         p.checkpoint_root, sm.output.rmse, sm.output.details, sm.log[0], sm.threads)
