"""Enformer-style NN_theta: sizes, shapes, gradient flow (the reference code froze layers), autocast."""
import math

import pytest
import torch

from deepwas.networks import SIZES, EnformerNN, count_parameters, relative_position_basis
from deepwas.networks.enformer import PAPER_D_FUNC, PAPER_D_PRED, PAPER_W, exponential_channels


@pytest.mark.parametrize("size", sorted(SIZES))
def test_parameter_count_matches_config(size):
    # built on the meta device: no memory, no compute, exact count
    with torch.device("meta"):
        net = EnformerNN.from_size(size, PAPER_D_FUNC, PAPER_D_PRED, PAPER_W)
    assert count_parameters(net) == SIZES[size]["expected_params"]
    assert count_parameters(net, trainable_only=True) == SIZES[size]["expected_params"]


def test_paper_sizes_are_about_the_stated_ones():
    assert abs(SIZES["full"]["expected_params"] / 52e6 - 1) < 0.01
    assert abs(SIZES["reduced"]["expected_params"] / 3.9e6 - 1) < 0.05
    assert SIZES["full"]["dim"] == 1536 and SIZES["full"]["depth"] == 2 and SIZES["full"]["heads"] == 2
    assert SIZES["full"]["target_length"] == 32 and SIZES["reduced"]["dim"] == 384


def test_count_does_not_depend_on_window_or_norm():
    with torch.device("meta"):
        a = EnformerNN.from_size("tiny", PAPER_D_FUNC, PAPER_D_PRED, 64)
        b = EnformerNN.from_size("tiny", PAPER_D_FUNC, PAPER_D_PRED, 256, norm="layer")
    assert count_parameters(a) == count_parameters(b) == SIZES["tiny"]["expected_params"]


def test_channels_grow_to_dim():
    assert exponential_channels(768, 1536, 2, 128) == [768, 1536]
    assert exponential_channels(192, 384, 2, 128) == [256, 384]
    assert exponential_channels(24, 48, 1, 8) == [48]


def _inputs(batch, d_func, d_pred, w, seed=0):
    g = torch.Generator().manual_seed(seed)
    return torch.randn(batch, d_func, w, generator=g), torch.randn(batch, d_pred, generator=g)


@pytest.mark.parametrize("checkpointing", [False, True])
def test_every_parameter_gets_a_nonzero_gradient_reduced(checkpointing):
    torch.manual_seed(0)
    net = EnformerNN.from_size("reduced", 12, 5, PAPER_W, checkpointing=checkpointing)
    net.train()
    tracks, pred = _inputs(3, 12, 5, PAPER_W)
    out = net(tracks, pred)
    assert out.shape == (3,) and out.dtype == torch.float32
    (out ** 2 + out).sum().backward()
    missing = [n for n, p in net.named_parameters() if p.grad is None]
    zero = [n for n, p in net.named_parameters() if p.grad is not None and not torch.any(p.grad != 0)]
    assert not missing, f"no gradient: {missing}"
    assert not zero, f"zero gradient: {zero}"
    assert all(torch.isfinite(p.grad).all() for p in net.parameters())


def test_checkpointing_gives_the_same_gradients():
    grads = []
    for ckpt in (False, True):
        torch.manual_seed(1)
        net = EnformerNN.from_size("tiny", 7, 3, 64, checkpointing=ckpt, norm="layer")
        tracks, pred = _inputs(5, 7, 3, 64, seed=2)
        torch.manual_seed(3)  # dropout masks
        net(tracks, pred).sum().backward()
        grads.append(torch.cat([p.grad.flatten() for p in net.parameters()]))
    torch.testing.assert_close(grads[0], grads[1], rtol=1e-5, atol=1e-7)


def test_initial_output_near_zero_and_shape():
    torch.manual_seed(0)
    net = EnformerNN.from_size("tiny", 10, 4, 128).eval()
    tracks, pred = _inputs(32, 10, 4, 128)
    with torch.no_grad():
        out = net(tracks, pred)
    assert out.shape == (32,)
    assert out.abs().max() < 0.05
    assert out.std() > 0  # but it does depend on the input


