"""The training loop, with resumable checkpoints and per-epoch metrics.

The resumable state (last.pt, best.pt) lives in a checkpoint folder that is not a Snakemake
output, because Snakemake deletes a failed job's outputs: a killed run picks up from there.
"""

import functools
import hashlib
import json
import math
import os
import shutil
import signal
import subprocess
import sys
import tempfile
import time
from contextlib import nullcontext
from dataclasses import dataclass
from pathlib import Path

import torch
import torch.distributed as dist
from torch.nn.parallel import DistributedDataParallel
from tqdm import tqdm

from attnscore.data import batchify, load_tokens, num_windows, windows
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
    processes: int = 1  # >1: DistributedDataParallel under torchrun, one process per GPU (or CPU share)
    checkpoint_every: int = 0  # also save every N steps within an epoch; 0 = at epoch ends only
    max_steps_per_epoch: int = 0  # 0 = the whole split; >0 truncates epochs (debugging only)


class TrainingInterrupted(RuntimeError):
    """Training stopped on a signal after saving a checkpoint; re-run to resume."""


class TrainingDiverged(RuntimeError):
    """A NaN or inf loss; the last good checkpoint is kept."""


def rank_and_world() -> tuple[int, int]:
    """This process's rank and the number of processes (0, 1 without torch.distributed)."""
    if dist.is_available() and dist.is_initialized():
        return dist.get_rank(), dist.get_world_size()
    return 0, 1


def all_sum(values: list[float], device) -> list[float]:
    """Element-wise sum over all processes (the values themselves in a single process)."""
    if rank_and_world()[1] == 1:
        return values
    tensor = torch.tensor(values, dtype=torch.float64, device=device)
    dist.all_reduce(tensor)
    return tensor.tolist()


def pick_device(name: str = "auto") -> torch.device:
    if name == "auto":
        name = "cuda" if torch.cuda.is_available() else "cpu"
    if name.startswith("cuda") and not torch.cuda.is_available():
        raise RuntimeError(f"train.device is {name!r} but CUDA is not available here; set it to 'auto' or 'cpu'")
    if name == "cuda" and rank_and_world()[1] > 1:  # one GPU per process, as torchrun numbers them
        return torch.device("cuda", int(os.environ.get("LOCAL_RANK", 0)))
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
        # Checkpoints hold self.model's state; DDP and the compiled wrapper only run it.
        net = self.model
        if rank_and_world()[1] > 1:
            net = DistributedDataParallel(net, device_ids=[self.device.index] if self.device.type == "cuda" else None)
        self.forward = torch.compile(net) if cfg.compile else net

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
        """Summed NLL and token count over all windows of a batchified split, over all processes
        (each evaluates its own rows of the matrix, so every process returns the same totals)."""
        self.model.eval()
        total, count = torch.zeros((), device=self.device), 0
        for x, y in windows(shard_rows(matrix), self.cfg.seq_len):
            with self.autocast():
                _, nll = self.model(self.to_device(x), self.to_device(y))
            total += nll
            count += y.numel()
        self.model.train()
        total, count = all_sum([total.item(), count], self.device)
        return total, int(count)


