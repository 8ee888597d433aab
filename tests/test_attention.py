"""Every attention kind against the float64 oracle (attnscore.oracle), values and
gradients; the registry and the options of a kind."""

import re

import pytest
import torch
import torch.nn.functional as F

from attnscore import attention as attention_module
from attnscore.attention import KINDS, attention, register
from attnscore.oracle import LOGITS, oracle, rel_err
from attnscore.scores.euclid import EuclideanAttention

SHAPES = [(2, 3, 17, 8), (1, 2, 64, 16), (3, 1, 5, 4)]
WITH_REFERENCE = sorted(LOGITS)  # the kinds whose values these tests can check


def needs_no_options(kind):
    try:
        attention_module.check_options(kind, {})
    except ValueError:
        return False
    return True


def random_qkv(shape, seed=0, dtype=torch.float32):
    g = torch.Generator().manual_seed(seed)
    return [torch.randn(shape, generator=g, dtype=dtype).requires_grad_() for _ in range(3)]


def runs_here(kind):
    """False for a kind that needs a device this machine lacks (dot_triton: CUDA; its kernel's
    own tests run it through Triton's interpreter)."""
    try:
        attention(*random_qkv((1, 1, 4, 16)), kind)
    except attention_module.Unsupported:
        return False
    return True


# Properties every kind must have (causality, independent batch elements), whatever kinds exist.
REGISTERED = [kind for kind in sorted(KINDS) if needs_no_options(kind) and runs_here(kind)]


@pytest.mark.parametrize("kind", WITH_REFERENCE)
@pytest.mark.parametrize("shape", SHAPES)
@pytest.mark.parametrize("causal", [True, False])
def test_values_and_gradients_match_float64_oracle(kind, shape, causal):
    q, k, v = random_qkv(shape)
    out = attention(q, k, v, kind, causal=causal)
    q64, k64, v64 = (t.detach().double().requires_grad_() for t in (q, k, v))
    ref = oracle(q64, k64, v64, kind, causal=causal)
    assert out.shape == v.shape
    assert rel_err(out, ref) <= 1e-5
    grad_out = torch.randn_like(ref)
    grads = torch.autograd.grad(out, (q, k, v), grad_out.float())
    grads_ref = torch.autograd.grad(ref, (q64, k64, v64), grad_out)
    for g, g_ref in zip(grads, grads_ref, strict=True):
        assert rel_err(g, g_ref) <= 1e-5


def dropout_mask(shape, p, seed):
    """The factors F.dropout multiplies float32 weights of this shape by under this seed (0 or
    1 / (1 - p)): the mask every kind here draws, its own dropout on its (t_q x t_k) weights in
    float32, or SDPA's on the CPU (its math path calls dropout on the weights the same way)."""
    torch.manual_seed(seed)
    return F.dropout(torch.ones(shape), p)


@pytest.mark.parametrize("kind", WITH_REFERENCE)
@pytest.mark.parametrize("causal", [True, False])
def test_dropout_through_the_kinds_own_mask_matches_float64_oracle(kind, causal):
    q, k, v = random_qkv((2, 3, 17, 8), seed=14)
    torch.manual_seed(15)
    out = attention(q, k, v, kind, causal=causal, dropout_p=0.3)
    q64, k64, v64 = (t.detach().double().requires_grad_() for t in (q, k, v))
    ref = oracle(q64, k64, v64, kind, causal=causal, dropout_mask=dropout_mask((2, 3, 17, 17), 0.3, seed=15))
    assert rel_err(out, ref) <= 1e-5
    grad_out = torch.randn_like(ref)
    grads = torch.autograd.grad(out, (q, k, v), grad_out.float())
    for g, g_ref in zip(grads, torch.autograd.grad(ref, (q64, k64, v64), grad_out), strict=True):
        assert rel_err(g, g_ref) <= 1e-5


@pytest.mark.parametrize("p", [1.0, 3.0])
def test_euclid_norm_order_is_a_parameter(p):
    q, k, v = random_qkv((2, 2, 9, 8), seed=1)
    out = attention(q, k, v, "euclid", p=p)
    assert rel_err(out, oracle(q, k, v, "euclid", p=p)) <= 1e-5


