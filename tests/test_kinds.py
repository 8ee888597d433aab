"""Kinds with learnable per-head parameters (attention.register's parameters=): how the registry,
the config check and the model treat them."""

import math
import sys

import pytest
import torch
import torch.nn.functional as F

from attnscore import attention as attention_module
from attnscore.attention import KINDS, attention, head_parameters, register
from attnscore.kinds import declared_in, known_kinds, module_file, options_problem, plugins_of
from attnscore.model import DecoderLM, ModelConfig
from attnscore.oracle import oracle, rel_err
from attnscore.scores import manhattan

SMALL = dict(vocab_size=50, d_model=16, n_layers=2, n_heads=2, d_ff=32, max_seq_len=16)

SCALED_DOT = """
import torch.nn.functional as F

from attnscore.attention import register


@register("dot_learned_scale", options={"temperature": {"type": "number", "default": 1.0}}, parameters={"log_scale": 0.5})
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


def test_a_parameter_the_function_does_not_take_is_refused(registry):
    with pytest.raises(ValueError, match="'dot_no_scale': its function takes no argument\\(s\\) \\['scale'\\]"):

        @register("dot_no_scale", parameters={"scale": 1.0})
        def dot_no_scale(q, k, v, causal, dropout_p):
            return v

    assert "dot_no_scale" not in registry


def test_the_config_check_reads_the_parameters_from_the_source(learned_scale):
    """The Snakefile reads kinds without importing them: the parameters' names come from the
    decorator's literal dict, and they are not taken for options."""
    kind = declared_in("learned_scale_kind", module_file("learned_scale_kind"))[learned_scale]
    assert list(kind.options) == ["temperature"] and kind.required == () and kind.parameters == ("log_scale",)


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
        return attention(q, k, v, "dot", causal=causal, dropout_p=dropout_p)

    assert head_parameters("dot_plain") == {}


def test_the_kind_sees_the_value_given_per_head(learned_scale):
    g = torch.Generator().manual_seed(1)
    q, k, v = (torch.randn(1, 2, 5, 4, generator=g) for _ in range(3))
    scale = torch.tensor([0.0, 1.0])
    out = attention(q, k, v, learned_scale, log_scale=scale)
    assert rel_err(out, oracle(q * scale.exp().view(-1, 1, 1), k, v, "dot")) <= 1e-5


# cosine: Swin Transformer V2's scaled cosine similarity, a learnable log-scale per head

LOG_100 = math.log(100)


@pytest.mark.parametrize("causal", [True, False])
@pytest.mark.parametrize("dropout_p", [0.0, 0.3])
def test_cosine_with_a_scale_per_head_matches_float64_oracle(causal, dropout_p):
    """Heads with different scales, the last beyond the clamp: values and gradients of q, k, v
    and the log-scale (0 for the clamped head, as torch.clamp takes it) against the formula."""
    g = torch.Generator().manual_seed(20)
    q, k, v = (torch.randn(2, 3, 11, 8, generator=g).requires_grad_() for _ in range(3))
    logit_scale = torch.tensor([0.0, math.log(10), math.log(1000)], requires_grad=True)
    torch.manual_seed(21)
    out = attention(q, k, v, "cosine", causal=causal, dropout_p=dropout_p, logit_scale=logit_scale)
    torch.manual_seed(21)
    mask = F.dropout(torch.ones(2, 3, 11, 11), dropout_p)
    leaves = [t.detach().double().requires_grad_() for t in (q, k, v, logit_scale)]
    ref = oracle(*leaves[:3], "cosine", causal=causal, dropout_mask=mask, logit_scale=leaves[3])
    assert rel_err(out, ref) <= 1e-5
    grad_out = torch.randn_like(ref)
    grads = torch.autograd.grad(out, (q, k, v, logit_scale), grad_out.float())
    grads_ref = torch.autograd.grad(ref, leaves, grad_out)
    for g, g_ref in zip(grads, grads_ref, strict=True):
        assert rel_err(g, g_ref) <= 1e-5
    assert grads[3][2] == 0 and grads[3][:2].abs().min() > 0


