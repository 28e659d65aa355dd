"""The prior's forward over many variants (deepwas.inference): batches of variants on the CPU give the numbers
of one forward over all rows to float32 rounding (the evaluation, export and h2 results of before), and the device
and autocast follow train.device / train.autocast."""
import numpy as np
import pytest
import torch

from deepwas.evaluation import prior_phi
from deepwas.export import predict_f
from deepwas.inference import Inference, inference_config
from deepwas.priors import build_prior
from deepwas.window import WindowData

D_PRED, D_FUNC, W, M = 4, 3, 64, 301


def inputs(m=M, seed=0):
    g = torch.Generator().manual_seed(seed)
    return {"freq": torch.rand(m, generator=g, dtype=torch.float64) * 0.9 + 0.05,
            "pred": torch.randn(m, D_PRED, generator=g),
            "tracks": torch.randn(m, D_FUNC, W, generator=g)}


def prior(model, norm="layer", seed=1):
    torch.manual_seed(seed)
    p = build_prior(model, D_PRED, D_FUNC, init_log_scale=-7.0, alpha=0.7,
                    network={"size": "tiny", "w": W, "norm": norm} if model == "transformer" else None)
    with torch.no_grad():   # move the network's output away from its near-zero start, so every weight matters
        for q in p.parameters():
            q.add_(0.05 * torch.randn_like(q))
    return p.eval()


@pytest.mark.parametrize("model,norm", [("transformer", "layer"), ("transformer", "batch"), ("glm", None),
                                        ("constant", None)])
@pytest.mark.parametrize("batch_size,m", [(64, 301), (128, 9001), (4096, 9001), (0, 301)])
def test_batched_forward_equals_one_forward_exactly_on_cpu(model, norm, batch_size, m):
    """The schema's batch sizes (multiples of 64, or 0), with a partial last batch: the numbers of one forward
    to float32 rounding (bit for bit on the CI machine; a 16-core CPU with torch 2.11 picks other kernel
    blockings per batch and differed by up to 1e-6 relative, measured 2026-11-27)."""
    p, x = prior(model, norm or "layer"), inputs(m)
    with torch.no_grad():
        whole = p(x).double()
    got = Inference(batch_size=batch_size)(p, x)
    assert got.dtype == torch.float64 and got.device.type == "cpu" and got.shape == (m,)
    torch.testing.assert_close(got, whole, rtol=1e-5, atol=0)
    assert float(whole.std()) > 0.01 * float(whole.mean()) > 0             # f varies over variants: a real check
    np.testing.assert_allclose(predict_f(p, x, Inference(batch_size=batch_size)), whole.numpy(), rtol=1e-5, atol=0)


def test_evaluation_phi_equals_the_unbatched_one_on_cpu():
    """prior_phi (rule evaluate) gives the N f of `N * prior(w.inputs)` as before (to float32 rounding)."""
    p, x, N = prior("transformer"), inputs(), 4.5e5
    w = WindowData("w", torch.eye(M, dtype=torch.float64), torch.ones(M, dtype=torch.float64),
                   torch.zeros(M, dtype=torch.float64), x)
    with torch.no_grad():
        before = (N * p(x)).double()
    torch.testing.assert_close(prior_phi(p, N, Inference(batch_size=64))(w).double(), before, rtol=1e-5, atol=0)


def test_empty_batch():
    assert Inference()(prior("glm"), inputs(m=0)).shape == (0,)


def test_from_config_follows_train_device_and_autocast():
    run = Inference.from_config("transformer", {"device": "cpu", "autocast": "bfloat16"}, {"batch_size": 128})
    assert run == Inference(torch.device("cpu"), None, 128)                # no autocast on the CPU
    assert Inference.from_config("glm", None, None).batch_size == 4096      # the schema's default
    if torch.cuda.is_available():
        gpu = Inference.from_config("transformer", {"device": "auto", "autocast": "bfloat16"})
        assert gpu.device.type == "cuda" and gpu.autocast == "bfloat16"
        assert Inference.from_config("glm", {"autocast": "bfloat16"}).autocast is None   # network only
    for bad in (-64, 100):    # not a multiple of 64: no longer bit-identical on the CPU
        with pytest.raises(Exception, match="batch_size"):
            Inference.from_config("glm", None, {"batch_size": bad})
    assert inference_config({"train": {"device": "cpu"}}) == {"train": {"device": "cpu"}, "inference": None}


@pytest.mark.skipif(not torch.cuda.is_available(), reason="needs a CUDA GPU")
@pytest.mark.parametrize("autocast,rtol", [(None, 1e-3), ("bfloat16", 5e-2)])   # float32: cuDNN convolutions in TF32
def test_gpu_forward_matches_cpu(autocast, rtol):
    p, x = prior("transformer"), inputs(m=5000)
    cpu = Inference(batch_size=0)(p, x)
    run = Inference(torch.device("cuda"), autocast, 1024)
    got = run(run.place(p), x)
    assert got.device.type == "cpu" and got.dtype == torch.float64
    np.testing.assert_allclose(got.numpy(), cpu.numpy(), rtol=rtol)
