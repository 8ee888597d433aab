"""The training loop: a Trainer (model, optimizer, learning-rate schedule, mixed precision)
stepped over the batchified train split, logged every train.log_every steps, evaluated on valid
and test after each epoch, checkpointed so that it resumes.

train() runs in one process, or in each process of a DDP run (attnscore.launch starts those).
"""

import math
import signal
import sys
import time
from contextlib import contextmanager, nullcontext
from dataclasses import dataclass
from functools import cached_property
from pathlib import Path

import torch
from torch.nn.parallel import DistributedDataParallel
from tqdm import tqdm

from attnscore import attention, checkpoints, steplog
from attnscore.checkpoints import TrainingState
from attnscore.io import Explained
from attnscore.model import DecoderLM, ModelConfig
from attnscore.runtime import all_sum, autocast_dtype, pick_device, rank_and_world, shard_rows
from attnscore.tokens import batchify, load_tokens, num_windows, windows


@dataclass
class TrainConfig:
    seq_len: int = 512
    batch_size: int = 8
    eval_batch_size: int = 8
    epochs: int = 20
    lr: float = 1e-5  # the peak learning rate
    betas: tuple = (0.9, 0.98)
    eps: float = 1e-9
    weight_decay: float = 0.0
    grad_clip: float = 0.0  # 0 = off, as in the reference
    optimizer: str = "adam"  # adam (reference: weight_decay is L2 on every weight) | adamw (parameter_groups)
    schedule: str = "constant"  # constant (reference) | cosine: lr_factor
    warmup_steps: int = 0  # linear warm-up over the first steps; 0 = none (reference)
    min_lr_ratio: float = 0.1  # cosine: the last step's learning rate as a fraction of lr
    seed: int = 1234
    device: str = "auto"  # auto | cpu | cuda | cuda:N
    precision: str = "auto"  # auto | fp32 | bf16 | fp16
    compile: bool = False  # torch.compile the model
    processes: int = 1  # >1: DistributedDataParallel under torchrun, one process per GPU (or CPU share)
    checkpoint_every: int = 0  # also save every N steps within an epoch; 0 = at epoch ends only
    log_every: int = 10  # steps between rows of the per-step log (steps.csv, TensorBoard), and at epoch ends
    max_steps_per_epoch: int = 0  # 0 = the whole split; >0 truncates epochs (debugging only)


class TrainingInterrupted(Explained, RuntimeError):
    """Training stopped on a signal after saving a checkpoint; re-run to resume."""


class TrainingDiverged(Explained, RuntimeError):
    """A NaN or inf loss or weight; the last good checkpoint is kept."""


def lr_factor(step: int, cfg: TrainConfig, total_steps: int) -> float:
    """The learning rate of optimizer step `step` (0: the run's first) as a fraction of cfg.lr.

    A linear warm-up over cfg.warmup_steps, (step + 1) / warmup_steps, then 1 (constant) or a
    half cosine from 1 down to cfg.min_lr_ratio at the run's last step, total_steps - 1 (cosine;
    nanoGPT's and GPT-3's schedule). constant without warm-up is the reference: always 1.
    """
    if step < cfg.warmup_steps:
        return (step + 1) / cfg.warmup_steps
    if cfg.schedule == "constant":
        return 1.0
    progress = min((step - cfg.warmup_steps) / max(total_steps - 1 - cfg.warmup_steps, 1), 1.0)
    return cfg.min_lr_ratio + (1 - cfg.min_lr_ratio) * 0.5 * (1 + math.cos(math.pi * progress))