def test_cosine_scale_is_clamped_at_100():
    g = torch.Generator().manual_seed(22)
    q, k, v = (torch.randn(1, 2, 9, 8, generator=g) for _ in range(3))
    at_clamp = attention(q, k, v, "cosine", logit_scale=torch.full((2,), LOG_100))
    beyond = attention(q, k, v, "cosine", logit_scale=torch.full((2,), 2 * LOG_100))
    torch.testing.assert_close(beyond, at_clamp, rtol=0, atol=0)
    below = attention(q, k, v, "cosine", logit_scale=torch.full((2,), LOG_100 - 0.5))
    assert not torch.allclose(below, at_clamp)
    # logits s cos(q, k) with s = 100 and q == k: the diagonal is 100, as far from the rest as cos allows
    q = F.normalize(q, dim=-1)
    weights = attention(
        q, q, torch.eye(9).expand(1, 2, 9, 9), "cosine", causal=False, logit_scale=torch.full((2,), 9.0)
    )
    logits = 100 * q @ q.transpose(-1, -2)
    torch.testing.assert_close(weights, torch.softmax(logits, -1), rtol=1e-5, atol=1e-6)


def test_cosine_starts_at_scale_10_in_every_head_and_learns_it():
    assert head_parameters("cosine") == {"logit_scale": math.log(10)}
    torch.manual_seed(0)
    model = DecoderLM(ModelConfig(attention="cosine", **SMALL))
    scales = [block.attn.head_parameters["logit_scale"] for block in model.blocks]
    assert all(torch.equal(scale, torch.full((2,), math.log(10))) for scale in scales)
    idx = torch.randint(50, (3, 12))
    model(idx, idx).backward()
    assert all(scale.grad is not None and scale.grad.abs().min() > 0 for scale in scales)


def test_a_cosine_model_saves_and_loads_its_learned_scales(tmp_path):
    """The scales are model parameters: the checkpoints hold them, and a model loads them strictly."""
    from attnscore import checkpoints
    from attnscore.train import train
    from helpers import SETTINGS, TINY, train_config, write_token_files

    files = write_token_files(tmp_path)
    model_cfg = ModelConfig(vocab_size=64, **{**TINY, "attention": "cosine"})
    cfg = train_config(**{**SETTINGS, "epochs": 1, "max_steps_per_epoch": 8})
    train(model_cfg, cfg, token_files=files, checkpoint_dir=tmp_path / "checkpoints", log=lambda *_: None)
    saved = checkpoints.load_epoch(checkpoints.run_folder(tmp_path / "checkpoints", model_cfg, cfg, files), 1)
    model = DecoderLM(ModelConfig(**saved["model_config"]))
    model.load_state_dict(saved["model"])
    for i, block in enumerate(model.blocks):
        scale = block.attn.head_parameters["logit_scale"]
        assert torch.equal(scale, saved["model"][f"blocks.{i}.attn.head_parameters.logit_scale"])
        assert not torch.allclose(scale, torch.full_like(scale, math.log(10)))  # trained: moved from the start


def runs_without_options_here(kind):
    try:
        attention_module.check_options(kind, {})
        attention(*(torch.randn(1, 1, 4, 16) for _ in range(3)), kind)
    except (ValueError, attention_module.Unsupported):
        return False
    return True


@pytest.mark.parametrize("kind", [kind for kind in sorted(KINDS) if runs_without_options_here(kind)])
@pytest.mark.parametrize("autocast", [None, torch.bfloat16])
def test_the_small_model_takes_training_steps_with_every_kind(kind, autocast):
    """Dropout on, two Adam steps, fp32 and under bf16 autocast (precision: bf16 on a CPU): the
    loss and every parameter's gradient are finite."""
    torch.manual_seed(0)
    model = DecoderLM(ModelConfig(attention=kind, dropout=0.1, **SMALL)).train()
    optimizer = torch.optim.Adam(model.parameters(), lr=1e-2)
    idx = torch.randint(50, (4, 16))
    for _ in range(2):
        with torch.autocast("cpu", dtype=autocast, enabled=autocast is not None):
            loss = model(idx[:, :-1], idx[:, 1:]) / idx[:, 1:].numel()
        loss.backward()
        assert torch.isfinite(loss)
        for name, param in model.named_parameters():
            assert param.grad is not None and torch.isfinite(param.grad).all(), name
        optimizer.step()
        optimizer.zero_grad()


# euclid_sq: the squared distance, dot-product attention with a bias per key