def test_options_reach_only_their_kind():
    q, k, v = random_qkv((1, 2, 6, 4), seed=12)
    with pytest.raises(TypeError, match="unexpected keyword argument 'p'"):
        attention(q, k, v, "dot", p=3.0)
    with pytest.raises(
        ValueError, match="attention kind 'euclid' takes no option\\(s\\) \\['q'\\]; its options: \\['p'\\]"
    ):
        attention_module.check_options("euclid", {"q": 3})
    attention_module.check_options("euclid", {"p": 3})
    with pytest.raises(ValueError, match="attention kind 'euclid' takes a number for option p, not '2'"):
        attention_module.check_options("euclid", {"p": "2"})


@pytest.mark.parametrize("kind", REGISTERED)
def test_causal_mask_hides_the_future(kind):
    q, k, v = (t.detach() for t in random_qkv((2, 2, 12, 8), seed=2))
    out = attention(q, k, v, kind)
    q2, k2, v2 = q.clone(), k.clone(), v.clone()
    for t in (q2, k2, v2):
        t[:, :, 7:] = torch.randn_like(t[:, :, 7:])  # change every position from 7 on
    out2 = attention(q2, k2, v2, kind)
    torch.testing.assert_close(out[:, :, :7], out2[:, :, :7], rtol=0, atol=0)
    assert not torch.allclose(out[:, :, 7:], out2[:, :, 7:])


@pytest.mark.parametrize("kind", REGISTERED)
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
    with pytest.raises(
        ValueError, match=f"unknown attention kind 'no_such_kind'; known kinds: {re.escape(str(sorted(KINDS)))}"
    ):
        attention(q, k, v, "no_such_kind")


def test_oracle_refuses_a_kind_it_does_not_define():
    q, k, v = random_qkv((1, 1, 2, 2))
    with pytest.raises(ValueError, match="no float64 oracle for attention kind 'no_such_kind'"):
        oracle(q, k, v, "no_such_kind")


@pytest.fixture
def registry(monkeypatch):
    """A copy of the registry for this test, so kinds registered here do not outlive it."""
    monkeypatch.setattr(attention_module, "KINDS", dict(KINDS))
    return attention_module.KINDS


def test_a_registered_kind_is_called_with_its_options(registry):
    @register("dot_temperature", options={"temperature": {"type": "number", "exclusiveMinimum": 0}})
    def dot_temperature(q, k, v, causal, dropout_p, temperature):
        return attention(q / temperature, k, v, "dot", causal=causal, dropout_p=dropout_p)

    q, k, v = random_qkv((2, 2, 9, 8), seed=13)
    out = attention(q, k, v, "dot_temperature", temperature=2.0)
    assert rel_err(out, oracle(q / 2.0, k, v, "dot")) <= 1e-5
    assert "dot_temperature" in registry and "dot_temperature" not in KINDS
    with pytest.raises(ValueError, match="'dot_temperature' needs option\\(s\\) \\['temperature'\\]"):
        attention_module.check_options("dot_temperature", {})


def test_a_name_is_registered_once(registry):
    with pytest.raises(ValueError, match="'euclid' is already registered by attnscore.scores.euclid.euclid"):
        register("euclid")(lambda q, k, v, causal, dropout_p: v)
    with pytest.raises(ValueError, match="use lower-case letters"):
        register("Euclid-2")


def _with_p(q, k, v, causal, dropout_p, p=2.0):
    return v


@pytest.mark.parametrize(
    "options, fn, problem",
    [
        (
            {"p": {"type": "number"}},
            lambda q, k, v, causal, dropout_p: v,
            r"its function takes no argument\(s\) \['p'\]",
        ),
        ({}, _with_p, r"its function's argument\(s\) \['p'\] are not declared; add them to register's options="),
        ({"p": {"default": 3.0}}, _with_p, "option p: its function's default is 2.0, its declaration's 3.0"),
        ({"p": {"type": "number"}}, _with_p, "option p: its function's default is 2.0, its declaration's none"),
        ({"p": {"type": "number", "minimum": 3, "default": 2.0}}, _with_p, "option p: its default 2.0 is outside"),
        ({"p": {"type": "real"}}, _with_p, "option p: not a JSON schema"),
        ({"p": 2.0}, _with_p, "options= maps option names to JSON schemas"),
    ],
)
def test_a_declaration_the_function_disagrees_with_is_refused(registry, options, fn, problem):
    """The declaration is the one statement of what a kind takes; its function must match it."""
    with pytest.raises(ValueError, match=f"attention kind 'mine'.*{problem}"):
        register("mine", options=options)(fn)
    assert "mine" not in registry
    register("mine", options={"p": {"type": "number", "default": 2.0}})(_with_p)
    attention_module.check_options("mine", {})
    with pytest.raises(ValueError, match="attention kind 'mine' takes a finite number for option p, not nan"):
        attention_module.check_options("mine", {"p": float("nan")})