def parameter_groups(model: torch.nn.Module, weight_decay: float) -> list[dict]:
    """AdamW's parameter groups: weight decay on the weight matrices of linear layers only; none
    on biases, norms, embeddings (an output layer tied to the token embedding is one) or a kind's
    per-head parameters (GPT-2 and nanoGPT practice: decaying gains and offsets only hurts)."""
    embeddings = {id(m.weight) for m in model.modules() if isinstance(m, torch.nn.Embedding)}
    decayed = {id(m.weight) for m in model.modules() if isinstance(m, torch.nn.Linear)} - embeddings
    params = list(model.parameters())  # each once, a tied matrix too
    return [
        {"params": [p for p in params if id(p) in decayed], "weight_decay": weight_decay},
        {"params": [p for p in params if id(p) not in decayed], "weight_decay": 0.0},
    ]


class Trainer:
    """A model, its optimizer, learning-rate schedule and mixed-precision settings: one object to
    step and to save. `total_steps` (the run's optimizer steps) is where a cosine schedule ends."""

    def __init__(self, model_cfg: ModelConfig, cfg: TrainConfig, total_steps: int = 0):
        self.cfg = cfg
        self.total_steps = total_steps
        self.device = pick_device(cfg.device)
        torch.manual_seed(cfg.seed)
        self.model = DecoderLM(model_cfg).to(self.device)
        self.dtype = autocast_dtype(self.device, cfg.precision)
        self.scaler = torch.amp.GradScaler(self.device.type, enabled=self.dtype == torch.float16)
        # Checkpoints hold self.model's state; DDP and the compiled wrapper only run it.
        net = self.model
        if rank_and_world()[1] > 1:
            torch.manual_seed(cfg.seed + rank_and_world()[0])  # same initial weights, each its own dropout masks
            net = DistributedDataParallel(net, device_ids=[self.device.index] if self.device.type == "cuda" else None)
        self.forward = torch.compile(net) if cfg.compile else net

    @cached_property
    def optimizer(self) -> torch.optim.Optimizer:
        """Made on first use: an evaluation never needs it, and the first optimizer a process makes
        imports torch._dynamo (about 2.5 s on a CPU). Fused: one pass per parameter (on CPU 6x
        faster than the loop)."""
        cfg = self.cfg
        if cfg.optimizer == "adamw":
            return torch.optim.AdamW(
                parameter_groups(self.model, cfg.weight_decay), lr=cfg.lr, betas=tuple(cfg.betas), eps=cfg.eps,
                fused=True,
            )  # fmt: skip
        return torch.optim.Adam(
            self.model.parameters(), lr=cfg.lr, betas=tuple(cfg.betas), eps=cfg.eps, weight_decay=cfg.weight_decay,
            fused=True,
        )  # fmt: skip

    @cached_property
    def scheduler(self) -> torch.optim.lr_scheduler.LambdaLR:
        """Sets each step's learning rate to cfg.lr x lr_factor (exactly cfg.lr for the reference)."""
        cfg, total = self.cfg, self.total_steps
        return torch.optim.lr_scheduler.LambdaLR(self.optimizer, lambda step: lr_factor(step, cfg, total))

    def autocast(self):
        if self.dtype is None:
            return nullcontext()
        return torch.autocast(self.device.type, dtype=self.dtype)

    def to_device(self, tensor):
        if self.device.type == "cuda":
            return tensor.pin_memory().to(self.device, non_blocking=True)
        return tensor.to(self.device)

    def step(self, x, y) -> tuple[torch.Tensor, torch.Tensor]:
        """One optimisation step on a window; returns the summed NLL and the gradient's norm
        before clipping, both left on the device (reading them would wait for it)."""
        scheduler = self.scheduler  # made before the first update: making it sets the first step's lr
        with self.autocast():
            nll = self.forward(x, y)
        self.scaler.scale(nll / y.numel()).backward()
        self.scaler.unscale_(self.optimizer)  # the gradient's own scale (nothing to do without fp16)
        if self.cfg.grad_clip > 0:
            norm = torch.nn.utils.clip_grad_norm_(self.model.parameters(), self.cfg.grad_clip)
        else:
            norm = gradient_norm(self.model.parameters())
        self.scaler.step(self.optimizer)
        self.scaler.update()
        scheduler.step()
        self.optimizer.zero_grad(set_to_none=True)
        return nll.detach(), norm.detach()

    @torch.no_grad()
    def evaluate(self, matrix: torch.Tensor) -> tuple[float, int]:
        """Summed NLL and token count over all windows of a batchified split, over all processes
        (each evaluates its own rows of the matrix, so every process returns the same totals)."""
        self.model.eval()
        total, count = torch.zeros((), device=self.device), 0
        for x, y in windows(shard_rows(matrix), self.cfg.seq_len):
            with self.autocast():
                nll = self.model(self.to_device(x), self.to_device(y))
            total += nll
            count += y.numel()
        self.model.train()
        total, count = all_sum([total.item(), count], self.device)
        return total, int(count)