@pytest.mark.parametrize("head_dim", [4, 6, 8, 64])  # q' and k' (d + 2 columns) padded to 8, 8, 16 and 72
@pytest.mark.parametrize("causal", [True, False])
def test_euclid_sq_matches_the_naive_squared_distance_at_every_padding(head_dim, causal):
    g = torch.Generator().manual_seed(23)
    q, k, v = (torch.randn(2, 2, 13, head_dim, generator=g).requires_grad_() for _ in range(3))
    out = attention(q, k, v, "euclid_sq", causal=causal)
    leaves = [t.detach().double().requires_grad_() for t in (q, k, v)]
    ref = oracle(*leaves, "euclid_sq", causal=causal)
    assert out.shape == v.shape and rel_err(out, ref) <= 1e-5
    grad_out = torch.randn_like(ref)
    grads = torch.autograd.grad(out, (q, k, v), grad_out.float())
    for g, g_ref in zip(grads, torch.autograd.grad(ref, leaves, grad_out), strict=True):
        assert rel_err(g, g_ref) <= 1e-5


@pytest.mark.skipif(not hasattr(torch, "_fused_sdp_choice"), reason="needs torch._fused_sdp_choice")
@pytest.mark.parametrize("kind", ["cosine", "euclid_sq"])
@pytest.mark.parametrize("dropout_p", [0.0, 0.1])
def test_sdpa_kinds_reach_the_same_sdpa_backend_as_dot(kind, dropout_p, monkeypatch):
    """What SDPA is handed decides its kernel: cosine's and euclid_sq's heads get the one dot
    gets (on this CPU the fused flash kernel without dropout; with a q/k width other than v's,
    euclid_sq's unpadded [2q, -1, -1] would fall back to the unfused math path)."""
    calls = []

    def recording(q, k, v, **kwargs):
        calls.append(torch._fused_sdp_choice(q, k, v, **kwargs))
        return sdpa(q, k, v, **kwargs)

    sdpa = F.scaled_dot_product_attention
    monkeypatch.setattr(F, "scaled_dot_product_attention", recording)
    q, k, v = (torch.randn(2, 4, 64, 64) for _ in range(3))
    attention(q, k, v, "dot", dropout_p=dropout_p)
    attention(q, k, v, kind, dropout_p=dropout_p)
    assert calls[0] == calls[1]


@pytest.mark.parametrize("kind", ["cosine", "euclid_sq", "manhattan", "sigmoid"])
def test_new_kinds_under_bf16_autocast_are_within_1e_2(kind):
    """Like euclid. cosine's unit heads and euclid_sq's ||k||^2 columns are made in float32 and
    rounded once (||k||^2 as two bf16 numbers): rounded more often they measured up to 1.3e-2 at
    head_dim 128, against 4e-3 for dot."""
    g = torch.Generator().manual_seed(24)
    q, k, v = (torch.randn(2, 3, 33, 16, generator=g).requires_grad_() for _ in range(3))
    with torch.autocast("cpu", dtype=torch.bfloat16):
        out = attention(*(t.to(torch.bfloat16) for t in (q, k, v)), kind)
    leaves = [t.detach().to(torch.bfloat16).double().requires_grad_() for t in (q, k, v)]
    ref = oracle(*leaves, kind)
    assert out.dtype == torch.bfloat16 and rel_err(out, ref) <= 1e-2
    grad_out = torch.randn(ref.shape, generator=g, dtype=ref.dtype)
    grads = torch.autograd.grad(out, (q, k, v), grad_out.to(torch.bfloat16))
    for g, g_ref in zip(grads, torch.autograd.grad(ref, leaves, grad_out), strict=True):
        assert rel_err(g, g_ref) <= 1e-2


# manhattan: -||q - k||_1 / sqrt(d_k), memory-bounded


@pytest.mark.parametrize("t_q, t_k", [(17, 17), (6, 11)])
@pytest.mark.parametrize("causal", [True, False])
@pytest.mark.parametrize("dropout_p", [0.0, 0.3])
def test_manhattan_in_small_chunks_matches_float64_oracle(t_q, t_k, causal, dropout_p, monkeypatch):
    """Chunks of 4 query rows (the last one short), and under the causal mask only the keys a
    chunk sees: values and gradients as the formula's, dropout mask for mask."""
    batch, heads, d = 2, 3, 8
    monkeypatch.setattr(manhattan, "CHUNK_ELEMENTS", 4 * batch * heads * t_k * d)
    g = torch.Generator().manual_seed(25)
    q = torch.randn(batch, heads, t_q, d, generator=g).requires_grad_()
    k, v = (torch.randn(batch, heads, t_k, d, generator=g).requires_grad_() for _ in range(2))
    torch.manual_seed(26)
    out = attention(q, k, v, "manhattan", causal=causal, dropout_p=dropout_p)
    torch.manual_seed(26)
    mask = F.dropout(torch.ones(batch, heads, t_q, t_k), dropout_p)
    leaves = [t.detach().double().requires_grad_() for t in (q, k, v)]
    ref = oracle(*leaves, "manhattan", causal=causal, dropout_mask=mask)
    assert rel_err(out, ref) <= 1e-5
    grad_out = torch.randn_like(ref)
    grads = torch.autograd.grad(out, (q, k, v), grad_out.float())
    for g, g_ref in zip(grads, torch.autograd.grad(ref, leaves, grad_out), strict=True):
        assert rel_err(g, g_ref) <= 1e-5


