"""Resumable training state: what makes a checkpoint ours, saving and loading it, choosing the
one to resume from, and publishing the best as the model output.

The state (last.pt, best.pt) lives in a checkpoint folder that is not a Snakemake output,
because Snakemake deletes a failed job's outputs: a killed run picks up from there. A
checkpoint holds the model, optimizer and grad-scaler states, the loop's position (epoch, step
within it, running loss, seconds) and the RNG state of every process.
"""

import hashlib
import json
import shutil
from pathlib import Path

import torch

from attnscore.io import atomic_path
from attnscore.runtime import all_gather, barrier, rank_and_world

# The loop's position, saved with the model; a fresh run starts here.
START = {"epoch": 0, "step": 0, "nll_sum": 0.0, "count": 0, "epoch_seconds": 0.0, "history": []}


def fingerprint(*parts) -> str:
    """A short hash of JSON-able settings and files, to tell whether a checkpoint is ours."""
    digest = hashlib.sha256()
    for part in parts:
        if isinstance(part, Path):
            digest.update(part.read_bytes())
        else:
            digest.update(json.dumps(part, sort_keys=True, default=str).encode())
    return digest.hexdigest()[:16]


def run_id(model_cfg, cfg, token_files: dict) -> str:
    """What makes a checkpoint ours: the model, the data and every training setting but the epoch
    budget, checkpoint spacing and compile, so raising train.epochs continues a finished run."""
    settings = {k: v for k, v in vars(cfg).items() if k not in ("epochs", "checkpoint_every", "compile")}
    return fingerprint(vars(model_cfg), settings, *(Path(p) for p in token_files.values()))


def save(trainer, state: dict, run: str, path) -> None:
    """Save the training state (run by every process together: each hands over its RNG state,
    process 0 writes). `state` holds the loop's position with the totals over all processes."""
    cuda = trainer.device.type == "cuda"
    rng = all_gather({"cpu": torch.get_rng_state(), "cuda": torch.cuda.get_rng_state(trainer.device) if cuda else None})
    if rank_and_world()[0] == 0:
        checkpoint = {
            **{key: state[key] for key in START}, "run_id": run, "model_config": vars(trainer.model.cfg),
            "model": trainer.model.state_dict(), "optimizer": trainer.optimizer.state_dict(),
            "scaler": trainer.scaler.state_dict(), "rng_cpu": [r["cpu"] for r in rng],
            "rng_cuda": [r["cuda"] for r in rng] if cuda else [],
        }  # fmt: skip
        with atomic_path(path) as tmp:
            torch.save(checkpoint, tmp)
    barrier()


def load(path, map_location="cpu") -> dict:
    """A checkpoint, loaded without running code from it; a damaged file fails clearly."""
    try:
        return torch.load(path, map_location=map_location, weights_only=True)
    except Exception as err:
        reason = str(err).splitlines()[0][:120]
        raise RuntimeError(
            f"{path}: unreadable checkpoint ({type(err).__name__}: {reason}); delete it to start over"
        ) from err


def find_resumable(folder: Path, run: str, epochs: int, log) -> dict | None:
    """The checkpoint to resume from: last.pt, or best.pt if last.pt is damaged; None to start afresh."""
    for name in ("last.pt", "best.pt"):
        path = Path(folder) / name
        if not path.exists():
            continue
        try:
            saved = load(path)
        except RuntimeError as err:
            log(f"{err}; trying the previous good checkpoint")
            continue
        if saved["run_id"] != run:
            log(f"{path} belongs to other settings or data; starting from scratch")
            return None
        if saved["epoch"] >= epochs:
            log(f"{path} is a finished run of these settings; training again from scratch")
            return None
        log(f"resuming from {path}")
        return saved
    return None


def resume(trainer, folder: Path, run: str, epochs: int, log) -> dict:
    """Restore the trainer from the resumable checkpoint, if any; the loop's position to go on from.

    The running loss in a checkpoint is the total over all processes: process 0 resumes with it,
    the others from zero, so the next sum over processes is right again.
    """
    saved = find_resumable(folder, run, epochs, log)
    if saved is None:
        return {**START, "history": []}
    rank = rank_and_world()[0]
    trainer.model.load_state_dict(saved["model"])
    trainer.optimizer.load_state_dict(saved["optimizer"])
    trainer.scaler.load_state_dict(saved["scaler"])
    torch.set_rng_state(saved["rng_cpu"][rank])
    if trainer.device.type == "cuda" and saved["rng_cuda"]:
        torch.cuda.set_rng_state(saved["rng_cuda"][rank], trainer.device)
    state = {key: saved[key] for key in START}
    if rank:
        state.update(nll_sum=0.0, count=0)
    log(f"resuming at epoch {state['epoch'] + 1}, step {state['step']}")
    return state


def export_best(folder, model_path) -> None:
    """Publish best.pt as the model output by a hard link (a copy across filesystems), atomically."""
    best = Path(folder) / "best.pt"
    with atomic_path(model_path) as tmp:
        Path(tmp).unlink()
        try:
            Path(tmp).hardlink_to(best)
        except OSError:
            shutil.copyfile(best, tmp)