def test_eval_mode_is_deterministic_and_batch_independent():
    torch.manual_seed(0)
    net = EnformerNN.from_size("tiny", 10, 4, 64).eval()
    tracks, pred = _inputs(8, 10, 4, 64)
    with torch.no_grad():
        full = net(tracks, pred)
        part = net(tracks[:3], pred[:3])
    torch.testing.assert_close(full[:3], part, rtol=1e-5, atol=1e-6)


def test_autocast_bf16_on_cpu():
    torch.manual_seed(0)
    net = EnformerNN.from_size("tiny", 10, 4, 64, head_init_std=1.0)
    tracks, pred = _inputs(6, 10, 4, 64)
    with torch.autocast("cpu", dtype=torch.bfloat16):
        out = net(tracks, pred)
    assert out.dtype == torch.float32 and out.shape == (6,)
    assert torch.isfinite(out).all()
    out.double().sum().backward()
    assert all(p.grad is not None for p in net.parameters())
    net.eval()  # compare without dropout
    with torch.no_grad(), torch.autocast("cpu", dtype=torch.bfloat16):
        low = net(tracks, pred)
    with torch.no_grad():
        ref = net(tracks, pred)
    assert low.dtype == torch.float32
    assert torch.allclose(low, ref, rtol=0.05, atol=0.05 * ref.abs().max().item())


def test_float64_inputs_are_accepted():
    net = EnformerNN.from_size("tiny", 3, 2, 32)
    out = net(torch.randn(2, 3, 32, dtype=torch.float64), torch.randn(2, 2, dtype=torch.float64))
    assert out.dtype == torch.float32


def test_bad_shapes_raise_clear_errors():
    net = EnformerNN.from_size("tiny", 3, 2, 32)
    with pytest.raises(ValueError, match="d_func=3"):
        net(torch.randn(2, 4, 32), torch.randn(2, 2))
    with pytest.raises(ValueError, match="d_pred=2"):
        net(torch.randn(2, 3, 32), torch.randn(2, 5))
    with pytest.raises(ValueError, match="target_length"):
        EnformerNN.from_size("full", 3, 2, 128)


def test_relative_position_basis():
    basis = relative_position_basis(8, 12)
    assert basis.shape == (15, 12)
    # first half depends on |d| only, second half is antisymmetric, zero at d = 0
    torch.testing.assert_close(basis[:, :6], basis.flip(0)[:, :6])
    torch.testing.assert_close(basis[:, 6:], -basis.flip(0)[:, 6:])
    assert torch.all(basis[7, 6:] == 0)
    # exponential family at d = 0 is exactly 1; central mask width 1 covers only d = 0
    assert torch.all(basis[7, :2] == 1)
    assert basis[7, 2] == 1 and basis[8, 2] == 0
    assert torch.isfinite(relative_position_basis(32, 768)).all()


def test_relative_attention_matches_a_loop_over_distances():
    # logits[i, j] = (q_i + u) . k_j + (q_i + v) . relk(j - i), written out with explicit loops
    torch.manual_seed(0)
    from deepwas.networks.enformer import RelativeAttention
    att = RelativeAttention(dim=12, heads=2, dim_key=4, dim_value=6, num_rel_features=6, out_init_std=1.0).eval()
    n = 7
    x = torch.randn(2, n, 12)
    q = att.to_q(x).view(2, n, 2, 4).transpose(1, 2) * 0.5
    k = att.to_k(x).view(2, n, 2, 4).transpose(1, 2)
    v = att.to_v(x).view(2, n, 2, 6).transpose(1, 2)
    relk = att.to_rel_k(relative_position_basis(n, 6)).view(2 * n - 1, 2, 4)
    logits = torch.empty(2, 2, n, n)
    for b in range(2):
        for h in range(2):
            for i in range(n):
                for j in range(n):
                    logits[b, h, i, j] = ((q[b, h, i] + att.content_bias[h, 0]) @ k[b, h, j]
                                          + (q[b, h, i] + att.position_bias[h, 0]) @ relk[j - i + n - 1, h])
    out = torch.softmax(logits, -1) @ v
    ref = att.to_out(out.transpose(1, 2).reshape(2, n, 12))
    torch.testing.assert_close(att(x), ref, rtol=1e-5, atol=1e-6)


