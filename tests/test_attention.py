"""Every attention kind against a float64 reference written out here, values and gradients."""

import math

import pytest
import torch

from attnscore.attention import KINDS, EuclideanAttention, attention, euclid_flex

SHAPES = [(2, 3, 17, 8), (1, 2, 64, 16), (3, 1, 5, 4)]


def reference(q, k, v, kind, causal=True, p=2.0):
    """Float64, one explicit formula per kind, no shared code with the package."""
    q, k, v = q.double(), k.double(), v.double()
    if kind == "dot":
        logits = q @ k.transpose(-1, -2) / math.sqrt(q.shape[-1])
    else:
        diff = q.unsqueeze(-2) - k.unsqueeze(-3)  # (..., t_q, t_k, d)
        logits = -diff.abs().pow(p).sum(-1).pow(1 / p) / math.sqrt(q.shape[-1])
    if causal:
        t = q.shape[-2]
        logits = logits.masked_fill(torch.ones(t, t, dtype=torch.bool).triu(1), float("-inf"))
    return torch.softmax(logits, -1) @ v


def random_qkv(shape, seed=0, dtype=torch.float32):
    g = torch.Generator().manual_seed(seed)
    return [torch.randn(shape, generator=g, dtype=dtype).requires_grad_() for _ in range(3)]


def rel_err(a, b):
    return ((a.double() - b.double()).norm() / b.double().norm()).item()


@pytest.mark.parametrize("kind", sorted(KINDS))
@pytest.mark.parametrize("shape", SHAPES)
@pytest.mark.parametrize("causal", [True, False])
def test_values_and_gradients_match_float64_reference(kind, shape, causal):
    q, k, v = random_qkv(shape)
    out = attention(q, k, v, kind, causal=causal)
    q64, k64, v64 = (t.detach().double().requires_grad_() for t in (q, k, v))
    ref = reference(q64, k64, v64, kind, causal)
    assert out.shape == v.shape
    assert rel_err(out, ref) <= 1e-5
    grad_out = torch.randn_like(ref)
    grads = torch.autograd.grad(out, (q, k, v), grad_out.float())
    grads_ref = torch.autograd.grad(ref, (q64, k64, v64), grad_out)
    for g, g_ref in zip(grads, grads_ref, strict=True):
        assert rel_err(g, g_ref) <= 1e-5


@pytest.mark.parametrize("p", [1.0, 3.0])
def test_euclid_norm_order_is_a_parameter(p):
    q, k, v = random_qkv((2, 2, 9, 8), seed=1)
    out = attention(q, k, v, "euclid", p=p)
    assert rel_err(out, reference(q, k, v, "euclid", p=p)) <= 1e-5


@pytest.mark.parametrize("kind", sorted(KINDS))
def test_causal_mask_hides_the_future(kind):
    q, k, v = (t.detach() for t in random_qkv((2, 2, 12, 8), seed=2))
    out = attention(q, k, v, kind)
    q2, k2, v2 = q.clone(), k.clone(), v.clone()
    for t in (q2, k2, v2):
        t[:, :, 7:] = torch.randn_like(t[:, :, 7:])  # change every position from 7 on
    out2 = attention(q2, k2, v2, kind)
    torch.testing.assert_close(out[:, :, :7], out2[:, :, :7], rtol=0, atol=0)
    assert not torch.allclose(out[:, :, 7:], out2[:, :, 7:])


@pytest.mark.parametrize("kind", sorted(KINDS))
def test_batch_elements_are_independent(kind):
    q, k, v = (t.detach() for t in random_qkv((4, 2, 10, 8), seed=3))
    batched = attention(q, k, v, kind)
    for i in range(4):
        single = attention(q[i : i + 1], k[i : i + 1], v[i : i + 1], kind)
        torch.testing.assert_close(batched[i : i + 1], single, rtol=1e-6, atol=1e-6)


