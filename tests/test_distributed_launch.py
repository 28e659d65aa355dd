"""The train rule's multi-GPU launch (`train.gpus` > 1): workflow/scripts/train_prior.py started by torchrun.

The script's command line is its entry point under torchrun: `deepwas.distributed.torchrun_command` runs it
in 2 CPU processes (gloo) on the msprime windows of tests/test_checkpoint_resume.py, and they must end with
the parameters and metrics of one process training the same spec (float tolerance: the all-reduce sums the
gradient in another order). The data-parallel math itself, with dropout and resume, is tested in
tests/test_distributed.py.
"""
import csv
import os
import re
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import torch
import yaml

from deepwas.distributed import launch, torchrun_command
from deepwas.formats.model_file import ModelFile
from deepwas.io import write_json
from test_checkpoint_resume import disk  # noqa: F401  (the fixture: 5 windows on disk)

SCRIPT = Path(__file__).resolve().parents[1] / "workflow" / "scripts" / "train_prior.py"


def spec(disk, out):
    return dict(chrom_inputs=[[str(disk / "factors"), str(disk / "manifest.tsv"), str(disk / "stats.npz")]],
                s2=str(disk / "s2.json"), annotations=None, model="glm", objective="deepwas",
                prior={"alpha": 0.7, "learn_alpha": True}, likelihood={"solver": "exact"}, network={}, tracks=None,
                train=dict(epochs=2, lr={"glm": 2e-2}, warmup_steps=2, accumulate=4, checkpoint_every=1, seed=5,
                           clip_grad_norm=1.0, progress=False, stream=False, shared_forward=True, device="cpu"),
                out_model=str(out / "model.pt"), out_metrics=str(out / "metrics.tsv"),
                checkpoint_dir=str(out / "ckpt"), label="t/glm/deepwas")


def rows(path):
    with open(path) as fh:
        return [r[:-1] for r in csv.reader(fh, delimiter="\t")]


def test_torchrun_command_fills_the_launcher():
    cmd = torchrun_command("/a b/train_prior.py", ["/x/launch.json"], 4)
    assert cmd.endswith("-m torch.distributed.run --standalone --nproc_per_node=4 '/a b/train_prior.py' "
                        "/x/launch.json")
    srun = torchrun_command("s.py", ["l.json"], 2, "srun {python} -m torch.distributed.run --nnodes=$SLURM_NNODES "
                                                   "--nproc_per_node={processes}")
    assert "--nproc_per_node=2 s.py l.json" in srun and "$SLURM_NNODES" in srun and "{python}" not in srun


def test_two_process_torchrun_launch_equals_one_process(disk, tmp_path, monkeypatch):  # noqa: F811
    from deepwas.training import train_prior

    one = spec(disk, tmp_path / "one")
    t = one["train"]
    train_prior([tuple(c) for c in one["chrom_inputs"]], one["s2"], None, "glm", "deepwas", one["prior"], t,
                one["likelihood"], one["out_model"], one["out_metrics"], one["checkpoint_dir"])

    two = spec(disk, tmp_path / "two")
    write_json(tmp_path / "launch.json", two)
    monkeypatch.setenv("OMP_NUM_THREADS", "1")
    log = tmp_path / "train.log"
    launch(torchrun_command(SCRIPT, [tmp_path / "launch.json"], 2), log)
    text = log.read_text()
    assert "launching:" in text and "--nproc_per_node=2" in text
    assert "in 2 processes" in text, text[-3000:]

    a, b = ModelFile.load(one["out_model"]).state, ModelFile.load(two["out_model"]).state
    assert a.keys() == b.keys() and "alpha" in a
    for k in a:
        torch.testing.assert_close(b[k], a[k], rtol=1e-5, atol=1e-7)
    assert abs(float(a["alpha"]) - 0.7) > 1e-3                          # training moved the parameters
    r1, r2 = rows(one["out_metrics"]), rows(two["out_metrics"])
    assert [r[:4] for r in r1] == [r[:4] for r in r2] and len(r1) == 1 + 2 * 5
    np.testing.assert_allclose([float(r[4]) for r in r2[1:]], [float(r[4]) for r in r1[1:]], rtol=1e-5)