def _attention_pair(dim=12, heads=2, dim_key=4, dim_value=6, num_rel=6):
    from deepwas.networks.enformer import RelativeAttention
    torch.manual_seed(0)
    fused = RelativeAttention(dim, heads, dim_key, dim_value, num_rel, out_init_std=1.0, fused=True).double()
    plain = RelativeAttention(dim, heads, dim_key, dim_value, num_rel, out_init_std=1.0, fused=False).double()
    plain.load_state_dict(fused.state_dict())
    return fused, plain


@pytest.mark.parametrize("n", [1, 7, 32])
def test_fused_attention_equals_explicit_softmax_float64(n):
    # scaled_dot_product_attention with the relative-position logits as a float mask: same values and
    # gradients (inputs and every parameter, incl. the positional ones) as softmax((q+u)k^T + rel) v
    fused, plain = _attention_pair()
    x = torch.randn(3, n, 12, dtype=torch.float64, generator=torch.Generator().manual_seed(1))
    outs, grads = [], []
    for att in (fused, plain):
        xi = x.clone().requires_grad_(True)
        out = att(xi)
        (out.sin().sum()).backward()
        outs.append(out.detach())
        grads.append(torch.cat([xi.grad.flatten()] + [p.grad.flatten() for p in att.parameters()]))
    torch.testing.assert_close(outs[0], outs[1], rtol=1e-12, atol=1e-13)
    torch.testing.assert_close(grads[0], grads[1], rtol=1e-11, atol=1e-12)
    assert grads[0].abs().max() > 0


def test_fused_network_equals_explicit_network_float64():
    torch.manual_seed(2)
    a = EnformerNN.from_size("tiny", 5, 3, 64, norm="layer", dropout=0.0, head_init_std=1.0).double()
    b = EnformerNN.from_size("tiny", 5, 3, 64, norm="layer", dropout=0.0, head_init_std=1.0).double()
    b.load_state_dict(a.state_dict())
    for blk in b.transformer:
        blk.attn[1].fused = False
    tracks, pred = (t.double() for t in _inputs(4, 5, 3, 64, seed=4))
    ga = []
    for net in (a, b):
        out = net(tracks, pred)
        assert out.dtype == torch.float64
        out.sum().backward()
        ga.append((out.detach(), torch.cat([p.grad.flatten() for p in net.parameters()])))
    torch.testing.assert_close(ga[0][0], ga[1][0], rtol=1e-12, atol=1e-13)
    torch.testing.assert_close(ga[0][1], ga[1][1], rtol=1e-10, atol=1e-12)


def test_attention_reads_a_fixed_relative_position_buffer():
    # built for a window length, each attention carries the basis of its positions (not saved with the weights);
    # the forward reads it, so eager and compiled graphs on any device see the same numbers (tests/test_gpu.py)
    net = EnformerNN.from_size("tiny", d_func=4, d_pred=3, w=64, norm="layer", dropout=0.0, attn_dropout=0.0,
                               pos_dropout=0.0)
    atts = [m for m in net.modules() if type(m).__name__ == "RelativeAttention"]
    n = 64 // 2 ** SIZES["tiny"]["num_downsamples"]
    assert atts and all(a.rel_basis.shape == (2 * n - 1, a.num_rel_features) for a in atts)
    assert torch.equal(atts[0].rel_basis, relative_position_basis(n, atts[0].num_rel_features))
    assert not any("rel_basis" in k for k in net.state_dict())
    x = torch.randn(3, n, atts[0].to_q.in_features)
    ref = atts[0](x)
    basis, atts[0].rel_basis = atts[0].rel_basis, None         # computed in the forward instead: the same numbers
    torch.testing.assert_close(atts[0](x), ref, rtol=0, atol=0)
    atts[0].rel_basis = basis
    assert net.double().transformer[0].attn[1].rel_basis.dtype == torch.float64
