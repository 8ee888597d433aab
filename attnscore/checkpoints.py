"""Training state on disk: saving and loading it, the lock on a checkpoint folder, choosing the
file to resume from, and publishing the best epoch's model as the model output.

Each run (the model, data and training settings that change its weights) has its own folder,
<checkpoint_dir>/<run id>/, so other settings never overwrite it and going back to earlier ones
finds their run again. It is no Snakemake output, because Snakemake deletes a failed job's
outputs: a killed run picks up from there. A run folder holds
- last.pt: the Trainer's state_dict as "trainer", the loop's TrainingState, the evaluation batch
  size the metrics were measured with, the RNG state of every process;
- best.pt: the same at the epoch of the lowest validation loss so far, resumed from when last.pt
  is unreadable;
- epoch<N>.pt: the model alone after epoch N (what evaluation reads), so that a trained run can
  be shortened, evaluated again or published without training;
- settings.json: the settings behind the run id, for people choosing which runs to delete.
"""

import fcntl
import json
import shutil
from contextlib import contextmanager
from dataclasses import asdict
from pathlib import Path

import torch

from attnscore import attention, codeid, identity
from attnscore.files import Explained, atomic_path
from attnscore.loop_state import STATE_FIELDS, TrainingState
from attnscore.runtime import all_gather, barrier, rank_and_world

RUN_KEYS = ("run_id", "epoch", "model_config", "code")  # which run and epoch a file holds (run_record)
MODEL_KEYS = (*RUN_KEYS, "model")
STATE_KEYS = (*RUN_KEYS, "trainer", *STATE_FIELDS, "eval_batch_size", "rng_cpu", "rng_cuda")


class UnreadableCheckpoint(Explained, RuntimeError):
    """A checkpoint file that cannot be used: missing, empty, damaged, incomplete or of another run."""


class CheckpointsInUse(Explained, RuntimeError):
    """Another job is training into the same checkpoint folder."""


def run_settings(model_cfg, cfg) -> dict:
    """What makes this run's weights (attnscore.identity.run_settings), with the code as it is now."""
    return identity.run_settings(vars(model_cfg), vars(cfg), run_code(model_cfg))


def run_code(model_cfg) -> dict:
    """The code that makes this model's weights now (attnscore.codeid.run_code)."""
    return codeid.run_code(model_cfg.attention, attention.source_of(model_cfg.attention, model_cfg.attention_plugins))


def run_folder(checkpoint_dir, model_cfg, cfg, token_files: dict) -> Path:
    return Path(checkpoint_dir) / identity.run_id(run_settings(model_cfg, cfg), token_files)


def epoch_path(folder: Path, epoch: int) -> Path:
    return Path(folder) / f"epoch{epoch}.pt"