def test_zero_distance_gives_finite_gradients():
    q, _, v = random_qkv((1, 2, 8, 4), seed=4)
    k = q.detach().clone().requires_grad_()  # q == k: every diagonal distance is exactly zero
    out = attention(q, k, v, "euclid")
    grads = torch.autograd.grad(out.square().sum(), (q, k, v))
    assert all(torch.isfinite(g).all() for g in grads)


def test_unknown_kind_names_the_known_ones():
    q, k, v = random_qkv((1, 1, 2, 2))
    with pytest.raises(ValueError, match="known kinds: \\['dot', 'euclid'"):
        attention(q, k, v, "cosine")


@pytest.mark.parametrize("shape", SHAPES)
def test_fused_euclid_under_bf16_autocast_is_within_1e_2(shape):
    q, k, v = random_qkv(shape, seed=5)
    with torch.autocast("cpu", dtype=torch.bfloat16):
        q16, k16, v16 = (t.to(torch.bfloat16) for t in (q, k, v))  # what autocast's Linear layers hand over
        out = attention(q16, k16, v16, "euclid")
    q64, k64, v64 = (t.detach().to(torch.bfloat16).double().requires_grad_() for t in (q, k, v))
    ref = reference(q64, k64, v64, "euclid")
    assert out.dtype == torch.bfloat16 and rel_err(out, ref) <= 1e-2
    grad_out = torch.randn_like(ref)
    grads = torch.autograd.grad(out, (q, k, v), grad_out.to(torch.bfloat16))
    for g, g_ref in zip(grads, torch.autograd.grad(ref, (q64, k64, v64), grad_out), strict=True):
        assert rel_err(g, g_ref) <= 1e-2


def test_fused_euclid_dropout_matches_the_naive_path_mask_for_mask():
    """Both draw the dropout mask the same way, so under one seed they agree exactly."""
    q, k, v = random_qkv((2, 2, 16, 8), seed=6)
    torch.manual_seed(7)
    fused = attention(q, k, v, "euclid", dropout_p=0.3)
    torch.manual_seed(7)
    naive = attention(q, k, v, "euclid_naive", dropout_p=0.3)
    assert rel_err(fused, naive) <= 1e-5
    grads = torch.autograd.grad(fused.square().sum(), (q, k, v))
    torch.manual_seed(7)
    naive = attention(q, k, v, "euclid_naive", dropout_p=0.3)
    for g, g_naive in zip(grads, torch.autograd.grad(naive.square().sum(), (q, k, v)), strict=True):
        assert rel_err(g, g_naive) <= 1e-5


def test_fused_euclid_with_dropout_passes_gradcheck_in_float64():
    q, k, v = (t.detach().double().requires_grad_() for t in random_qkv((1, 2, 6, 4), seed=8))

    def seeded(q, k, v):  # the same dropout mask at every evaluation
        torch.manual_seed(9)
        return EuclideanAttention.apply(q, k, v, True, 0.2)

    assert torch.autograd.gradcheck(seeded, (q, k, v))


@pytest.mark.parametrize("causal", [True, False])
def test_flex_euclid_forward_matches_float64_reference(causal):
    """FlexAttention's compiled forward runs on CPU too (its backward is CUDA-only: see benchmarks/gpu_check.py)."""
    q, k, v = (t.detach() for t in random_qkv((2, 2, 128, 16), seed=10))
    out = euclid_flex(q, k, v, causal=causal)
    assert rel_err(out, reference(q, k, v, "euclid", causal)) <= 1e-5


@pytest.mark.parametrize("path", ["flex", "fused"])
def test_expansion_at_zero_distance_is_finite_and_close(path):
    """q == k: ||q||^2 + ||k||^2 - 2 q.k cancels to float32 rounding (~1e-6 ||q||^2), whose square
    root is ~1e-3 ||q||, so near-zero distances are accurate to about 1e-4, not 1e-5."""
    q, _, v = (t.detach() for t in random_qkv((1, 2, 128, 16), seed=11))
    out = euclid_flex(q, q.clone(), v) if path == "flex" else attention(q, q.clone(), v, "euclid")
    assert torch.isfinite(out).all() and rel_err(out, reference(q, q, v, "euclid")) <= 1e-3
