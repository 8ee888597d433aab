"""The training loop, with resumable checkpoints and per-epoch metrics.

The resumable state (last.pt, best.pt) lives in a checkpoint folder that is not a Snakemake
output, because Snakemake deletes a failed job's outputs: a killed run picks up from there.
"""

import functools
import hashlib
import json
import math
import shutil
import signal
import sys
import time
from contextlib import nullcontext
from dataclasses import dataclass
from pathlib import Path

import torch
from tqdm import tqdm

from attnscore.data import batchify, num_windows, windows
from attnscore.io import atomic_path
from attnscore.model import DecoderLM, ModelConfig


@dataclass
class TrainConfig:
    seq_len: int = 512
    batch_size: int = 8
    eval_batch_size: int = 8
    epochs: int = 20
    lr: float = 1e-5
    betas: tuple = (0.9, 0.98)
    eps: float = 1e-9
    weight_decay: float = 0.0
    grad_clip: float = 0.0  # 0 = off, as in the reference
    seed: int = 1234
    device: str = "auto"  # auto | cpu | cuda | cuda:N
    precision: str = "auto"  # auto | fp32 | bf16 | fp16
    compile: bool = False  # torch.compile the model
    checkpoint_every: int = 0  # also save every N steps within an epoch; 0 = at epoch ends only
    max_steps_per_epoch: int = 0  # 0 = the whole split; >0 truncates epochs (debugging only)


class TrainingInterrupted(RuntimeError):
    """Training stopped on a signal after saving a checkpoint; re-run to resume."""


class TrainingDiverged(RuntimeError):
    """A NaN or inf loss; the last good checkpoint is kept."""


def pick_device(name: str = "auto") -> torch.device:
    if name == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    if name.startswith("cuda") and not torch.cuda.is_available():
        raise RuntimeError(f"train.device is {name!r} but CUDA is not available here; set it to 'auto' or 'cpu'")
    return torch.device(name)


@functools.cache
def cpu_has_fast_bf16() -> bool:
    """Whether the CPU multiplies bf16 natively (AVX512-BF16 or AMX), read from /proc/cpuinfo.

    There bf16 autocast trains the reference model about 1.6x faster than fp32 (2 cores, AMD EPYC
    with AVX512-BF16); elsewhere bf16 is emulated and slower, so fp32 stays.
    """
    try:
        flags = Path("/proc/cpuinfo").read_text()
    except OSError:
        return False
    return "avx512_bf16" in flags or "amx_bf16" in flags


def autocast_dtype(device: torch.device, precision: str = "auto"):
    """The autocast dtype for a device and precision setting; None means plain fp32.

    auto: on CUDA bf16 where supported, else fp16 (with a grad scaler); on CPU bf16 where the
    processor has native bf16 (cpu_has_fast_bf16), else fp32.
    """
    if precision == "auto":
        if device.type == "cuda":
            return torch.bfloat16 if torch.cuda.is_bf16_supported() else torch.float16
        return torch.bfloat16 if cpu_has_fast_bf16() else None
    return {"fp32": None, "bf16": torch.bfloat16, "fp16": torch.float16}[precision]


class Trainer:
    """A model, its optimizer and its mixed-precision settings: one object to step and to save."""

    def __init__(self, model_cfg: ModelConfig, cfg: TrainConfig):
        self.cfg = cfg
        self.device = pick_device(cfg.device)
        torch.manual_seed(cfg.seed)
        self.model = DecoderLM(model_cfg).to(self.device)
        fused = self.device.type == "cuda"
        self.optimizer = torch.optim.Adam(
            self.model.parameters(), lr=cfg.lr, betas=tuple(cfg.betas), eps=cfg.eps,
            weight_decay=cfg.weight_decay, fused=fused,
        )  # fmt: skip
        self.dtype = autocast_dtype(self.device, cfg.precision)
        self.scaler = torch.amp.GradScaler(self.device.type, enabled=self.dtype == torch.float16)
        # Checkpoints hold self.model's state; the compiled wrapper only runs it.
        self.forward = torch.compile(self.model) if cfg.compile else self.model

    def autocast(self):
        if self.dtype is None:
            return nullcontext()
        return torch.autocast(self.device.type, dtype=self.dtype)

    def to_device(self, tensor):
        if self.device.type == "cuda":
            return tensor.pin_memory().to(self.device, non_blocking=True)
        return tensor.to(self.device)

    def step(self, x, y) -> torch.Tensor:
        """One optimisation step on a window; returns the summed NLL, left on the device."""
        with self.autocast():
            _, nll = self.forward(x, y)
        self.scaler.scale(nll / y.numel()).backward()
        if self.cfg.grad_clip > 0:
            self.scaler.unscale_(self.optimizer)
            torch.nn.utils.clip_grad_norm_(self.model.parameters(), self.cfg.grad_clip)
        self.scaler.step(self.optimizer)
        self.scaler.update()
        self.optimizer.zero_grad(set_to_none=True)
        return nll.detach()

    @torch.no_grad()
    def evaluate(self, matrix: torch.Tensor) -> tuple[float, int]:
        """Summed NLL and token count over all windows of a batchified split."""
        self.model.eval()
        total, count = torch.zeros((), device=self.device), 0
        for x, y in windows(matrix, self.cfg.seq_len):
            with self.autocast():
                _, nll = self.forward(self.to_device(x), self.to_device(y))
            total += nll
            count += y.numel()
        self.model.train()
        return total.item(), count