def test_manhattan_with_dropout_passes_gradcheck_in_float64(monkeypatch):
    monkeypatch.setattr(manhattan, "CHUNK_ELEMENTS", 2 * 2 * 6 * 4)  # 2 rows a chunk
    g = torch.Generator().manual_seed(27)
    q, k, v = (torch.randn(1, 2, 6, 4, generator=g, dtype=torch.float64).requires_grad_() for _ in range(3))

    def seeded(q, k, v):  # the same dropout mask at every evaluation
        torch.manual_seed(28)
        return manhattan.ManhattanAttention.apply(q, k, v, True, 0.2)

    assert torch.autograd.gradcheck(seeded, (q, k, v))


def test_manhattan_at_zero_difference_takes_the_subgradient_0_like_torch():
    """q == k, and coordinates equal across pairs: sign(0) = 0, the gradient torch's abs gives."""
    g = torch.Generator().manual_seed(29)
    q = torch.randn(1, 2, 8, 4, generator=g).round().requires_grad_()  # few values: many zero differences
    k, v = q.detach().clone().requires_grad_(), torch.randn(1, 2, 8, 4, generator=g).requires_grad_()
    out = attention(q, k, v, "manhattan")
    leaves = [t.detach().double().requires_grad_() for t in (q, k, v)]
    ref = oracle(*leaves, "manhattan")
    grad_out = torch.randn_like(ref)
    grads = torch.autograd.grad(out, (q, k, v), grad_out.float())
    for g, g_ref in zip(grads, torch.autograd.grad(ref, leaves, grad_out), strict=True):
        assert torch.isfinite(g).all() and rel_err(g, g_ref) <= 1e-5


def largest_allocation(fn) -> int:
    """The most bytes any one op allocated on the CPU while fn ran (torch's profiler)."""
    from torch.profiler import ProfilerActivity, profile

    with profile(activities=[ProfilerActivity.CPU], profile_memory=True) as prof:
        fn()
    return max(event.self_cpu_memory_usage for event in prof.events())


def test_manhattan_forward_and_backward_never_hold_a_difference_tensor(monkeypatch):
    """No (t_q x t_k x d) tensor per batch element and head, the one a broadcast difference
    needs (and torch.cdist's CUDA backward allocates): nothing larger than a chunk of 4 query
    rows, at a shape where the whole difference is 16 times that."""
    batch, heads, t, d = 2, 2, 64, 32
    chunk = 4 * batch * heads * t * d
    monkeypatch.setattr(manhattan, "CHUNK_ELEMENTS", chunk)
    q, k, v = (torch.randn(batch, heads, t, d, requires_grad=True) for _ in range(3))

    def forward_backward():
        out = attention(q, k, v, "manhattan", dropout_p=0.1)
        torch.autograd.grad(out.square().sum(), (q, k, v))

    difference = batch * heads * t * t * d * 4  # bytes in float32
    assert largest_allocation(lambda: (q.unsqueeze(-2) - k.unsqueeze(-3)).abs().sum(-1)) >= difference  # seen
    assert largest_allocation(forward_backward) <= chunk * 4 == difference // 16


def test_manhattan_chunks_fit_the_budget_at_the_reference_shape():
    """At batch 8, 8 heads, seq_len 512, head_dim 64 a chunk is 8 query rows, 64 MiB in float32,
    where the whole difference tensor would be 4 GiB per layer."""
    batch, heads, t, d = 8, 8, 512, 64
    rows = manhattan.CHUNK_ELEMENTS // (batch * heads * t * d)
    assert rows == 8 and rows * batch * heads * t * d * 4 == 64 * 2**20


# sigmoid: elementwise weights, no normalisation over the keys


def sigmoid_weights(q, k, causal=True, **options):
    """The weights themselves: attention of v = the identity over the keys."""
    identity = torch.eye(k.shape[-2]).expand(*k.shape[:-1], k.shape[-2])
    return attention(q, k, identity, "sigmoid", causal=causal, **options)


