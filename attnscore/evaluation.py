"""A model's loss on a batchified split, and the evaluate job: the test loss of a saved
checkpoint. Evaluation makes no optimizer (the first one a process makes imports torch._dynamo,
which is slow), so it needs only the model and where and how to run it."""

import math

import torch

from attnscore import checkpoints, codeid
from attnscore.model import DecoderLM, ModelConfig
from attnscore.runtime import all_sum, autocast, autocast_dtype, pick_device, shard_rows, to_device
from attnscore.tokens import batchify, load_tokens, windows


@torch.no_grad()
def evaluate(model: DecoderLM, matrix: torch.Tensor, seq_len: int, dtype) -> tuple[float, int]:
    """Summed NLL and token count over all windows of a batchified split, over all processes
    (each evaluates its own rows of the matrix, so every process returns the same totals), in
    eval mode (no dropout) under autocast to `dtype` (None: fp32). Leaves the model in train mode."""
    device = next(model.parameters()).device
    model.eval()
    total, count = torch.zeros((), device=device), 0
    for x, y in windows(shard_rows(matrix), seq_len):
        with autocast(device, dtype):
            total += model(to_device(x, device), to_device(y, device))
        count += y.numel()
    model.train()
    total, count = all_sum([total.item(), count], device)
    return total, int(count)


def perplexity(nll_sum: float, count: int) -> float:
    """Token-weighted perplexity: exp of the total NLL over the total predicted tokens."""
    loss = nll_sum / count
    return math.inf if loss > 700 else math.exp(loss)  # a diverging run's loss would overflow exp


def load_model(model_path, where: torch.device) -> tuple[DecoderLM, dict]:
    """A saved model (a model output of train) on a device (runtime.pick_device), and what its
    file holds besides the weights; refused if this code would not have made its weights."""
    saved = checkpoints.load(model_path, checkpoints.MODEL_KEYS, fix="; delete it, and the workflow exports it again")
    model_cfg = ModelConfig(**saved["model_config"])
    changed = codeid.changes(saved["code"], checkpoints.run_code(model_cfg))
    if changed:
        raise checkpoints.UnreadableCheckpoint(
            f"{model_path} was trained by other code ({' and '.join(changed)} changed since), so this code does "
            "not evaluate it; run the workflow again: train starts a run with the current code"
        )
    model = DecoderLM(model_cfg).to(where)
    model.load_state_dict(saved["model"])
    return model, saved


def evaluate_checkpoint(
    model_path, token_file, *, seq_len: int, eval_batch_size: int, device: str, precision: str
) -> dict:
    """Loss, perplexity and token count of a checkpoint's model on one split, and its parameter
    count. The keywords are the config's train keys of that name (the evaluation role)."""
    where = pick_device(device)
    model, saved = load_model(model_path, where)
    tokens = batchify(load_tokens(token_file, model.cfg.vocab_size), eval_batch_size)
    nll, count = evaluate(model, tokens, seq_len, autocast_dtype(where, precision))
    return {
        "loss": nll / count, "perplexity": perplexity(nll, count), "tokens": count,
        "attention": model.cfg.attention, "epoch": saved["epoch"], "device": str(where),
        "parameters": model.num_params(),
    }  # fmt: skip
