"""Checks on an attention kind before a run trains with it. A kind is user code: one that reads
later tokens trains to a loss no causal model can reach, and would read as a finding.

check_kind: the function alone, on a small input: v's shape out, deterministic without dropout,
and the model's attention dropout applied.
check_in_model: the kind inside the model as configured, at its training length and shorter
ones, in eval and train mode (the same dropout masks in every pass): finite logits; changing
token j leaves every logit before j as it was; the gradient at a position reaches no later one.
Both undo their draws from torch's random streams and change no weight.
"""

from collections.abc import Callable

import torch

from attnscore.files import Explained
from attnscore.runtime import autocast


class KindCheckFailed(Explained, ValueError):
    """A kind lacking a property every kind must have, named with where it showed."""


def _fail(kind: str, problem: str):
    raise KindCheckFailed(f"attention kind {kind!r} fails a check before training: {problem}")


def _forked_rng(device: torch.device):
    return torch.random.fork_rng(devices=[device] if device.type == "cuda" else [])


def check_kind(
    kind: str, attend: Callable, *, device="cpu", dtype=torch.float32, dropout_p=0.0, heads=3, head_dim=16
) -> None:
    """Check an attention function as the model calls it, ``attend(q, k, v, causal, dropout_p)``."""
    generator = torch.Generator().manual_seed(0)
    b, h, d = 2, heads, head_dim  # the model's heads and head size (a kind may hold one parameter a head)
    t = max(b, h, d) + 3  # unlike the others, so that a transposed output cannot pass for v's shape
    q, k, v = (torch.randn(b, h, t, d, generator=generator).to(device, dtype) for _ in range(3))
    with _forked_rng(torch.device(device)), torch.no_grad():
        out = attend(q, k, v, True, 0.0)
        if not isinstance(out, torch.Tensor) or out.shape != v.shape:
            shape = tuple(getattr(out, "shape", ()))
            _fail(kind, f"its output has shape {shape} for inputs of shape {(b, h, t, d)}, not v's")
        if not torch.equal(attend(q, k, v, True, 0.0), out):
            _fail(kind, "two calls with dropout_p=0 on the same input differ; without dropout it must be deterministic")
        if dropout_p > 0 and torch.equal(attend(q, k, v, True, dropout_p), out):
            _fail(kind, f"with dropout_p={dropout_p} (the model's attention dropout) its output equals dropout_p=0's")


def lengths(seq_len: int) -> list[int]:
    return sorted({seq_len, (seq_len + 1) // 2, min(3, seq_len)} - {1})


def positions(length: int) -> list[int]:
    return sorted({1, length // 2, length - 2, length - 1} & set(range(1, length)))


def check_in_model(model: torch.nn.Module, seq_len: int, device: torch.device, dtype=None) -> None:
    """Check the kind of a DecoderLM as it trains; `dtype` is training's autocast dtype (None: fp32)."""
    kind, vocab = model.cfg.attention, model.cfg.vocab_size
    tolerance = 1e-5 if dtype is None or dtype == torch.float32 else 2e-2
    embedded = []  # the input of the first block, per forward pass: what a gradient reaches
    hook = model.drop.register_forward_hook(lambda module, inputs, output: embedded.append(output))
    was_training = model.training

    def logits(tokens):
        embedded.clear()
        torch.manual_seed(0)  # the same dropout masks in every pass
        with autocast(device, dtype):
            return model(tokens).float()

    try:
        with _forked_rng(device):
            for length in lengths(seq_len):
                tokens = torch.randint(vocab, (2, length), generator=torch.Generator().manual_seed(length)).to(device)
                for mode in ("eval", "train"):
                    model.train(mode == "train")
                    where = f"at length {length} in {mode} mode"
                    out = logits(tokens)
                    inputs = embedded[0]
                    if not torch.isfinite(out).all():
                        _fail(kind, f"its logits are not finite (NaN or inf) {where}")
                    scale = tolerance * (1 + out.detach().abs().max())
                    with torch.no_grad():
                        for j in positions(length):
                            changed = tokens.clone()
                            changed[:, j] = (changed[:, j] + 1) % vocab
                            if (logits(changed)[:, :j] - out[:, :j]).abs().max() > scale:
                                _fail(
                                    kind,
                                    f"changing token {j} changes the logits before it {where}: it reads later tokens",
                                )
                    for j in positions(length)[:-1]:
                        (grad,) = torch.autograd.grad(out[:, j].sum(), inputs, retain_graph=True)
                        if grad[:, j + 1 :].abs().max() > tolerance * grad.abs().max():
                            _fail(kind, f"the gradient of the logits at position {j} reaches later positions {where}")
    finally:
        hook.remove()
        model.train(was_training)
