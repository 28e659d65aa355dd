"""Data-parallel training over windows with torch.distributed (paper Sec. 4.1: windows as mini-batches).

Each optimiser step's accumulation group of windows (positions k * accumulate .. (k + 1) * accumulate - 1 of
the epoch's seeded order) is cut into contiguous shards, one per process (`shard`): neighbouring windows
stay together, so each rank's shared forward still merges their rows. Every rank accumulates the gradient
of its shard with the single-process weight (loss scale / accumulate), one all-reduce sums the gradients
over ranks, and every rank takes the same AdamW step: the sum is the single-process gradient of the whole
group, and the parameters stay identical on all ranks. This is what DistributedDataParallel does with
`no_sync` over an accumulation, written out because the chunked recomputing backward of the shared forward
calls backward once per chunk (DDP would all-reduce after each).

Processes are started by torchrun (environment RANK, WORLD_SIZE, LOCAL_RANK, MASTER_ADDR, MASTER_PORT);
`init_from_env` joins the group (nccl on GPUs, gloo on CPUs). Without a process group everything here is
the single-process identity. `torchrun_command` and `launch` start the processes: the train rule's script
(workflow/scripts/train_prior.py) relaunches itself that way when its job has more than one GPU.
"""
from __future__ import annotations

import os
import shlex
import subprocess
import sys

import torch
import torch.distributed as dist


def rank_world() -> tuple[int, int]:
    """(rank, world size) of the current process group, (0, 1) without one."""
    if dist.is_available() and dist.is_initialized():
        return dist.get_rank(), dist.get_world_size()
    return 0, 1


def init_from_env(backend: str | None = None) -> tuple[int, int, torch.device | None]:
    """Join the process group torchrun describes in the environment; returns (rank, world, device), the
    device being cuda:LOCAL_RANK on GPU machines. A single process (no WORLD_SIZE > 1) is left alone."""
    world = int(os.environ.get("WORLD_SIZE", "1"))
    if world <= 1:
        return 0, 1, None
    cuda = torch.cuda.is_available()
    device = None
    if cuda:
        device = torch.device("cuda", int(os.environ.get("LOCAL_RANK", "0")))
        torch.cuda.set_device(device)
    if not dist.is_initialized():
        dist.init_process_group(backend or ("nccl" if cuda else "gloo"))
    return dist.get_rank(), dist.get_world_size(), device


def shard(n: int, rank: int, world: int) -> slice:
    """Contiguous part `rank` of `world` of n items (sizes differ by at most one)."""
    return slice(n * rank // world, n * (rank + 1) // world)


def broadcast_parameters(module: torch.nn.Module) -> None:
    """Rank 0's parameters and buffers on every rank (a no-op in a single process)."""
    if rank_world()[1] == 1:
        return
    for t in list(module.parameters()) + list(module.buffers()):
        dist.broadcast(t.data, src=0)


def all_reduce_gradients(params) -> None:
    """Sum the .grad of `params` over ranks in one flat all-reduce (missing gradients count as zero)."""
    if rank_world()[1] == 1:
        return
    params = [p for p in params if p.requires_grad]
    for p in params:
        if p.grad is None:
            p.grad = torch.zeros_like(p)
    flat = torch.cat([p.grad.reshape(-1) for p in params])
    dist.all_reduce(flat, op=dist.ReduceOp.SUM)
    offset = 0
    for p in params:
        n = p.numel()
        p.grad.copy_(flat[offset:offset + n].view_as(p.grad))
        offset += n


def gather(obj) -> list:
    """[obj of rank 0, obj of rank 1, ...] on every rank ([obj] in a single process)."""
    world = rank_world()[1]
    if world == 1:
        return [obj]
    out = [None] * world
    dist.all_gather_object(out, obj)
    return out


def barrier() -> None:
    if rank_world()[1] > 1:
        dist.barrier()


DEFAULT_LAUNCHER = "{python} -m torch.distributed.run --standalone --nproc_per_node={processes}"


def torchrun_command(script, args, processes: int, launcher: str | None = None) -> str:
    """The shell command that runs `script args` in `processes` processes on this node with torchrun
    (`python -m torch.distributed.run --standalone`: a free local rendezvous port, so several such jobs can
    share a node). `launcher` replaces that prefix (e.g. srun + torchrun across the nodes of a SLURM
    allocation); its placeholders {processes} and {python} are filled in, the rest (environment variables
    such as $SLURM_NNODES) is left to the shell."""
    prefix = (launcher or DEFAULT_LAUNCHER).replace("{processes}", str(int(processes)))
    prefix = prefix.replace("{python}", shlex.quote(sys.executable))
    return " ".join([prefix, shlex.quote(str(script)), *(shlex.quote(str(a)) for a in args)])


def launch(command: str, log_path=None) -> None:
    """Run `command` (from `torchrun_command`) in a shell, its output appended to `log_path`; raises
    RuntimeError naming the log when a process fails."""
    with open(log_path, "a") if log_path else open(os.devnull, "w") as fh:
        fh.write(f"launching: {command}\n")
        fh.flush()
        rc = subprocess.run(command, shell=True, stdout=fh if log_path else None, stderr=subprocess.STDOUT
                            if log_path else None).returncode
    if rc != 0:
        raise RuntimeError(f"the training processes failed (exit status {rc}) under: {command}"
                           + (f"; their output is in {log_path}" if log_path else ""))


def destroy() -> None:
    """Leave the process group (after training under torchrun)."""
    if dist.is_available() and dist.is_initialized():
        dist.destroy_process_group()
