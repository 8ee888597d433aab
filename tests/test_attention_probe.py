"""Reading attention weights from any kind (attnscore.attention_probe) against weights computed
explicitly in float64, kinds the probe cannot read refused, and the statistics of the weights
(attnscore.attention_stats) against their formulas and against kinds with known weights."""

import math

import numpy as np
import pytest
import torch
import torch.nn.functional as F
from test_attention import WITH_REFERENCE, random_qkv, runs_here

from attnscore import attention
from attnscore.attention import KINDS, register
from attnscore.attention_probe import ProbeError, check, layer_weights, read_weights
from attnscore.attention_stats import COLUMNS, head_statistics, run_statistics, window_starts
from attnscore.model import DecoderLM, ModelConfig
from attnscore.oracle import oracle, rel_err

SHAPE = (2, 3, 21, 8)  # 21 keys: two full slices of head_dim 8 and a partial one


def attend_of(kind):
    """A kind as the model calls it (attend(q, k, v, causal, dropout_p)), learnable parameters at their initial values."""
    return lambda q, k, v, causal, dropout_p: attention.attention(q, k, v, kind, causal=causal, dropout_p=dropout_p)


@pytest.mark.parametrize("kind", [kind for kind in WITH_REFERENCE if runs_here(kind)])
def test_the_weights_of_every_built_in_kind_are_its_float64_weights(kind):
    q, k, v = (t.detach() for t in random_qkv(SHAPE, seed=5))
    weights = read_weights(attend_of(kind), q, k, v)
    explicit = oracle(q, k, torch.eye(SHAPE[2]).expand(*SHAPE[:2], -1, -1), kind)  # weights @ I: the weights
    assert weights.shape == (*SHAPE[:3], SHAPE[2]) and rel_err(weights, explicit) <= 1e-5
    assert check(attend_of(kind), q, k, v, weights, kind=kind, layer=0) == (kind != "sigmoid")


def uniform_over_the_past(q, k, v, causal=True, dropout_p=0.0):
    """Weight 1 / (i + 1) on every position up to i: a running mean of v."""
    counts = torch.arange(1, v.shape[-2] + 1, dtype=v.dtype).view(-1, 1)
    return v.cumsum(-2) / counts


def previous_only(q, k, v, causal=True, dropout_p=0.0):
    """All weight on position i - 1 (position 0 on itself)."""
    return torch.cat([v[..., :1, :], v[..., :-1, :]], dim=-2)


def explicit_statistics(w: np.ndarray) -> dict:
    """The statistics of one head's weights (queries x keys) by their definitions, a loop per query."""
    t = len(w)
    rows = [
        {
            "entropy": -sum(x * math.log(x) for x in w[i] if x > 0),
            "distance": sum(w[i, j] * (i - j) for j in range(t)),
            "first_share": w[i, 0],
            "prev_share": w[i, i - 1] if i > 0 else 0.0,
        }
        for i in range(t)
    ]
    return {name: sum(row[name] for row in rows) / t for name in rows[0]}


def test_the_statistics_are_their_formulas_averaged_over_queries():
    g = torch.Generator().manual_seed(3)
    logits = torch.randn(2, 3, 9, 9, generator=g, dtype=torch.float64)
    weights = logits.masked_fill(torch.ones(9, 9, dtype=torch.bool).triu(1), -math.inf).softmax(-1)
    weights[0, 0, 4] = torch.tensor([0.5, 0, 0, 0, 0.5, 0, 0, 0, 0])  # exact zeros: 0 log 0 = 0
    result = head_statistics(weights)
    for b in range(2):
        for h in range(3):
            expected = explicit_statistics(weights[b, h].numpy())
            for name, value in expected.items():
                assert result[name][b, h].item() == pytest.approx(value, abs=1e-12), (b, h, name)