@contextmanager
def claim(checkpoint_dir, log):
    """Hold checkpoint_dir for this job: an advisory lock (so a second job training into it
    fails at once), then remove the temporary files that saves killed midway left there."""
    folder = Path(checkpoint_dir)
    folder.mkdir(parents=True, exist_ok=True)
    with open(folder / ".lock", "a") as lock:
        try:
            fcntl.flock(lock, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            raise CheckpointsInUse(
                f"{folder} is in use by another training job; wait for it to end (or stop it), then re-run"
            ) from None
        for stale in folder.rglob(".*.tmp"):
            log(f"removing {stale}, left by a save that was killed midway")
            stale.unlink()
        yield


def run_record(model_cfg, run: str, epoch: int) -> dict:
    """Which run and epoch a checkpoint holds, with the model's config and code."""
    return {"run_id": run, "epoch": epoch, "model_config": vars(model_cfg), "code": run_code(model_cfg)}


def save(trainer, state: TrainingState, run: str, path) -> None:
    """Save the training state (run by every process together: each hands over its RNG state,
    process 0 writes). `state` holds the totals over all processes (TrainingState.totals)."""
    cuda = trainer.device.type == "cuda"
    rng = all_gather({"cpu": torch.get_rng_state(), "cuda": torch.cuda.get_rng_state(trainer.device) if cuda else None})
    if rank_and_world()[0] == 0:
        checkpoint = {
            **run_record(trainer.model.cfg, run, state.epoch), "trainer": trainer.state_dict(), **asdict(state),
            "eval_batch_size": trainer.cfg.eval_batch_size,
            "rng_cpu": [r["cpu"] for r in rng], "rng_cuda": [r["cuda"] for r in rng] if cuda else [],
        }  # fmt: skip
        with atomic_path(path) as tmp:
            torch.save(checkpoint, tmp)
    barrier()


def save_model(model, run: str, epoch: int, folder: Path) -> None:
    """Save the model alone after an epoch, as epoch<N>.pt (process 0): what evaluation reads."""
    if rank_and_world()[0] == 0:
        with atomic_path(epoch_path(folder, epoch)) as tmp:
            torch.save({**run_record(model.cfg, run, epoch), "model": model.state_dict()}, tmp)


def load(path, keys=STATE_KEYS, run: str | None = None, fix: str = "") -> dict:
    """A checkpoint holding `keys` (and of `run`, if given), loaded without running code from it;
    otherwise UnreadableCheckpoint, saying why in a few words, then `fix`."""
    path = Path(path)

    def unreadable(problem: str) -> UnreadableCheckpoint:
        return UnreadableCheckpoint(f"{path} {problem}{fix}")

    try:
        saved = torch.load(path, map_location="cpu", weights_only=True)
    except FileNotFoundError:
        raise unreadable("is missing") from None
    except Exception as err:
        empty = path.stat().st_size == 0
        reason = "the file is empty" if empty else f"damaged or not a PyTorch file: {type(err).__name__}"
        raise unreadable(f"is unreadable ({reason})") from err
    missing = [key for key in keys if key not in saved] if isinstance(saved, dict) else keys
    if missing:
        raise unreadable(f"is not a checkpoint of this workflow (it lacks {', '.join(missing)})")
    if run and saved["run_id"] != run:
        raise unreadable(f"belongs to another run ({saved['run_id']}) than its folder's")
    return saved


def load_epoch(folder: Path, epoch: int) -> dict:
    fix = f", and epoch {epoch} is needed: put it back or delete {folder} to train again"
    return load(epoch_path(folder, epoch), MODEL_KEYS, Path(folder).name, fix)


def find_resumable(folder: Path, log, settings: dict) -> tuple[dict | None, Path | None]:
    """The state to go on from and its file: last.pt, or best.pt if last.pt is unusable; (None,
    None) when the run has none. A new run whose settings differ from another's in code only says
    which code changed."""
    for path in (folder / "last.pt", folder / "best.pt"):
        if path.exists():
            try:
                return load(path, STATE_KEYS, folder.name), path
            except UnreadableCheckpoint as err:
                log(str(err))
    others = sorted(p.parent for p in folder.parent.glob("*/last.pt") if p.parent != folder)
    for other in others:
        try:
            saved = json.loads((other / "settings.json").read_text())
        except (OSError, ValueError):
            continue
        if {**saved, "code": None, "token_files": None} == {**settings, "code": None, "token_files": None}:
            changed = " and ".join(codeid.changes(saved.get("code", {}), settings["code"]))
            log(f"{changed} changed since {other} was trained; training a new run")
    log(f"training from the start in {folder}")
    if others:
        log(f"the checkpoints of other settings, data or code stay in {', '.join(map(str, others))}")
    return None, None


def settings_record(model_cfg, cfg, token_files: dict) -> dict:
    """What a run's settings.json holds: run_settings and the token files."""
    files = {split: str(path) for split, path in token_files.items()}
    return json.loads(json.dumps({**run_settings(model_cfg, cfg), "token_files": files}, default=str))


def restore(trainer, saved: dict) -> TrainingState:
    """Restore the trainer and this process's RNG from a saved state; the loop's state to go on from."""
    rank = rank_and_world()[0]
    trainer.load_state_dict(saved["trainer"])
    torch.set_rng_state(saved["rng_cpu"][rank])
    if trainer.device.type == "cuda" and saved["rng_cuda"]:
        torch.cuda.set_rng_state(saved["rng_cuda"][rank], trainer.device)
    state = TrainingState(**{name: saved[name] for name in STATE_FIELDS})
    if rank:  # the saved totals are process 0's to resume with (TrainingState)
        state.reset(TrainingState.SUMMED)
    return state


def export_best(folder, history: list[dict], model_path) -> None:
    """Publish the model of the epoch of lowest validation loss (the first of equals) as model_path,
    if its file is of this run: a copy, not a hard link, so that damage to an output never reaches
    the checkpoints."""
    epoch = min(history, key=lambda row: row["valid_loss"])["epoch"]
    load_epoch(folder, epoch)
    with atomic_path(model_path) as tmp:
        shutil.copyfile(epoch_path(folder, epoch), tmp)
