"""Kinds with learnable per-head parameters (attention.register's parameters=): how the registry,
the config check and the model treat them."""

import inspect
import sys
from pathlib import Path

import pytest
import torch

from attnscore import attention as attention_module
from attnscore.attention import KINDS, attention, head_parameters, register
from attnscore.kinds import declared_in, known_kinds
from attnscore.model import DecoderLM, ModelConfig
from attnscore.reference import reference, rel_err

SMALL = dict(vocab_size=50, d_model=16, n_layers=2, n_heads=2, d_ff=32, max_seq_len=16)

SCALED_DOT = """
import torch.nn.functional as F

from attnscore.attention import register


@register("dot_learned_scale", parameters={"log_scale": 0.5})
def dot_learned_scale(q, k, v, causal, dropout_p, temperature=1.0, *, log_scale):
    q = q * log_scale.exp().view(-1, 1, 1) / temperature
    return F.scaled_dot_product_attention(q, k, v, is_causal=causal, dropout_p=dropout_p)
"""


@pytest.fixture
def registry(monkeypatch):
    """A copy of the registry for this test, so kinds registered here do not outlive it."""
    monkeypatch.setattr(attention_module, "KINDS", dict(KINDS))
    return attention_module.KINDS


@pytest.fixture
def learned_scale(registry, tmp_path, monkeypatch):
    """A plugin kind with one learnable per-head parameter, log_scale (initially 0.5), and one option."""
    (tmp_path / "learned_scale_kind.py").write_text(SCALED_DOT)
    monkeypatch.syspath_prepend(str(tmp_path))
    attention_module.load_plugins(["learned_scale_kind"])
    yield "dot_learned_scale"
    sys.modules.pop("learned_scale_kind", None)


def test_a_learnable_parameter_is_no_option(learned_scale):
    assert head_parameters(learned_scale) == {"log_scale": 0.5}
    attention_module.check_options(learned_scale, {})
    attention_module.check_options(learned_scale, {"temperature": 2.0})
    with pytest.raises(ValueError, match="takes no option\\(s\\) \\['log_scale'\\]; its options: \\['temperature'\\]"):
        attention_module.check_options(learned_scale, {"log_scale": 1.0})


def test_the_config_check_reads_the_parameters_from_the_source(learned_scale):
    """The Snakefile reads kinds without importing them: the parameters' names come from the
    decorator's literal dict, and they are not taken for options."""
    kind = declared_in(Path(inspect.getsourcefile(attention_module.KINDS[learned_scale])))[learned_scale]
    assert kind.options == ("temperature",) and kind.required == () and kind.parameters == ("log_scale",)


def test_every_kind_read_from_source_declares_the_registered_parameters():
    declared, problems = known_kinds()
    assert not problems
    for name, kind in declared.items():
        assert kind.parameters == tuple(head_parameters(name)), name


def test_a_parameter_not_given_takes_its_initial_value(learned_scale):
    g = torch.Generator().manual_seed(0)
    q, k, v = (torch.randn(2, 3, 7, 4, generator=g) for _ in range(3))
    expected = attention(q, k, v, learned_scale, log_scale=torch.full((3,), 0.5))
    torch.testing.assert_close(attention(q, k, v, learned_scale), expected, rtol=0, atol=0)


def test_the_model_learns_one_value_per_head_and_layer(learned_scale):
    torch.manual_seed(0)
    model = DecoderLM(ModelConfig(attention=learned_scale, attention_options={"temperature": 2.0}, **SMALL))
    names = [name for name, _ in model.named_parameters() if "head_parameters" in name]
    assert names == [f"blocks.{i}.attn.head_parameters.log_scale" for i in range(2)]
    for block in model.blocks:
        assert torch.equal(block.attn.head_parameters["log_scale"], torch.full((2,), 0.5))
    idx = torch.randint(50, (3, 12))
    model(idx, idx).backward()
    grads = [block.attn.head_parameters["log_scale"].grad for block in model.blocks]
    assert all(grad is not None and grad.shape == (2,) and grad.abs().min() > 0 for grad in grads)
    # the model's value reaches the kind: another value, another output
    model.eval()
    before = model(idx)
    with torch.no_grad():
        model.blocks[0].attn.head_parameters["log_scale"][1] = -1.0
    assert not torch.allclose(model(idx), before)


def test_kinds_without_parameters_add_none(registry):
    for kind in ("dot", "euclid"):
        model = DecoderLM(ModelConfig(attention=kind, **SMALL))
        assert not [name for name, _ in model.named_parameters() if "head_parameters" in name]
        assert head_parameters(kind) == {}

    @register("dot_plain")
    def dot_plain(q, k, v, causal, dropout_p):
        return attention(q, k, v, "dot", causal, dropout_p)

    assert head_parameters("dot_plain") == {}


def test_the_kind_sees_the_value_given_per_head(learned_scale):
    g = torch.Generator().manual_seed(1)
    q, k, v = (torch.randn(1, 2, 5, 4, generator=g) for _ in range(3))
    scale = torch.tensor([0.0, 1.0])
    out = attention(q, k, v, learned_scale, log_scale=scale)
    assert rel_err(out, reference(q * scale.exp().view(-1, 1, 1), k, v, "dot")) <= 1e-5