def gradient_norm(parameters) -> torch.Tensor:
    """The 2-norm of all gradients together, as clip_grad_norm_ measures it, without clipping."""
    grads = [p.grad for p in parameters if p.grad is not None]
    if hasattr(torch.nn.utils, "get_total_norm"):  # torch >= 2.6
        return torch.nn.utils.get_total_norm(grads)
    return torch.linalg.vector_norm(torch.stack([torch.linalg.vector_norm(g) for g in grads]))


def perplexity(nll_sum: float, count: int) -> float:
    """Token-weighted perplexity: exp of the total NLL over the total predicted tokens."""
    loss = nll_sum / count
    return math.inf if loss > 700 else math.exp(loss)  # a diverging run's loss would overflow exp


def train(
    model_cfg: ModelConfig, cfg: TrainConfig, token_files: dict, checkpoint_dir, log=print, tensorboard_dir=None
) -> TrainingState:
    """Train until cfg.epochs in this run's folder of checkpoint_dir, resuming from its last.pt.
    A run already trained that far returns its saved state (its history evaluated again if
    cfg.eval_batch_size changed), cut to cfg.epochs, without training, and writes nothing.

    token_files maps train/valid/test to .npy token arrays. Returns the run's TrainingState cut
    to cfg.epochs: .history holds one metrics row per epoch, .steps the per-step log. With
    tensorboard_dir, the per-step log and each epoch's validation and test loss are written as
    TensorBoard events to tensorboard_dir/<run id> while training (attnscore.steplog).
    Under torch.distributed each process trains on its own rows of the batch (DDP averages the
    gradients, so the global batch is cfg.batch_size); process 0 logs and writes checkpoints.
    """
    main = rank_and_world()[0] == 0
    log = log if main else (lambda *_: None)
    tokens = {split: load_tokens(path, model_cfg.vocab_size) for split, path in token_files.items()}
    train_rows = shard_rows(batchify(tokens["train"], cfg.batch_size))
    eval_splits = {split: batchify(tokens[split], cfg.eval_batch_size) for split in ("valid", "test")}
    steps = min(num_windows(train_rows, cfg.seq_len), cfg.max_steps_per_epoch or math.inf)
    folder = checkpoints.run_folder(checkpoint_dir, model_cfg, cfg, token_files)
    last, run = folder / "last.pt", folder.name
    with checkpoints.claim(checkpoint_dir, log) if main else nullcontext():
        trainer = Trainer(model_cfg, cfg, total_steps=cfg.epochs * steps)
        attn = trainer.model.blocks[0].attn
        attention.check_kind(
            model_cfg.attention, attn.attend, trainer.device, trainer.dtype or torch.float32, attn.dropout,
            attn.n_heads, model_cfg.d_model // attn.n_heads,
        )  # fmt: skip
        settings = checkpoints.settings_record(model_cfg, cfg, token_files)
        state, kept = resume(trainer, folder, eval_splits, log, settings)
        if kept is None:
            checkpoints.write_settings(settings, folder)
        board = None
        if main and tensorboard_dir is not None and state.epoch < cfg.epochs:
            board = steplog.TensorBoard(Path(tensorboard_dir) / run, state.steps_done(steps), log)

        def save(path=last):  # by every process together; a checkpoint holds the totals over all of them
            nonlocal kept
            totals = state.totals(trainer.device)  # a diverged state never replaces a good one:
            check_finite("the training loss", totals.nll_sum, at(state), kept, trainer)
            check_finite("a model weight", largest_weight(trainer.model), at(state), kept, trainer)
            if board:  # the events up to this checkpoint are on disk before it says they were logged
                board.flush()
            checkpoints.save(trainer, totals, run, path)
            kept = position(last, state) if path == last else kept

        try:
            with stop_signals() as stop:
                while state.epoch < cfg.epochs:
                    if train_epoch(trainer, train_rows, steps, state, stop, save, board):
                        signum = stop[0] if stop else "on another process"
                        raise TrainingInterrupted(
                            f"stopped by signal {signum}; checkpoint {last} saved, re-run to resume"
                        )
                    row = epoch_metrics(trainer, state.totals(trainer.device), eval_splits)
                    check_losses(row, at(state), kept, trainer)
                    log(", ".join(f"{k} {v:.4g}" if isinstance(v, float) else f"{k} {v}" for k, v in row.items()))
                    if board:
                        board.epoch(row, state.steps_done(steps))
                    best = min((r["valid_loss"] for r in state.history), default=math.inf)
                    state.finish_epoch(row)
                    checkpoints.save_model(trainer, run, row["epoch"], folder)
                    save()
                    if row["valid_loss"] < best:
                        save(folder / "best.pt")
        finally:
            if board:
                board.close()
    return state.up_to(cfg.epochs)


