"""The training loop: train() steps a Trainer over the batchified train split, logs every
train.log_every steps, evaluates on valid and test after each epoch (and on the validation
curve's windows every train.eval_every steps), and checkpoints so that it resumes after a crash
or a stop signal. It runs in one process, or in each process of a DDP run (attnscore.launch).
"""

import math
import sys
import time
from contextlib import nullcontext
from itertools import islice
from pathlib import Path

import torch
from tqdm import tqdm

from attnscore import checkpoints, kind_checks, steplog
from attnscore.evaluation import evaluate, perplexity
from attnscore.files import Explained, write_json
from attnscore.loop_state import TrainingState
from attnscore.model import ModelConfig
from attnscore.runtime import all_sum, rank_and_world, shard_rows, signals_to, to_device
from attnscore.tokens import batchify, load_tokens, num_windows, windows
from attnscore.trainer import TrainConfig, Trainer


class TrainingInterrupted(Explained, RuntimeError):
    """Training stopped on a signal after saving a checkpoint; re-run to resume."""


class SettingCannotAct(Explained, ValueError):
    """A training setting that would have no effect on this run, found when its length is known."""


def train(
    model_cfg: ModelConfig, cfg: TrainConfig, *, token_files: dict, checkpoint_dir, tensorboard_dir=None, log=print
) -> TrainingState:
    """Train until cfg.epochs in this run's folder of checkpoint_dir, resuming from its last.pt; a
    run already trained that far (its history evaluated again if cfg.eval_batch_size changed) is
    not trained further and nothing is written. Returns the run's TrainingState cut to cfg.epochs.

    token_files maps train/valid/test to .npy token arrays. With tensorboard_dir, the per-step log
    and each epoch's validation and test loss go to tensorboard_dir/<run id> as they are measured.
    Under torch.distributed each process trains on its own rows of the batch (DDP averages the
    gradients, so the global batch is cfg.batch_size); process 0 logs and writes checkpoints.
    """
    main = rank_and_world()[0] == 0
    log = log if main else (lambda *_: None)
    tokens = {split: load_tokens(path, model_cfg.vocab_size) for split, path in token_files.items()}
    train_rows = shard_rows(batchify(tokens["train"], cfg.batch_size))
    eval_splits = {split: batchify(tokens[split], cfg.eval_batch_size) for split in ("valid", "test")}
    curve = curve_windows(tokens["valid"], cfg)
    steps = min(num_windows(train_rows, cfg.seq_len), cfg.max_steps_per_epoch or math.inf)
    if cfg.warmup_steps >= cfg.epochs * steps:
        raise SettingCannotAct(
            f"train.warmup_steps={cfg.warmup_steps} is not shorter than this run's {cfg.epochs * steps} optimizer steps "
            f"(train.epochs={cfg.epochs} of {steps}): the learning rate would never reach train.lr; set it below "
            f"{cfg.epochs * steps}"
        )
    folder = checkpoints.run_folder(checkpoint_dir, model_cfg, cfg, token_files)
    last, run = folder / "last.pt", folder.name
    with checkpoints.claim(checkpoint_dir, log) if main else nullcontext():
        trainer = Trainer(model_cfg, cfg, total_steps=cfg.epochs * steps)
        attn = trainer.model.blocks[0].attn
        kind_checks.check_kind(
            model_cfg.attention, attn.attend, device=trainer.device, dtype=trainer.dtype or torch.float32,
            dropout_p=attn.dropout, heads=attn.n_heads, head_dim=model_cfg.d_model // attn.n_heads,
        )  # fmt: skip
        kind_checks.check_in_model(trainer.model, cfg.seq_len, trainer.device, trainer.dtype)
        settings = checkpoints.settings_record(model_cfg, cfg, token_files)
        state, kept = resume(trainer, folder, eval_splits, log, settings)
        if main and kept is None:
            write_json(settings, folder / "settings.json")
        with_board = main and tensorboard_dir is not None and state.epoch < cfg.epochs
        board = steplog.tensorboard(Path(tensorboard_dir) / run, state.steps_done(steps), log) if with_board else None

        def save(path=last):  # by every process together; a checkpoint holds the totals over all of them
            nonlocal kept
            totals, where = state.totals(trainer.device), at(state)  # a diverged state never replaces a good one
            trainer.check_sane("the training loss", totals.nll_sum / max(totals.count, 1), where=where, kept=kept)
            trainer.check_weights(where, kept)
            if board:  # the events up to this checkpoint are on disk before it says they were logged
                board.flush()
            checkpoints.save(trainer, totals, run, path)
            kept = position(last, state) if path == last else kept

        stop = []  # the signals received: the loop saves a checkpoint, then stops
        with board or nullcontext(), signals_to(lambda signum, _: stop.append(signum)):  # the board closes at the end
            if cfg.eval_every and not state.curve and state.epoch < cfg.epochs:  # the untrained model
                curve_point(trainer, state, curve, board, 0)
            while state.epoch < cfg.epochs:
                if train_epoch(
                    trainer, state, rows=train_rows, steps=steps, stop=stop, save=save, board=board, curve=curve
                ):
                    signum = stop[0] if stop else "on another process"
                    raise TrainingInterrupted(f"stopped by signal {signum}; checkpoint {last} saved, re-run to resume")
                row = epoch_metrics(trainer, state.totals(trainer.device), eval_splits)
                trainer.check_losses(row, at(state), kept)
                log(", ".join(f"{k} {v:.4g}" if isinstance(v, float) else f"{k} {v}" for k, v in row.items()))
                steplog.add_scalars(board, row, steplog.EPOCH_TAGS, state.steps_done(steps))
                if cfg.eval_every:
                    curve_point(trainer, state, curve, board, state.steps_done(steps))
                else:
                    state.add_curve_point(state.steps_done(steps), row["valid_loss"])
                best = min((r["valid_loss"] for r in state.history), default=math.inf)
                state.finish_epoch(row)
                checkpoints.save_model(trainer.model, run, row["epoch"], folder)
                save()
                if row["valid_loss"] < best:
                    save(folder / "best.pt")
    return state.up_to(cfg.epochs)