def test_a_failed_process_names_the_log(tmp_path):
    bad = tmp_path / "missing.json"
    with pytest.raises(RuntimeError, match="exit status .*train.log"):
        launch(torchrun_command(SCRIPT, [bad], 2), tmp_path / "train.log")
    assert os.path.getsize(tmp_path / "train.log") > 0


def test_train_gpus_sets_the_gpu_request_of_transformer_training(tmp_path):
    """`train.gpus: 2` in a dry run: the transformer's train jobs ask for 2 GPUs (the training script then starts
    2 processes), constant DeepWAS training for one (its exact likelihood on the GPU, never torchrun)."""
    repo = SCRIPT.parents[2]
    cfg = yaml.safe_load((repo / "tests/e2e/tracks.yaml").read_text())
    cfg.update(models=["constant", "transformer"], objectives=["deepwas"], priors={"folds": 0})
    cfg["train"].update(device="auto", gpus=2, shared_forward=True)
    (tmp_path / "config.yaml").write_text(yaml.safe_dump(cfg))
    (tmp_path / cfg["traits"]).write_text((repo / "tests/e2e" / cfg["traits"]).read_text())
    out = subprocess.run([sys.executable, "-m", "snakemake", "-n", "-s", str(repo / "Snakefile"), "--directory",
                          str(tmp_path), "--configfile", str(tmp_path / "config.yaml"), "--workflow-profile", "none"],
                         capture_output=True, text=True, timeout=300,
                         env={**os.environ, "PYTHONPATH": str(SCRIPT.parent)})
    assert out.returncode == 0, out.stdout[-3000:] + out.stderr[-3000:]
    text = out.stdout + out.stderr
    jobs = re.findall(r"rule train:\n(?:\s+\w+: .*\n)*?\s+wildcards: (.*)\n(?:\s+\w+: .*\n)*?\s+resources: (.*)", text)
    pairs = lambda s: dict(kv.split("=", 1) for kv in s.split(", "))  # noqa: E731
    got = {pairs(wc)["model"]: pairs(res).get("gpu") for wc, res in jobs}
    assert got == {"constant": "1", "transformer": "2"}, text[-3000:]   # constant: one GPU for its exact likelihood


def test_the_rule_script_relaunches_itself_with_two_gpus(disk, tmp_path, monkeypatch):  # noqa: F811
    """The Snakemake side of the script: a job whose `gpu` resource is 2 writes launch.json and relaunches the
    original script (not Snakemake's copy) in 2 processes; the result equals the 1-process job."""
    import importlib.util
    from types import SimpleNamespace

    from deepwas.config import block_defaults

    mod_spec = importlib.util.spec_from_file_location("train_prior_script", SCRIPT)
    script = importlib.util.module_from_spec(mod_spec)
    mod_spec.loader.exec_module(script)
    monkeypatch.setenv("OMP_NUM_THREADS", "1")
    train = block_defaults("train", dict(spec(disk, tmp_path)["train"]))
    outs = {}
    for gpus in (0, 2):
        out = tmp_path / f"gpu{gpus}"
        sm = SimpleNamespace(
            input=SimpleNamespace(factors=[str(disk / "factors")], manifests=[str(disk / "manifest.tsv")],
                                  stats=[str(disk / "stats.npz")], s2=str(disk / "s2.json")),
            output=SimpleNamespace(model=str(out / "model.pt"), metrics=str(out / "metrics.tsv")),
            params=SimpleNamespace(model="glm", objective="deepwas", annotations=None, tracks=None,
                                   prior={"alpha": 0.7, "learn_alpha": True}, network={}, train=train,
                                   likelihood=block_defaults("likelihood", {}), checkpoint_dir=str(out / "ckpt")),
            log=[str(out / "train.log")], wildcards={"trait": "t", "model": "glm", "objective": "deepwas"},
            resources={"gpu": gpus}, scriptdir=str(SCRIPT.parent))
        script.from_snakemake(sm)
        outs[gpus] = out
    launch_json = list((outs[2] / "ckpt").glob("*/launch.json"))
    assert len(launch_json) == 1
    text = (outs[2] / "train.log").read_text()
    assert f"nproc_per_node=2 {SCRIPT}" in text and "t/glm/deepwas" in text and "in 2 processes" in text
    a, b = ModelFile.load(outs[0] / "model.pt").state, ModelFile.load(outs[2] / "model.pt").state
    for k in a:
        torch.testing.assert_close(b[k], a[k], rtol=1e-5, atol=1e-7)