def resume(trainer: Trainer, folder: Path, eval_splits: dict, log, settings: dict) -> tuple[TrainingState, str | None]:
    """Restore the trainer from the run's resumable checkpoint, if any. Returns the loop's position
    to go on from, and the checkpoint it came from (None for a fresh start); `settings` (the run's
    settings.json record) say, for a fresh start, what differs from the runs before it."""
    saved, path = checkpoints.find_resumable(folder, log, settings)
    if saved is None:
        return TrainingState(), None
    cfg = trainer.cfg
    # A run trained beyond cfg.epochs is cut here; it is neither trained nor saved further.
    history = saved["history"][: cfg.epochs]
    if saved["eval_batch_size"] != cfg.eval_batch_size:
        was, now = saved["eval_batch_size"], cfg.eval_batch_size
        log(f"train.eval_batch_size changed from {was} to {now}: evaluating each saved epoch again")
        history = [evaluate_again(trainer, folder, row, eval_splits) for row in history]
    state = checkpoints.restore(trainer, saved)
    state.history = history
    kept = position(path, state)
    for row in history:
        check_losses(row, f"in saved epoch {row['epoch']}", kept, trainer)
    if state.epoch >= cfg.epochs:
        log(f"nothing to train: {kept} has reached train.epochs={cfg.epochs}")
    else:
        log(f"resuming from {kept}")
    return state, kept


def evaluate_again(trainer: Trainer, folder: Path, row: dict, eval_splits: dict) -> dict:
    """A metrics row with its valid/test columns measured again on that epoch's saved model."""
    trainer.model.load_state_dict(checkpoints.load_epoch(folder, row["epoch"])["model"])
    return {**row, **evaluate_splits(trainer, eval_splits)}