@pytest.mark.parametrize("t", [1, 7, 16])
def test_kinds_of_known_weights_give_their_statistics(t):
    q, k, v = (torch.randn(1, 2, t, 4) for _ in range(3))
    uniform = head_statistics(read_weights(uniform_over_the_past, q, k, v))
    positions = range(t)
    assert uniform["entropy"] == pytest.approx(torch.full((1, 2), sum(math.log(i + 1) for i in positions) / t))
    assert uniform["distance"] == pytest.approx(torch.full((1, 2), sum(i / 2 for i in positions) / t))
    assert uniform["first_share"] == pytest.approx(torch.full((1, 2), sum(1 / (i + 1) for i in positions) / t))
    assert uniform["prev_share"] == pytest.approx(torch.full((1, 2), sum(1 / (i + 1) for i in positions[1:]) / t))
    previous = head_statistics(read_weights(previous_only, q, k, v))
    assert previous["entropy"] == pytest.approx(torch.zeros(1, 2), abs=1e-6)
    assert previous["distance"] == pytest.approx(torch.full((1, 2), (t - 1) / t))
    assert previous["prev_share"] == pytest.approx(torch.full((1, 2), (t - 1) / t))
    assert previous["first_share"] == pytest.approx(torch.full((1, 2), min(t, 2) / t))


def _nonlinear_in_v(q, k, v, causal, dropout_p):
    return F.scaled_dot_product_attention(q, k, v.tanh(), is_causal=causal)


def _adds_to_its_output(q, k, v, causal, dropout_p):
    return F.scaled_dot_product_attention(q, k, v, is_causal=causal) + 0.1


def _sees_the_future(q, k, v, causal, dropout_p):
    return F.scaled_dot_product_attention(q, k, v)


@pytest.mark.parametrize(
    "fn, problem",
    [
        (_nonlinear_in_v, "its output with the model's values differs from weights x values"),
        (_adds_to_its_output, "its output with the model's values differs from weights x values"),
        (_sees_the_future, "it weighs later positions"),
    ],
)
def test_a_kind_whose_weights_cannot_be_read_is_refused_naming_why(fn, problem):
    q, k, v = (t.detach() for t in random_qkv(SHAPE, seed=6))
    with pytest.raises(ProbeError, match=f"attention kind 'mine', layer 2: its weights cannot be read .*: {problem}"):
        check(fn, q, k, v, read_weights(fn, q, k, v), kind="mine", layer=2)


@pytest.fixture
def plugin_kinds(monkeypatch):
    """uniform_past and previous_only registered as kinds, as a plugin module would."""
    monkeypatch.setattr(attention, "KINDS", dict(KINDS))
    register("uniform_past")(uniform_over_the_past)
    register("previous_only")(previous_only)


def model_of(kind: str) -> DecoderLM:
    torch.manual_seed(0)
    cfg = ModelConfig(vocab_size=64, d_model=32, n_layers=3, n_heads=2, d_ff=64, max_seq_len=16, attention=kind)
    return DecoderLM(cfg)


def test_a_plugin_kind_inside_a_model_gives_its_known_statistics_in_every_layer_and_head(plugin_kinds):
    tokens = np.arange(200) % 64
    table, maps, probe = run_statistics(model_of("uniform_past"), tokens, seq_len=16, windows=11, kind="uniform_past")
    assert list(table.columns) == COLUMNS and len(table) == 3 * 2 and probe["normalised"]
    assert probe["starts"] == window_starts(200, 16, 11) and probe["windows"] == 11
    assert table["entropy"].to_numpy() == pytest.approx(np.full(6, np.mean(np.log(np.arange(1, 17)))))
    assert table["distance"].to_numpy() == pytest.approx(np.full(6, 15 / 4))
    assert maps.shape == (2, 16, 16) and maps[0, 3] == pytest.approx([0.25] * 4 + [0] * 12)
    table, maps, _ = run_statistics(model_of("previous_only"), tokens, seq_len=16, windows=3, kind="previous_only")
    assert table["prev_share"].to_numpy() == pytest.approx(np.full(6, 15 / 16))


def test_the_probe_runs_in_eval_mode_and_leaves_the_model_as_it_was():
    model = model_of("dot").train()
    idx = torch.randint(0, 64, (2, 16))
    before = {name: value.clone() for name, value in model.state_dict().items()}
    first, _ = layer_weights(model, idx, "dot")
    second, _ = layer_weights(model, idx, "dot")  # dropout on would draw other weights
    assert all(torch.equal(a, b) for a, b in zip(first, second, strict=True))
    assert model.training and "attend" not in vars(model.blocks[0].attn)
    assert all(torch.equal(before[name], value) for name, value in model.state_dict().items())


def test_windows_are_spread_over_the_split_and_too_short_a_split_is_named():
    assert window_starts(100, 10, 4) == [0, 30, 60, 90]
    assert window_starts(10, 10, 3) == [0]
    with pytest.raises(ValueError, match="fewer than one window of train.seq_len=10"):
        window_starts(9, 10, 2)
