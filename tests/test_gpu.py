"""Training on a CUDA GPU equals training on the CPU (skipped where no CUDA device is present).

The windows are the msprime windows of tests/test_training_shared_forward.py (overlapping, stride one third).
In float64 the shared forward's gradient on the GPU equals the CPU's to float tolerance (the GPU sums in
another order), and so do the parameters a Trainer ends with; under bf16 autocast (the network only, the
likelihood stays float64, paper App. A.3) the gradient keeps the direction of the float64 one. With
train.compile (static chunks through torch.compile's CUDA kernels) a Trainer ends where the eager one ends.
"""
import pytest
import torch

from deepwas import likelihood
from deepwas.shared_forward import NeighbourRuns, group_backward
from deepwas.training import Trainer, _autocast, deepwas_loss
from test_training_shared_forward import N, S2, _cfg, _double, _grads, _prior, windows  # noqa: F401

pytestmark = pytest.mark.skipif(not torch.cuda.is_available(), reason="needs a CUDA GPU")


def shared_gradient(model, group, device, autocast=None, double=True, chunk=17):
    prior = _prior(model, double=double).to(device)
    prior.train()
    loss_fn = deepwas_loss(likelihood.get_solver("exact"))
    prior.zero_grad(set_to_none=True)
    losses, _ = group_backward(prior, group, loss_fn, N, S2, _autocast(autocast, torch.device(device)), 0.3,
                               device, chunk=chunk)
    return _grads(prior).cpu(), torch.stack([loss.detach().cpu() for loss in losses])


def trained_parameters(model, data, device, root, **cfg):
    prior = _prior(model)
    Trainer(prior, NeighbourRuns(data, 2), N, S2, _cfg(shared_forward=True, lr=1e-3 if model == "transformer"
                                                       else 2e-2, **cfg), root / "ck", root / "m.tsv",
            device=device).fit()
    return torch.cat([p.detach().flatten() for p in prior.parameters()]).cpu()


@pytest.mark.parametrize("model", ["glm", "transformer"])
def test_shared_forward_gradient_on_gpu_equals_cpu(windows, model):  # noqa: F811
    group = [_double(w) for w in windows[:4]]
    ref, ref_losses = shared_gradient(model, group, "cpu")
    got, losses = shared_gradient(model, group, "cuda")
    assert ref.abs().max() > 0
    torch.testing.assert_close(got, ref, rtol=1e-7, atol=1e-10 * float(ref.abs().max()))
    torch.testing.assert_close(losses, ref_losses, rtol=1e-9, atol=0)


def test_bf16_gradient_keeps_the_direction_of_the_float64_one(windows):  # noqa: F811
    ref, ref_losses = shared_gradient("transformer", [_double(w) for w in windows[:4]], "cpu")
    got, losses = shared_gradient("transformer", [w.to("cpu") for w in windows[:4]], "cuda", "bfloat16",
                                  double=False)
    cosine = float(torch.dot(got.double(), ref) / (got.double().norm() * ref.norm()))
    assert cosine > 0.99, cosine
    torch.testing.assert_close(losses.double(), ref_losses, rtol=1e-3, atol=0)


@pytest.mark.parametrize("model", ["glm", "transformer"])
def test_trainer_on_gpu_ends_where_the_cpu_trainer_ends(windows, tmp_path, model):  # noqa: F811
    data = [_double(w) for w in windows]
    cpu = trained_parameters(model, data, "cpu", tmp_path / "cpu")
    gpu = trained_parameters(model, data, "cuda", tmp_path / "gpu")
    assert not torch.equal(cpu, torch.cat([p.detach().flatten() for p in _prior(model).parameters()]))
    torch.testing.assert_close(gpu, cpu, rtol=1e-6, atol=1e-9)


@pytest.mark.parametrize("model", ["glm", "transformer"])
def test_compiled_trainer_on_gpu_ends_where_the_eager_trainer_ends(windows, tmp_path, model):  # noqa: F811
    # train.compile on CUDA: static 32-row chunks through inductor's Triton kernels (cuDNN autotuner on inside
    # the group), the last partial chunk eager, dropout from torch's generator: the eager run's parameters
    data = [_double(w) for w in windows]
    eager, compiled = (trained_parameters(model, data, "cuda", tmp_path / f"compile{c}", variant_chunk=32, compile=c)
                       for c in (False, True))
    assert not torch.equal(eager, torch.cat([p.detach().flatten() for p in _prior(model).parameters()]))
    torch.testing.assert_close(compiled, eager, rtol=1e-6, atol=1e-9)