def test_sigmoid_weights_are_unnormalised_and_exactly_0_where_hidden():
    g = torch.Generator().manual_seed(30)
    q, k = (torch.randn(2, 2, 9, 8, generator=g) for _ in range(2))
    weights = sigmoid_weights(q, k)
    hidden = torch.ones(9, 9, dtype=torch.bool).triu(1)
    assert (weights[..., hidden] == 0).all() and (weights[..., ~hidden] > 0).all()
    assert not torch.allclose(weights.sum(-1), torch.ones(2, 2, 9))
    logits = q @ k.transpose(-1, -2) / math.sqrt(8) - math.log(9)
    torch.testing.assert_close(weights, torch.sigmoid(logits).masked_fill(hidden, 0))


@pytest.mark.parametrize("causal", [True, False])
def test_sigmoid_bias_defaults_to_minus_log_of_the_number_of_keys(causal):
    g = torch.Generator().manual_seed(31)
    q, k = torch.randn(1, 2, 5, 8, generator=g), torch.randn(1, 2, 12, 8, generator=g)
    torch.testing.assert_close(sigmoid_weights(q, k, causal), sigmoid_weights(q, k, causal, bias=-math.log(12)))
    for bias in (0.0, -2.5):
        v = torch.randn(1, 2, 12, 8, generator=g)
        out = attention(q, k, v, "sigmoid", causal=causal, bias=bias)
        assert rel_err(out, oracle(q, k, v, "sigmoid", causal=causal, bias=bias)) <= 1e-5
    attention_module.check_options("sigmoid", {"bias": -1.0})


def test_the_config_check_takes_the_new_kinds_and_refuses_a_parameter_as_an_option():
    """The Snakefile's check (no torch): the new kinds, sigmoid's bias, and cosine's scale refused
    as a setting (it is learned)."""
    from attnscore.config import check_attention

    variants = ["dot", "cosine", "euclid_sq", "manhattan", "sigmoid"]
    model = {"attention_plugins": [], "attention_options": {"sigmoid": {"bias": -2.0}}}
    assert check_attention(model, [("variants", variants)]) == []
    model["attention_options"]["cosine"] = {"logit_scale": 1.0}
    assert check_attention(model, [("variants", variants)]) == [
        "model.attention_options.cosine: attention kind 'cosine' takes no option(s) ['logit_scale']; its options: []"
    ]


# The dry run reads a declaration from the source where it is literal, else imports its module

COMPUTED = """
from attnscore.attention import register

NAME = "dot_computed"
POSITIVE = {"type": "number", "exclusiveMinimum": 0}


@register(NAME, options={"temperature": {**POSITIVE, "default": 1.0}})
def dot_computed(q, k, v, causal, dropout_p, temperature=1.0):
    return v
"""


@pytest.mark.parametrize(
    "modules",
    [
        {"computed_kind": COMPUTED},
        {"computed_plugin": "import computed_helper  # registers the kind", "computed_helper": COMPUTED},
    ],
)
def test_a_declaration_the_source_does_not_spell_out_is_read_by_importing_the_plugin(
    registry, tmp_path, monkeypatch, modules
):
    """A computed name or options=, or a register call in a module the plugin imports: the
    config check imports the plugin and reads the registry's declaration."""
    for module, source in modules.items():
        (tmp_path / f"{module}.py").write_text(source)
    monkeypatch.syspath_prepend(str(tmp_path))
    plugin = next(iter(modules))
    try:
        kinds, problems = known_kinds([plugin])
        assert not problems and kinds["dot_computed"].required == ()
        assert kinds["dot_computed"].source == tmp_path / f"{plugin}.py"
        assert "exclusiveMinimum" in options_problem("dot_computed", kinds["dot_computed"], {"temperature": 0.0})
        assert plugins_of("dot_computed", [plugin]) == [plugin]
    finally:
        for module in modules:
            sys.modules.pop(module, None)


def test_a_plugin_that_fails_to_import_for_the_config_check_is_named(tmp_path, monkeypatch):
    (tmp_path / "broken_kind.py").write_text(COMPUTED.replace("import register", "import no_such_name"))
    monkeypatch.syspath_prepend(str(tmp_path))
    kinds, problems = known_kinds(["broken_kind"])
    assert "dot_computed" not in kinds
    assert problems == [
        "model.attention_plugins: importing 'broken_kind' failed (ImportError: cannot import name 'no_such_name' "
        "from 'attnscore.attention' ("
        + str(attention_module.__file__)
        + ")); fix the module or take it out of the list"
    ]