def shard_rows(matrix: torch.Tensor) -> torch.Tensor:
    """This process's share of a batchified split's rows: distinct windows, equal sizes."""
    rank, world = rank_and_world()
    rows = matrix.shape[0] // world
    return matrix[rank * rows : (rank + 1) * rows]


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
    Under torch.distributed each process trains on its own rows of the batch (DDP averages the
    gradients, so the global batch is cfg.batch_size); process 0 logs and writes checkpoints.
    """
    rank, world = rank_and_world()
    log = log if rank == 0 else (lambda *_: None)
    checkpoint_dir = Path(checkpoint_dir)
    tokens = {split: load_tokens(path, model_cfg.vocab_size) for split, path in token_files.items()}
    train_m = shard_rows(batchify(tokens["train"], cfg.batch_size))
    eval_m = {split: batchify(tokens[split], cfg.eval_batch_size) for split in ("valid", "test")}
    # What makes a checkpoint ours: everything but the epoch budget, checkpoint spacing and compile,
    # so raising train.epochs continues a finished run instead of starting over.
    settings = {k: v for k, v in vars(cfg).items() if k not in ("epochs", "checkpoint_every", "compile")}
    run_id = fingerprint(vars(model_cfg), settings, *(Path(p) for p in token_files.values()))
    steps_per_epoch = num_windows(train_m, cfg.seq_len)
    if cfg.max_steps_per_epoch:
        steps_per_epoch = min(steps_per_epoch, cfg.max_steps_per_epoch)

    trainer = Trainer(model_cfg, cfg)
    # nll_sum and count are this process's running sums; checkpoints hold the totals over all
    # processes, which process 0 resumes with (the others start from zero).
    state = {"epoch": 0, "step": 0, "nll_sum": 0.0, "count": 0, "epoch_seconds": 0.0, "history": []}
    last = checkpoint_dir / "last.pt"
    saved = resumable_checkpoint(checkpoint_dir, run_id, cfg.epochs, log)
    if saved:
        trainer.model.load_state_dict(saved["model"])
        trainer.optimizer.load_state_dict(saved["optimizer"])
        trainer.scaler.load_state_dict(saved["scaler"])
        torch.set_rng_state(saved["rng_cpu"][rank])
        if trainer.device.type == "cuda" and saved["rng_cuda"]:
            torch.cuda.set_rng_state(saved["rng_cuda"][rank], trainer.device)
        state = {key: saved[key] for key in state}
        if rank:
            state.update(nll_sum=0.0, count=0)
        log(f"resuming at epoch {state['epoch'] + 1}, step {state['step']}")

    def checkpoint(path=last):
        """Save the state of every process (run by all of them together; process 0 writes)."""
        nll_sum, count = all_sum([state["nll_sum"], state["count"]], trainer.device)
        if not math.isfinite(nll_sum):
            raise TrainingDiverged(
                f"loss became NaN/inf in epoch {state['epoch'] + 1}, by step {state['step']}; "
                f"the last good checkpoint {last} is kept. Lower train.lr or use precision fp32/bf16"
            )
        rng = {
            "rng_cpu": torch.get_rng_state(),
            "rng_cuda": torch.cuda.get_rng_state(trainer.device) if trainer.device.type == "cuda" else None,
        }
        if world > 1:
            gathered = [None] * world
            dist.all_gather_object(gathered, rng)
        else:
            gathered = [rng]
        if rank == 0:
            save_checkpoint({
                **state, "nll_sum": nll_sum, "count": int(count), "run_id": run_id, "model_config": vars(model_cfg),
                "model": trainer.model.state_dict(), "optimizer": trainer.optimizer.state_dict(),
                "scaler": trainer.scaler.state_dict(), "rng_cpu": [r["rng_cpu"] for r in gathered],
                "rng_cuda": [r["rng_cuda"] for r in gathered] if trainer.device.type == "cuda" else [],
            }, path)  # fmt: skip
        if world > 1:
            dist.barrier()

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
            quiet = rank > 0 or not sys.stderr.isatty()
            bar = tqdm(total=steps_per_epoch, initial=state["step"], desc=f"epoch {epoch}", disable=quiet)
            for step, (x, y) in enumerate(windows(train_m, cfg.seq_len)):
                if step < state["step"]:
                    continue
                if step >= steps_per_epoch:
                    break
                nll_sum += trainer.step(trainer.to_device(x), trainer.to_device(y))
                state["count"] += y.numel()
                state["step"] = step + 1
                bar.update()
                if not quiet and (state["step"] % 20 == 0 or state["step"] == steps_per_epoch):  # .item() syncs
                    seconds = time.perf_counter() - started
                    bar.set_postfix(
                        loss=f"{nll_sum.item() / state['count']:.3f}", tok_s=f"{world * state['count'] / seconds:.0f}"
                    )
                # All processes must stop at the same step: under DDP they agree on it every step.
                stopping = bool(stop) if world == 1 else all_sum([len(stop)], trainer.device)[0] > 0
                every = cfg.checkpoint_every and state["step"] % cfg.checkpoint_every == 0
                if stopping or (every and state["step"] < steps_per_epoch):
                    state["nll_sum"], state["epoch_seconds"] = nll_sum.item(), time.perf_counter() - started
                    checkpoint()
                    if stopping:
                        raise TrainingInterrupted(
                            f"stopped by signal {(stop or ['on another process'])[0]}; checkpoint {last} saved, re-run to resume"
                        )
            bar.close()
            seconds = time.perf_counter() - started
            state["nll_sum"] = nll_sum.item()
            total_nll, total_count = all_sum([state["nll_sum"], state["count"]], trainer.device)
            row = {"epoch": epoch, "train_loss": total_nll / total_count}
            if not math.isfinite(row["train_loss"]):
                checkpoint()  # raises TrainingDiverged without overwriting the good checkpoint
            row["train_ppl"] = math.exp(row["train_loss"])
            for split, matrix in eval_m.items():
                nll, count = trainer.evaluate(matrix)
                row[f"{split}_loss"], row[f"{split}_ppl"] = nll / count, perplexity(nll, count)
            elapsed = (state["history"][-1]["elapsed_s"] if state["history"] else 0.0) + seconds
            lr = trainer.optimizer.param_groups[0]["lr"]
            row.update(lr=lr, tokens_per_s=total_count / seconds, elapsed_s=elapsed)
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
    saved = load_checkpoint(model_path)
    model_cfg = ModelConfig(**saved["model_config"])
    trainer = Trainer(model_cfg, cfg)
    trainer.model.load_state_dict(saved["model"])
    nll, count = trainer.evaluate(batchify(load_tokens(token_file, model_cfg.vocab_size), cfg.eval_batch_size))
    return {
        "loss": nll / count, "perplexity": perplexity(nll, count), "tokens": count,
        "attention": model_cfg.attention, "epoch": saved["epoch"], "device": str(trainer.device),
    }  # fmt: skip


def train_distributed(model_cfg: ModelConfig, cfg: TrainConfig, token_files: dict, checkpoint_dir) -> list[dict]:
    """train() in cfg.processes processes under torchrun (DDP: NCCL on CUDA, gloo on CPU).

    Signals to this process are passed on to torchrun, which passes them to the workers: they
    checkpoint and stop together. Returns process 0's metrics rows.
    """
    with tempfile.TemporaryDirectory() as tmp:
        job, history = Path(tmp) / "job.json", Path(tmp) / "history.json"
        job.write_text(
            json.dumps(
                {
                    "model": vars(model_cfg),
                    "train": vars(cfg),
                    "token_files": {k: str(v) for k, v in token_files.items()},
                    "checkpoint_dir": str(checkpoint_dir),
                }
            )
        )
        threads = max(1, torch.get_num_threads() // cfg.processes)  # CPU workers share the cores
        command = [
            sys.executable,
            "-m",
            "torch.distributed.run",
            "--standalone",
            f"--nproc-per-node={cfg.processes}",
            "-m",
            "attnscore.train",
            str(job),
            str(history),
        ]
        torchrun = subprocess.Popen(command, env={**os.environ, "OMP_NUM_THREADS": str(threads)})
        forward = {
            sig: signal.signal(sig, lambda signum, _: torchrun.send_signal(signum))
            for sig in (signal.SIGTERM, signal.SIGINT)
        }
        try:
            returncode = torchrun.wait()
        finally:
            for sig, handler in forward.items():
                signal.signal(sig, handler)
        if returncode != 0:
            raise RuntimeError(
                f"torchrun with {cfg.processes} processes exited with {returncode}; see the log above. Re-run to resume from {checkpoint_dir}"
            )
        return json.loads(history.read_text())


if __name__ == "__main__":  # a torchrun worker, started by train_distributed()
    job = json.loads(Path(sys.argv[1]).read_text())
    train_cfg = TrainConfig(**job["train"])
    dist.init_process_group("nccl" if pick_device(train_cfg.device).type == "cuda" else "gloo")
    try:
        rows = train(ModelConfig(**job["model"]), train_cfg, job["token_files"], job["checkpoint_dir"])
        if dist.get_rank() == 0:
            Path(sys.argv[2]).write_text(json.dumps(rows))
    finally:
        dist.destroy_process_group()
