"""The attention weights of any kind, read without its cooperation.

For every kind that weighs values, the output is W v with weights W that depend on q and k only.
Run on value vectors that are columns of the identity (head_dim of them a call), it returns those
columns of W exactly: fused kernels and plugins that never materialise W give it up the same way.
That holds only for a kind linear in v with weights that ignore v, so every reading is checked
(``check``): the output with the model's v must equal W v, on values of ones W's row sums, and
no query may weigh a later key. A kind failing any is refused.
"""

import functools

import torch

from attnscore.files import Explained

# Largest difference allowed between the kind's output and W v, relative to the largest |W| |v|:
# float32's rounding over a row of a few hundred terms stays orders of magnitude below it.
TOLERANCE = 1e-4


class ProbeError(Explained, RuntimeError):
    """A kind whose weights cannot be read exactly from its outputs."""


def read_weights(attend, q, k, v) -> torch.Tensor:
    """W (batch, heads, queries, keys) of `attend(q, k, v, causal, dropout_p)`, causal, no dropout."""
    t, width = k.shape[-2], v.shape[-1]
    weights = q.new_zeros(*q.shape[:-1], t)
    for start in range(0, t, width):
        columns = min(width, t - start)
        identity = torch.zeros_like(v)
        identity[..., start : start + columns, :columns] = torch.eye(columns, dtype=v.dtype, device=v.device)
        weights[..., start : start + columns] = attend(q, k, identity, True, 0.0)[..., :columns]
    return weights


def check(attend, q, k, v, weights: torch.Tensor, *, kind: str, layer: int) -> bool:
    """Refuse (ProbeError) weights that do not reproduce the kind (the module's docstring); return
    whether every row sums to 1 (the kind normalises)."""
    ones = torch.ones_like(v)
    sums = weights.sum(-1)
    scale = max((weights.abs() @ v.abs()).max().item(), sums.abs().max().item(), 1e-30)
    where = f"attention kind {kind!r}, layer {layer}"
    errors = {
        "its output with the model's values differs from weights x values": attend(q, k, v, True, 0.0) - weights @ v,
        "its output on values of ones differs from the weights' row sums": attend(q, k, ones, True, 0.0)[..., 0] - sums,
        "it weighs later positions": weights.triu(1),
    }
    for problem, error in errors.items():
        worst = error.abs().max().item() / scale
        if not worst <= TOLERANCE:  # NaN too
            raise ProbeError(
                f"{where}: its weights cannot be read from its outputs: {problem} (by {worst:.2g} of the largest "
                f"term, more than {TOLERANCE:g}). The probe reads the weights W of kinds whose output is W v with W "
                "independent of v; this kind is not one, so its attention statistics are not computed"
            )
    return bool(((sums - 1).abs() <= TOLERANCE).all())


def _recording(attend, recorded: list, q, k, v, causal, dropout_p):
    recorded.append((q, k, v))
    return attend(q, k, v, causal, dropout_p)


@torch.no_grad()
def layer_weights(model, idx: torch.Tensor, kind: str) -> tuple[list[torch.Tensor], bool]:
    """Every layer's checked attention weights for windows idx in eval mode, in float32; and
    whether the kind normalised every row."""
    recorded, training = [[] for _ in model.blocks], model.training  # each layer's q, k, v per call
    model.eval()
    for block, calls in zip(model.blocks, recorded, strict=True):
        block.attn.attend = functools.partial(_recording, block.attn.attend, calls)
    try:
        model(idx)
    finally:
        model.train(training)
        for block in model.blocks:
            del block.attn.attend  # the class's method again
    weights, normalised = [], True
    for layer, (block, ((q, k, v),)) in enumerate(zip(model.blocks, recorded, strict=True)):  # one call a layer
        w = read_weights(block.attn.attend, q, k, v)
        normalised &= check(block.attn.attend, q, k, v, w, kind=kind, layer=layer)
        weights.append(w)
    return weights, normalised