def train_epoch(trainer: Trainer, rows, steps: int, state: TrainingState, stop: list, save, board=None) -> bool:
    """Train from state.step to the end of the epoch, keeping the running sums in state; log
    every cfg.log_every steps and at the epoch's end (log_interval), save every
    cfg.checkpoint_every steps. On a stop signal save and return True (stopped)."""
    cfg, world = trainer.cfg, rank_and_world()[1]
    # The epoch's NLL, the interval's NLL and its gradient norms, summed on the device: no step
    # waits for it, only logs and saves do.
    sums = torch.tensor(
        [state.nll_sum, state.interval_nll, state.interval_grad_norm], device=trainer.device, dtype=torch.float64
    )
    now = time.perf_counter()
    started, interval_started = now - state.epoch_seconds, now - state.interval_seconds

    def sync():  # the device's sums and the clocks into state
        now = time.perf_counter()
        state.nll_sum, state.interval_nll, state.interval_grad_norm = sums.tolist()
        state.epoch_seconds, state.interval_seconds = now - started, now - interval_started

    quiet = rank_and_world()[0] > 0 or not sys.stderr.isatty()
    bar = tqdm(total=steps, initial=state.step, desc=f"epoch {state.epoch + 1}", disable=quiet)
    for step, (x, y) in enumerate(windows(rows, cfg.seq_len)):
        if step < state.step:  # resumed mid-epoch: these windows are done
            continue
        if step >= steps:
            break
        nll, norm = trainer.step(trainer.to_device(x), trainer.to_device(y))
        sums += torch.stack([nll.double(), nll.double(), norm.double()])
        state.count += y.numel()
        state.interval_count += y.numel()
        state.interval_steps += 1
        state.step = step + 1
        bar.update()
        if not quiet and (state.step % 20 == 0 or state.step == steps):  # .item() waits for the device
            tokens_per_s = world * state.count / (time.perf_counter() - started)
            bar.set_postfix(loss=f"{sums[0].item() / state.count:.3f}", tok_s=f"{tokens_per_s:.0f}")
        if state.step % cfg.log_every == 0 or state.step == steps:
            sync()
            log_interval(trainer, state, steps, board)
            sums[1:] = 0.0
            interval_started = time.perf_counter()
        stopping = stop_agreed(stop, trainer.device)
        if stopping or (cfg.checkpoint_every and state.step % cfg.checkpoint_every == 0 and state.step < steps):
            sync()
            save()
            if stopping:
                return True
    bar.close()
    sync()
    return False


def log_interval(trainer: Trainer, state: TrainingState, steps_per_epoch: int, board=None) -> None:
    """One row of the per-step log, by every process together: the interval's mean training loss
    (over all processes, dropout on), the learning rate of its last step, its steps' mean gradient
    norm before clipping, and tokens/s (over all processes, by the wall clock). Kept in state;
    process 0 also writes it to TensorBoard."""
    totals = state.totals(trainer.device)
    done = state.steps_done(steps_per_epoch)
    row = {
        "step": done,
        "epoch": state.epoch + 1,
        "train_loss": totals.interval_nll / totals.interval_count,
        "lr": trainer.cfg.lr * lr_factor(done - 1, trainer.cfg, trainer.total_steps),
        "grad_norm": state.interval_grad_norm / state.interval_steps,
        "tokens_per_s": totals.interval_count / state.interval_seconds,
    }
    state.log_interval(row)
    if board:
        board.step(row)


def epoch_metrics(trainer: Trainer, totals: TrainingState, eval_splits: dict) -> dict:
    """One metrics row: the epoch's train loss (`totals`: over all processes, dropout on), valid and
    test loss and perplexity, learning rate, training tokens/s and the run's elapsed seconds."""
    nll_sum, count = totals.nll_sum, totals.count
    row = {"epoch": totals.epoch + 1, "train_loss": nll_sum / count, "train_ppl": perplexity(nll_sum, count)}
    row.update(evaluate_splits(trainer, eval_splits))
    seconds = totals.epoch_seconds
    elapsed = (totals.history[-1]["elapsed_s"] if totals.history else 0.0) + seconds
    row.update(lr=trainer.optimizer.param_groups[0]["lr"], tokens_per_s=count / seconds, elapsed_s=elapsed)
    return row


def evaluate_splits(trainer: Trainer, eval_splits: dict) -> dict:
    """Loss and perplexity of the trainer's model on each batchified split."""
    row = {}
    for split, matrix in eval_splits.items():
        nll, n = trainer.evaluate(matrix)
        row[f"{split}_loss"], row[f"{split}_ppl"] = nll / n, perplexity(nll, n)
    return row


