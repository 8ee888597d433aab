"""The checks a kind passes before a run trains with it: the function alone (check_kind), and the
kind inside the model at the lengths it trains at, in eval and train mode (check_in_model), against
kinds with a known fault: each must be refused naming the property, the length and the mode."""

import pytest
import torch
import torch.nn.functional as F
from test_attention import REGISTERED

from attnscore import attention, kind_checks
from attnscore.attention import KINDS, register
from attnscore.model import DecoderLM, ModelConfig

SEQ_LEN = 32


def _sees_the_future(q, k, v, causal, dropout_p):
    return F.scaled_dot_product_attention(q, k, v, dropout_p=dropout_p)  # is_causal forgotten


def _transposed(q, k, v, causal, dropout_p):
    return F.scaled_dot_product_attention(q, k, v, is_causal=causal).transpose(1, 2)


def _random(q, k, v, causal, dropout_p):
    return F.scaled_dot_product_attention(q, k, v, is_causal=causal) + torch.rand(1)


def _no_dropout(q, k, v, causal, dropout_p):
    return F.scaled_dot_product_attention(q, k, v, is_causal=causal)


@pytest.mark.parametrize(
    "fn, dropout_p, problem",
    [
        (_transposed, 0.0, r"its output has shape \(2, 19, 3, 16\) for inputs of shape \(2, 3, 19, 16\), not v's"),
        (_random, 0.0, r"two calls with dropout_p=0 on the same input differ"),
        (_no_dropout, 0.1, r"with dropout_p=0.1 \(the model's attention dropout\) its output equals dropout_p=0's"),
    ],
)
def test_a_function_lacking_a_property_fails_its_check_naming_it(fn, dropout_p, problem):
    with pytest.raises(
        kind_checks.KindCheckFailed, match="attention kind 'mine' fails a check before training: " + problem
    ):
        kind_checks.check_kind("mine", fn, dropout_p=dropout_p)
    if fn is _no_dropout:  # where the model has no attention dropout, ignoring it is no fault
        kind_checks.check_kind("mine", fn, dropout_p=0.0)


# Faults the function alone, on one small contiguous input, cannot show.
def _causal_up_to_24(q, k, v, causal, dropout_p):
    return F.scaled_dot_product_attention(q, k, v, is_causal=causal and q.shape[2] <= 24, dropout_p=dropout_p)


def _reads_memory_as_contiguous(q, k, v, causal, dropout_p):
    """A custom kernel's classic bug: the model's q, k, v are views of one (batch, time, 3, heads,
    head_dim) buffer, read here as if each were a contiguous (batch, heads, time, head_dim) array."""
    as_laid_out = [torch.as_strided(x, x.shape, torch.empty(x.shape).stride(), x.storage_offset()) for x in (q, k, v)]
    return F.scaled_dot_product_attention(*as_laid_out, is_causal=causal, dropout_p=dropout_p)


def _not_finite_past_24(q, k, v, causal, dropout_p):
    out = F.scaled_dot_product_attention(q, k, v, is_causal=causal, dropout_p=dropout_p)
    return torch.cat([out[:, :, :24], out[:, :, 24:] / 0], dim=2)


def _leaks_only_with_dropout(q, k, v, causal, dropout_p):
    return F.scaled_dot_product_attention(q, k, v, is_causal=causal and dropout_p == 0, dropout_p=dropout_p)


class _LeakyBackward(torch.autograd.Function):
    """Causal forward, but the backward of attention without the mask: later positions get gradient."""

    @staticmethod
    def forward(ctx, q, k, v):
        ctx.save_for_backward(q, k, v)
        return F.scaled_dot_product_attention(q, k, v, is_causal=True)

    @staticmethod
    def backward(ctx, grad):
        with torch.enable_grad():
            q, k, v = (x.detach().requires_grad_() for x in ctx.saved_tensors)
            return torch.autograd.grad(F.scaled_dot_product_attention(q, k, v), (q, k, v), grad)


def _leaky_backward(q, k, v, causal, dropout_p):
    return _LeakyBackward.apply(q, k, v)


LEAKY = {
    "causal_up_to_24": (_causal_up_to_24, r"changing token \d+ changes the logits before it at length 32 in eval mode"),
    "contiguous_reader": (
        _reads_memory_as_contiguous,
        r"changing token \d+ changes the logits before it at length \d+",
    ),
    "nan_past_24": (_not_finite_past_24, r"its logits are not finite \(NaN or inf\) at length 32 in eval mode"),
    "leaks_in_training": (_leaks_only_with_dropout, r"changes the logits before it at length \d+ in train mode"),
    "leaky_backward": (
        _leaky_backward,
        r"the gradient of the logits at position 1 reaches later positions at length 3",
    ),
    "sees_the_future": (_sees_the_future, r"changing token 1 changes the logits before it at length 3 in eval mode"),
}


@pytest.fixture
def kinds(monkeypatch):
    monkeypatch.setattr(attention, "KINDS", dict(KINDS))
    for name, (fn, _) in LEAKY.items():
        register(name)(fn)


def model_of(kind: str, **settings) -> DecoderLM:
    torch.manual_seed(0)
    cfg = dict(vocab_size=64, d_model=32, n_layers=2, n_heads=2, d_ff=64, max_seq_len=SEQ_LEN, dropout=0.1) | settings
    return DecoderLM(ModelConfig(attention=kind, **cfg))


@pytest.mark.parametrize("kind", sorted(LEAKY))
def test_a_kind_that_reads_later_tokens_is_refused_naming_where(kinds, kind):
    assert kind in attention.KINDS
    with pytest.raises(kind_checks.KindCheckFailed, match=f"attention kind '{kind}' fails a check before training: "):
        kind_checks.check_in_model(model_of(kind), SEQ_LEN, torch.device("cpu"))
    with pytest.raises(kind_checks.KindCheckFailed, match=LEAKY[kind][1]):
        kind_checks.check_in_model(model_of(kind), SEQ_LEN, torch.device("cpu"))


def test_the_causal_only_at_short_lengths_kind_passes_where_it_is_causal(kinds):
    kind_checks.check_in_model(model_of("causal_up_to_24", max_seq_len=24), 24, torch.device("cpu"))


@pytest.mark.parametrize("kind", REGISTERED)
def test_every_kind_passes_both_checks_and_leaves_the_model_and_random_stream_alone(kind):
    model = model_of(kind).train()
    weights = {name: value.clone() for name, value in model.state_dict().items()}
    torch.manual_seed(3)
    before = torch.get_rng_state()
    attn = model.blocks[0].attn
    kind_checks.check_kind(kind, attn.attend, dropout_p=0.1, heads=2, head_dim=16)
    kind_checks.check_in_model(model, SEQ_LEN, torch.device("cpu"))
    assert torch.equal(torch.get_rng_state(), before) and model.training
    assert all(torch.equal(weights[name], value) for name, value in model.state_dict().items())
    assert all(p.grad is None for p in model.parameters())


def test_lengths_and_positions_cover_the_training_length_and_its_last_tokens():
    assert kind_checks.lengths(32) == [3, 16, 32] and kind_checks.lengths(2) == [2]
    assert kind_checks.positions(32) == [1, 16, 30, 31] and kind_checks.positions(2) == [1]