def resume(trainer: Trainer, folder: Path, eval_splits: dict, log, settings: dict) -> tuple[TrainingState, str | None]:
    """Restore the trainer from the run's resumable checkpoint, if any. Returns the loop's position
    to go on from, and the checkpoint it came from (None for a fresh start); `settings` (the run's
    settings.json record) say, for a fresh start, what differs from the runs before it."""
    saved, path = checkpoints.find_resumable(folder, log, settings)
    if saved is None:
        return TrainingState(), None
    cfg = trainer.cfg
    if saved["eval_batch_size"] != cfg.eval_batch_size:
        was, now = saved["eval_batch_size"], cfg.eval_batch_size
        log(f"train.eval_batch_size changed from {was} to {now}: evaluating each saved epoch again")
        for row in saved["history"][: cfg.epochs]:  # each saved epoch's model, measured again
            trainer.model.load_state_dict(checkpoints.load_epoch(folder, row["epoch"])["model"])
            row.update(evaluate_splits(trainer, eval_splits))
    # A run trained beyond cfg.epochs is cut here; it is neither trained nor saved further.
    state = checkpoints.restore(trainer, saved).up_to(cfg.epochs)
    if not cfg.eval_every:  # the curve is the epochs' validation loss
        loss = {row["epoch"]: row["valid_loss"] for row in state.history}
        state.curve = [{**point, "valid_loss": loss[point["epoch"]]} for point in state.curve if point["epoch"] in loss]
    kept = position(path, state)
    for row in state.history:
        trainer.check_losses(row, f"in saved epoch {row['epoch']}", kept)
    done = state.epoch >= cfg.epochs
    log(f"nothing to train: {kept} has reached train.epochs={cfg.epochs}" if done else f"resuming from {kept}")
    return state, kept


