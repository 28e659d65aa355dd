"""Rules train, train_fold, train_ablation: fit one prior (model x objective) on the training chromosomes of
one trait (`deepwas.training.train_prior`).

Run by Snakemake (`script:`), it trains in its own process when the job has at most one GPU (the rule's `gpu`
resource, `gpu_for` in common.smk: `train.gpus` for jobs on GPUs; or, for jobs across nodes, `train.gpus` per
node when the job asks for GPUs with `gres` instead). With more, it writes the job's arguments to launch.json
in the checkpoint directory and starts one copy of itself per GPU with torchrun
(`deepwas.distributed.torchrun_command`, or the command prefix `train.launcher`), data-parallel over windows:

    python workflow/scripts/train_prior.py results/checkpoints/.../launch.json    # one process
    torchrun --standalone --nproc_per_node=4 workflow/scripts/train_prior.py .../launch.json
"""
import sys
from pathlib import Path

from deepwas import distributed
from deepwas.features.variants import VariantTracks
from deepwas.io import files_fingerprint, read_json, setup_logging, write_json
from deepwas.training import train_prior


def run(spec: dict) -> dict:
    """Train as the spec (launch.json) says."""
    tracks = spec["tracks"]
    tracks = VariantTracks(tracks["store"], tracks["liftover"], tracks["normalisation"], tracks["window"],
                           exclude=tracks.get("exclude")) if tracks else None
    return train_prior([tuple(c) for c in spec["chrom_inputs"]], spec["s2"], spec["annotations"], spec["model"],
                       spec["objective"], spec["prior"], spec["train"], spec["likelihood"], spec["out_model"],
                       spec["out_metrics"], spec["checkpoint_dir"], tracks=tracks, network=spec["network"],
                       label=spec["label"])


def main(argv) -> None:
    """Command line: `train_prior.py launch.json`, in one process or in each process torchrun starts."""
    if len(argv) != 1:
        sys.exit("usage: train_prior.py LAUNCH_JSON   (written by the train rule into its checkpoint directory)")
    spec = read_json(argv[0])
    rank, world, _ = distributed.init_from_env()
    setup_logging(None, level="INFO" if rank == 0 else "WARNING")   # the launcher appends it to the rule's log
    try:
        run(spec)
    finally:
        distributed.destroy()


def from_snakemake(sm) -> None:
    p = sm.params
    tracks = None
    if p.tracks:
        tracks = dict(store=sm.input.store, liftover=dict(p.tracks["liftover"]), normalisation=sm.input.normalisation,
                      window=p.tracks["window"], exclude=p.tracks.get("exclude"))
    # checkpoints are keyed by the training data too: after the inputs change, a rerun starts afresh
    data = [*sm.input.stats, *sm.input.manifests, sm.input.s2, *([p.annotations] if p.annotations else []),
            *([sm.input.normalisation, *sm.input.liftover] if p.tracks else [])]
    checkpoint_dir = f"{p.checkpoint_dir}/{files_fingerprint(data, extra={'network': p.network, 'tracks': p.tracks})}"
    spec = dict(chrom_inputs=[list(c) for c in zip(sm.input.factors, sm.input.manifests, sm.input.stats)],
                s2=sm.input.s2, annotations=p.annotations, model=p.model, objective=p.objective, prior=dict(p.prior),
                train=dict(p.train), likelihood=dict(p.likelihood), network=dict(p.network), tracks=tracks,
                out_model=sm.output.model, out_metrics=sm.output.metrics, checkpoint_dir=checkpoint_dir,
                label="/".join(str(v) for v in dict(sm.wildcards).values()))
    setup_logging(sm.log[0])
    path = Path(checkpoint_dir) / "launch.json"      # also for one process: the job run by hand (README)
    write_json(path, spec)
    gpus = int(sm.resources.get("gpu", 0) or 0)
    if not gpus and "gpu" in str(sm.resources.get("gres", "")):   # GPUs per node through gres (several nodes)
        gpus = int(p.train["gpus"])
    processes = max(1, gpus)
    if processes == 1:
        run(spec)
        return
    if not p.train["shared_forward"]:
        raise ValueError(f"train.gpus: {processes} trains in {processes} processes, which share each accumulation "
                         "group's windows: set train.shared_forward: true (or train.gpus: 1)")
    # the original script (Snakemake runs a copy of it with a preamble that would re-enter this function)
    script = Path(sm.scriptdir) / "train_prior.py"
    distributed.launch(distributed.torchrun_command(script, [path], processes, p.train["launcher"]), sm.log[0])


if "snakemake" in globals():
    from_snakemake(snakemake)  # noqa: F821
elif __name__ == "__main__":
    main(sys.argv[1:])