def perplexity(nll_sum: float, count: int) -> float:
    """Token-weighted perplexity: exp of the total NLL over the total predicted tokens."""
    return math.exp(nll_sum / count)


def fingerprint(*parts) -> str:
    """A short hash of JSON-able settings and files, to tell whether a checkpoint is ours."""
    digest = hashlib.sha256()
    for part in parts:
        if isinstance(part, Path):
            digest.update(part.read_bytes())
        else:
            digest.update(json.dumps(part, sort_keys=True, default=str).encode())
    return digest.hexdigest()[:16]


def save_checkpoint(state: dict, path: Path) -> None:
    with atomic_path(path) as tmp:
        torch.save(state, tmp)


def load_checkpoint(path: Path, map_location="cpu") -> dict:
    """A checkpoint, loaded without running code from it; a damaged file fails clearly."""
    try:
        return torch.load(path, map_location=map_location, weights_only=True)
    except Exception as err:
        reason = str(err).splitlines()[0][:120]
        raise RuntimeError(
            f"{path}: unreadable checkpoint ({type(err).__name__}: {reason}); delete it to start over"
        ) from err


def resumable_checkpoint(checkpoint_dir: Path, run_id: str, epochs: int, log) -> dict | None:
    """The checkpoint to resume from: last.pt, or best.pt if last.pt is damaged; None to start afresh."""
    for name in ("last.pt", "best.pt"):
        path = checkpoint_dir / name
        if not path.exists():
            continue
        try:
            saved = load_checkpoint(path)
        except RuntimeError as err:
            log(f"{err}; trying the previous good checkpoint")
            continue
        if saved["run_id"] != run_id:
            log(f"{path} belongs to other settings or data; starting from scratch")
            return None
        if saved["epoch"] >= epochs:
            log(f"{path} is a finished run of these settings; training again from scratch")
            return None
        log(f"resuming from {path}")
        return saved
    return None