def at(state: TrainingState) -> str:
    return f"in epoch {state.epoch + 1}, by step {state.step}"


def position(path: Path, state: TrainingState) -> str:
    """A checkpoint file and the point of training it holds."""
    if state.step == 0:
        return f"{path} (end of epoch {state.epoch})"
    return f"{path} (epoch {state.epoch + 1}, step {state.step})"


def largest_weight(model) -> float:
    """The model's largest absolute weight, NaN if any weight is: one number that is finite only
    if every weight is."""
    return torch.stack([p.detach().abs().max().float() for p in model.parameters()]).max().item()


def check_losses(row: dict, where: str, kept: str | None, trainer: Trainer) -> None:
    for split, name in (("train", "training"), ("valid", "validation"), ("test", "test")):
        check_finite(f"the {name} loss", row[f"{split}_loss"], where, kept, trainer)


def check_finite(what: str, value: float, where: str, kept: str | None, trainer: Trainer) -> None:
    """Stop at a NaN or inf value, saying where it was seen, with which kind and precision, which
    good checkpoint is kept, and what may help (never the precision in use)."""
    if not math.isfinite(value):
        keeps = f"the last good checkpoint, {kept}, is kept" if kept else "there is no earlier checkpoint of this run"
        precision = {torch.bfloat16: "bf16", torch.float16: "fp16"}.get(trainer.dtype, "fp32")
        advice = "lower train.lr" + (
            ", or use precision bf16 or fp32 (fp16 overflows first)" if precision == "fp16" else ""
        )
        raise TrainingDiverged(
            f"{what} became NaN/inf {where}; {keeps}. Attention kind {trainer.model.cfg.attention!r} at precision "
            f"{precision}: {advice}, or check the kind's numerics"
        )


@contextmanager
def stop_signals():
    """While training, SIGTERM and SIGINT are recorded in the yielded list instead of killing the
    process, so the loop saves a checkpoint before it stops."""
    received = []
    signals = (signal.SIGTERM, signal.SIGINT)
    handlers = {sig: signal.signal(sig, lambda signum, _: received.append(signum)) for sig in signals}
    try:
        yield received
    finally:
        for sig, handler in handlers.items():
            signal.signal(sig, handler)


def stop_agreed(received: list, device) -> bool:
    """Whether to stop now. All processes must stop at the same step: under DDP they agree every step."""
    if rank_and_world()[1] == 1:
        return bool(received)
    return all_sum([len(received)], device)[0] > 0


def evaluate_checkpoint(model_path, token_file, cfg: TrainConfig) -> dict:
    """Loss, perplexity and token count of a checkpoint's model on one split, and its parameter count."""
    try:
        saved = checkpoints.load(model_path, checkpoints.MODEL_KEYS)
    except checkpoints.UnreadableCheckpoint as err:
        raise checkpoints.UnreadableCheckpoint(f"{err}; delete it, and the workflow exports it again") from None
    model_cfg = ModelConfig(**saved["model_config"])
    trainer = Trainer(model_cfg, cfg)
    changed = checkpoints.code_changes(saved["code"], checkpoints.run_code(model_cfg))
    if changed:
        raise checkpoints.UnreadableCheckpoint(
            f"{model_path} was trained by other code ({' and '.join(changed)} changed since), so this code does "
            "not evaluate it; run the workflow again: train starts a run with the current code"
        )
    trainer.model.load_state_dict(saved["model"])
    nll, count = trainer.evaluate(batchify(load_tokens(token_file, model_cfg.vocab_size), cfg.eval_batch_size))
    return {
        "loss": nll / count, "perplexity": perplexity(nll, count), "tokens": count,
        "attention": model_cfg.attention, "epoch": saved["epoch"], "device": str(trainer.device),
        "parameters": trainer.model.num_params(),
    }  # fmt: skip
