"""Divergence: a run whose loss or weights became NaN or inf, or whose loss is worse than guessing
uniformly over the vocabulary, stops before a checkpoint of it is saved, saying what to change."""

import math

import torch

from attnscore.files import Explained
from attnscore.trainer import Trainer


class TrainingDiverged(Explained, RuntimeError):
    """A NaN or inf loss or weight, or a loss worse than a uniform guess; the last good checkpoint is kept."""


# Nats per token above a uniform guess (log of the vocabulary) that only a diverged run reaches:
# an untrained model starts well within that of it.
DIVERGED_ABOVE_UNIFORM = 1.0


def largest_weight(model) -> float:
    """The model's largest absolute weight, NaN if any weight is: one number that is finite only
    if every weight is."""
    return torch.stack([p.detach().abs().max().float() for p in model.parameters()]).max().item()


def check_losses(row: dict, where: str, kept: str | None, trainer: Trainer) -> None:
    for split, name in (("train", "training"), ("valid", "validation"), ("test", "test")):
        check_sane(f"the {name} loss", row[f"{split}_loss"], where=where, kept=kept, trainer=trainer)


def check_sane(what: str, value: float, *, where: str, kept: str | None, trainer: Trainer, bounded=True) -> None:
    """Stop at a NaN or inf value, or (`bounded`: a loss) one worse than a uniform guess over the
    vocabulary by DIVERGED_ABOVE_UNIFORM nats, saying where it was seen, with which kind, learning
    rate and precision, which good checkpoint is kept, and what may help."""
    uniform = math.log(trainer.model.cfg.vocab_size)
    if math.isfinite(value) and not (bounded and value > uniform + DIVERGED_ABOVE_UNIFORM):
        return
    problem = (
        "became NaN/inf"
        if not math.isfinite(value)
        else (
            f"is {value:.4g} nats/token, worse than a uniform guess ({uniform:.2f}) by over {DIVERGED_ABOVE_UNIFORM:g}"
        )
    )
    keeps = f"the last good checkpoint, {kept}, is kept" if kept else "there is no earlier checkpoint of this run"
    precision = {torch.bfloat16: "bf16", torch.float16: "fp16"}.get(trainer.dtype, "fp32")
    advice = "lower train.lr" + (
        ", or use precision bf16 or fp32 (fp16 overflows first)" if precision == "fp16" else ""
    )
    raise TrainingDiverged(
        f"the run diverged: {what} {problem} {where}; {keeps}. Attention kind {trainer.model.cfg.attention!r} at "
        f"train.lr={trainer.cfg.lr:g}, precision {precision}: {advice}, or check the kind's numerics"
    )