def train(model_cfg: ModelConfig, cfg: TrainConfig, token_files: dict, checkpoint_dir, log=print) -> list[dict]:
    """Train until cfg.epochs, resuming from checkpoint_dir/last.pt when it is ours and unfinished.

    token_files maps train/valid/test to .npy token arrays. Returns one metrics row per epoch.
    """
    from attnscore.data import load_tokens

    checkpoint_dir = Path(checkpoint_dir)
    tokens = {split: load_tokens(path, model_cfg.vocab_size) for split, path in token_files.items()}
    train_m = batchify(tokens["train"], cfg.batch_size)
    eval_m = {split: batchify(tokens[split], cfg.eval_batch_size) for split in ("valid", "test")}
    # What makes a checkpoint ours: everything but the epoch budget, checkpoint spacing and compile,
    # so raising train.epochs continues a finished run instead of starting over.
    settings = {k: v for k, v in vars(cfg).items() if k not in ("epochs", "checkpoint_every", "compile")}
    run_id = fingerprint(vars(model_cfg), settings, *(Path(p) for p in token_files.values()))
    steps_per_epoch = num_windows(train_m, cfg.seq_len)
    if cfg.max_steps_per_epoch:
        steps_per_epoch = min(steps_per_epoch, cfg.max_steps_per_epoch)

    trainer = Trainer(model_cfg, cfg)
    state = {"epoch": 0, "step": 0, "nll_sum": 0.0, "count": 0, "epoch_seconds": 0.0, "history": []}
    last = checkpoint_dir / "last.pt"
    saved = resumable_checkpoint(checkpoint_dir, run_id, cfg.epochs, log)
    if saved:
        trainer.model.load_state_dict(saved["model"])
        trainer.optimizer.load_state_dict(saved["optimizer"])
        trainer.scaler.load_state_dict(saved["scaler"])
        torch.set_rng_state(saved["rng_cpu"])
        if trainer.device.type == "cuda" and saved["rng_cuda"]:
            torch.cuda.set_rng_state_all(saved["rng_cuda"])
        state = {key: saved[key] for key in state}
        log(f"resuming at epoch {state['epoch'] + 1}, step {state['step']}")

    def checkpoint(path=last):
        if not math.isfinite(state["nll_sum"]):
            raise TrainingDiverged(
                f"loss became NaN/inf in epoch {state['epoch'] + 1}, by step {state['step']}; "
                f"the last good checkpoint {last} is kept. Lower train.lr or use precision fp32/bf16"
            )
        save_checkpoint({
            **state, "run_id": run_id, "model_config": vars(model_cfg),
            "model": trainer.model.state_dict(), "optimizer": trainer.optimizer.state_dict(),
            "scaler": trainer.scaler.state_dict(), "rng_cpu": torch.get_rng_state(),
            "rng_cuda": torch.cuda.get_rng_state_all() if trainer.device.type == "cuda" else [],
        }, path)  # fmt: skip

    stop = []
    handlers = {
        sig: signal.signal(sig, lambda signum, _: stop.append(signum)) for sig in (signal.SIGTERM, signal.SIGINT)
    }
    try:
        while state["epoch"] < cfg.epochs:
            epoch = state["epoch"] + 1
            trainer.model.train()
            nll_sum = torch.tensor(state["nll_sum"], device=trainer.device, dtype=torch.float64)
            started = time.perf_counter() - state["epoch_seconds"]
            bar = tqdm(
                total=steps_per_epoch, initial=state["step"], desc=f"epoch {epoch}", disable=not sys.stderr.isatty()
            )
            for step, (x, y) in enumerate(windows(train_m, cfg.seq_len)):
                if step < state["step"]:
                    continue
                if step >= steps_per_epoch:
                    break
                nll_sum += trainer.step(trainer.to_device(x), trainer.to_device(y))
                state["count"] += y.numel()
                state["step"] = step + 1
                bar.update()
                if state["step"] % 20 == 0 or state["step"] == steps_per_epoch:  # syncs, so not every step
                    seconds = time.perf_counter() - started
                    bar.set_postfix(
                        loss=f"{nll_sum.item() / state['count']:.3f}", tok_s=f"{state['count'] / seconds:.0f}"
                    )
                every = cfg.checkpoint_every and state["step"] % cfg.checkpoint_every == 0
                if stop or (every and state["step"] < steps_per_epoch):
                    state["nll_sum"], state["epoch_seconds"] = nll_sum.item(), time.perf_counter() - started
                    checkpoint()
                    if stop:
                        raise TrainingInterrupted(
                            f"stopped by signal {stop[0]}; checkpoint {last} saved, re-run to resume"
                        )
            bar.close()
            seconds = time.perf_counter() - started
            state["nll_sum"] = nll_sum.item()
            row = {"epoch": epoch, "train_loss": state["nll_sum"] / state["count"]}
            if not math.isfinite(row["train_loss"]):
                checkpoint()  # raises TrainingDiverged without overwriting the good checkpoint
            row["train_ppl"] = math.exp(row["train_loss"])
            for split, matrix in eval_m.items():
                nll, count = trainer.evaluate(matrix)
                row[f"{split}_loss"], row[f"{split}_ppl"] = nll / count, perplexity(nll, count)
            elapsed = (state["history"][-1]["elapsed_s"] if state["history"] else 0.0) + seconds
            row.update(
                lr=trainer.optimizer.param_groups[0]["lr"], tokens_per_s=state["count"] / seconds, elapsed_s=elapsed
            )
            log(", ".join(f"{k} {v:.4g}" if isinstance(v, float) else f"{k} {v}" for k, v in row.items()))
            best = min([r["valid_loss"] for r in state["history"]], default=math.inf)
            state.update(epoch=epoch, step=0, nll_sum=0.0, count=0, epoch_seconds=0.0, history=state["history"] + [row])
            checkpoint()
            if row["valid_loss"] < best:
                checkpoint(checkpoint_dir / "best.pt")
    finally:
        for sig, handler in handlers.items():
            signal.signal(sig, handler)
    return state["history"]


def export_best(checkpoint_dir, model_path) -> None:
    """Publish best.pt as the model output by a hard link (a copy across filesystems), atomically."""
    best = Path(checkpoint_dir) / "best.pt"
    with atomic_path(model_path) as tmp:
        Path(tmp).unlink()
        try:
            Path(tmp).hardlink_to(best)
        except OSError:
            shutil.copyfile(best, tmp)


def evaluate_checkpoint(model_path, token_file, cfg: TrainConfig) -> dict:
    """Loss, perplexity and token count of a checkpoint's model on one split."""
    from attnscore.data import load_tokens

    saved = load_checkpoint(model_path)
    model_cfg = ModelConfig(**saved["model_config"])
    trainer = Trainer(model_cfg, cfg)
    trainer.model.load_state_dict(saved["model"])
    nll, count = trainer.evaluate(batchify(load_tokens(token_file, model_cfg.vocab_size), cfg.eval_batch_size))
    return {
        "loss": nll / count, "perplexity": perplexity(nll, count), "tokens": count,
        "attention": model_cfg.attention, "epoch": saved["epoch"], "device": str(trainer.device),
    }  # fmt: skip