def train_epoch(trainer: Trainer, state: TrainingState, *, rows, steps: int, stop: list, save, board, curve) -> bool:
    """Train from state.step to the end of the epoch, keeping the running sums in state; log
    every cfg.log_every steps and at the epoch's end (log_row), add a point to the validation
    curve every cfg.eval_every steps of the run (its time is no training time), save every
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
    stopping = False
    for step, (x, y) in islice(enumerate(windows(rows, cfg.seq_len)), state.step, steps):  # resumed: from state.step
        nll, norm = trainer.step(to_device(x, trainer.device), to_device(y, trainer.device))
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
            log_row(trainer, state, steps, board)
            sums[1:] = 0.0
            interval_started = time.perf_counter()
        if cfg.eval_every and state.steps_done(steps) % cfg.eval_every == 0 and state.step < steps:
            seconds = curve_point(trainer, state, curve, board, state.steps_done(steps))  # not the epoch's end: its own
            started, interval_started = started + seconds, interval_started + seconds
        stopping = all_sum([len(stop)], trainer.device)[0] > 0  # under DDP all processes stop at the same step
        if stopping or (cfg.checkpoint_every and state.step % cfg.checkpoint_every == 0 and state.step < steps):
            sync()
            save()
            if stopping:
                break
    bar.close()
    sync()
    return stopping


def log_row(trainer: Trainer, state: TrainingState, steps_per_epoch: int, board) -> None:
    """One row of the per-step log (steplog.COLUMNS), by every process together: the interval's mean
    training loss and tokens/s over all processes, the learning rate after its last step, its steps'
    mean gradient norm before clipping. Kept in state; process 0 also writes it to TensorBoard."""
    totals = state.totals(trainer.device)
    row = {
        "step": state.steps_done(steps_per_epoch),
        "epoch": state.epoch + 1,
        "train_loss": totals.interval_nll / totals.interval_count,
        "lr": trainer.lr,
        "grad_norm": state.interval_grad_norm / state.interval_steps,
        "tokens_per_s": totals.interval_count / state.interval_seconds,
    }
    state.close_interval(row)
    steplog.add_scalars(board, row, steplog.STEP_TAGS, row["step"])


def curve_windows(valid_tokens, cfg: TrainConfig) -> torch.Tensor:
    """What each point of the validation curve evaluates (cfg.eval_every > 0): the valid split laid
    out in cfg.batch_size rows, its first cfg.eval_batches windows (0: all), the same every time.
    Its own layout, not eval_batch_size's, so that evaluating saved epochs again leaves it as it was."""
    matrix = batchify(valid_tokens, cfg.batch_size)
    return matrix[:, : cfg.eval_batches * cfg.seq_len + 1] if cfg.eval_batches else matrix


def curve_point(trainer: Trainer, state: TrainingState, curve: torch.Tensor, board, step: int) -> float:
    """Evaluate the curve's windows after `step` optimizer steps (by every process together) and
    keep the point in state; returns the seconds that took."""
    started = time.perf_counter()
    nll, count = evaluate(trainer.model, curve, trainer.cfg.seq_len, trainer.dtype)
    point = state.add_curve_point(step, nll / count)
    steplog.add_scalars(board, point, steplog.CURVE_TAGS, step)
    return time.perf_counter() - started


def epoch_metrics(trainer: Trainer, totals: TrainingState, eval_splits: dict) -> dict:
    """One metrics row: the epoch's training loss (dropout on) and speed from `totals` (over all
    processes), the valid and test loss measured now, the learning rate after the epoch's last step."""
    nll_sum, count, seconds = totals.nll_sum, totals.count, totals.epoch_seconds
    row = {"epoch": totals.epoch + 1, "train_loss": nll_sum / count, "train_ppl": perplexity(nll_sum, count)}
    elapsed = (totals.history[-1]["elapsed_s"] if totals.history else 0.0) + seconds
    row |= evaluate_splits(trainer, eval_splits)
    return row | {"lr": trainer.lr, "tokens_per_s": count / seconds, "elapsed_s": elapsed}


def evaluate_splits(trainer: Trainer, eval_splits: dict) -> dict:
    row = {}
    for split, matrix in eval_splits.items():
        nll, n = evaluate(trainer.model, matrix, trainer.cfg.seq_len, trainer.dtype)
        row[f"{split}_loss"], row[f"{split}_ppl"] = nll / n, perplexity(nll, n)
    return row


def at(state: TrainingState) -> str:
    return f"in epoch {state.epoch + 1}, by step {state.step}"


def position(path: Path, state: TrainingState) -> str:
    """A checkpoint file and the point of training it holds."""
    if state.step == 0:
        return f"{path} (end of epoch {state.epoch})"
    return f"{path} (epoch {state.epoch + 1}, step {state.step})"