@pytest.mark.parametrize("shape", SHAPES)
def test_euclid_function_under_bf16_autocast_is_within_1e_2(shape):
    q, k, v = random_qkv(shape, seed=5)
    with torch.autocast("cpu", dtype=torch.bfloat16):
        q16, k16, v16 = (t.to(torch.bfloat16) for t in (q, k, v))  # what autocast's Linear layers hand over
        out = attention(q16, k16, v16, "euclid")
    q64, k64, v64 = (t.detach().to(torch.bfloat16).double().requires_grad_() for t in (q, k, v))
    ref = oracle(q64, k64, v64, "euclid")
    assert out.dtype == torch.bfloat16 and rel_err(out, ref) <= 1e-2
    grad_out = torch.randn_like(ref)
    grads = torch.autograd.grad(out, (q, k, v), grad_out.to(torch.bfloat16))
    for g, g_ref in zip(grads, torch.autograd.grad(ref, (q64, k64, v64), grad_out), strict=True):
        assert rel_err(g, g_ref) <= 1e-2


def test_euclid_function_dropout_matches_the_naive_path_mask_for_mask():
    """Both draw the dropout mask the same way, so under one seed they agree exactly."""
    q, k, v = random_qkv((2, 2, 16, 8), seed=6)
    torch.manual_seed(7)
    function = attention(q, k, v, "euclid", dropout_p=0.3)
    torch.manual_seed(7)
    naive = attention(q, k, v, "euclid_naive", dropout_p=0.3)
    assert rel_err(function, naive) <= 1e-5
    grads = torch.autograd.grad(function.square().sum(), (q, k, v))
    torch.manual_seed(7)
    naive = attention(q, k, v, "euclid_naive", dropout_p=0.3)
    for g, g_naive in zip(grads, torch.autograd.grad(naive.square().sum(), (q, k, v)), strict=True):
        assert rel_err(g, g_naive) <= 1e-5


def test_euclid_function_with_dropout_passes_gradcheck_in_float64():
    q, k, v = (t.detach().double().requires_grad_() for t in random_qkv((1, 2, 6, 4), seed=8))

    def seeded(q, k, v):  # the same dropout mask at every evaluation
        torch.manual_seed(9)
        return EuclideanAttention.apply(q, k, v, True, 0.2)

    assert torch.autograd.gradcheck(seeded, (q, k, v))


def test_expansion_at_zero_distance_is_finite_and_close():
    """q == k: ||q||^2 + ||k||^2 - 2 q.k cancels to float32 rounding (~1e-6 ||q||^2), whose square
    root is ~1e-3 ||q||, so near-zero distances are accurate to about 1e-4, not 1e-5."""
    q, _, v = (t.detach() for t in random_qkv((1, 2, 128, 16), seed=11))
    out = attention(q, q.clone(), v, "euclid")
    assert torch.isfinite(out).all() and rel_err(out, oracle(q, q, v, "euclid")) <= 1e-3


def test_the_same_seed_gives_every_kind_the_same_initial_weights():
    """Runs are paired by seed: every kind gets the same weights, so only the attention differs;
    a kind's own learnable parameters (cosine's scale) come on top, at their initial values."""
    from attnscore.model import DecoderLM, ModelConfig

    def weights(kind):
        torch.manual_seed(7)
        return DecoderLM(
            ModelConfig(vocab_size=50, d_model=16, n_layers=2, n_heads=2, d_ff=32, attention=kind)
        ).state_dict()

    dot = weights("dot")
    for kind in REGISTERED:
        state = weights(kind)
        assert all(torch.equal(dot[name], state[name]) for name in dot)
        own = {
            f"blocks.{i}.attn.head_parameters.{name}": value
            for i in range(2)
            for name, value in attention_module.head_parameters(kind).items()
        }
        assert state.keys() - dot.keys() == own.keys()
        assert all(torch.equal(state[name], torch.full((2,), value)) for name, value in own.items())
