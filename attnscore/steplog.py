"""Watching a run learn: the per-step log's columns (steps.csv, curve.csv), and its rows, each
epoch's validation and test loss and the validation curve as TensorBoard event files, one folder
per run, written while it trains, so that `tensorboard --logdir results/<experiment>/tensorboard`
shows every run of an experiment side by side as <variant>/seed<k>/<run id>. The rows themselves
live in the TrainingState, checkpointed with the weights: a resumed run goes on with them.
"""

from pathlib import Path

# steps.csv's columns: the step (optimizer steps done, counted over the whole run) ending the
# interval, its epoch (from 1), and the interval's measurements.
COLUMNS = ("step", "epoch", "train_loss", "lr", "grad_norm", "tokens_per_s")
STEP_TAGS = {
    "train_loss": "loss/train",
    "lr": "optimizer/lr",
    "grad_norm": "optimizer/grad_norm",
    "tokens_per_s": "speed/tokens_per_s",
}
EPOCH_TAGS = {"valid_loss": "loss/valid", "test_loss": "loss/test"}
CURVE_TAGS = {"valid_loss": "loss/valid_curve"}  # the validation curve's points, with train.eval_every
# curve.csv's columns: the validation curve (train.py: curve_point), and the model FLOPs trained by then.
CURVE_COLUMNS = ("step", "epoch", "valid_loss", "flops")
FLUSH_SECONDS = 10  # how stale a live view can be; saves and epoch ends flush at once


def tensorboard(folder: Path, resumed_step: int, log):
    """The SummaryWriter of one run's event files. A run resumed after `resumed_step` steps purges
    the events a killed process logged after its checkpoint (TensorBoard's purge_step: readers drop
    every event of a later step logged before the restart), so each step shows once; a run starting
    from its first step replaces whatever events its folder held (a run whose checkpoints were
    deleted)."""
    from torch.utils.tensorboard import SummaryWriter  # imports TensorBoard: only runs that train

    if resumed_step == 0:
        for old in sorted(folder.glob("events.out.tfevents.*")):
            log(f"removing {old}: this run starts from its first step")
            old.unlink()
    purge = resumed_step + 1 if resumed_step else None  # the steps up to resumed_step are kept
    return SummaryWriter(str(folder), purge_step=purge, flush_secs=FLUSH_SECONDS)


def add_scalars(board, row: dict, tags: dict, step: int) -> None:
    """The row's values under their tags (STEP_TAGS, EPOCH_TAGS or CURVE_TAGS), at `step`, if there is a board."""
    if board:  # None: not process 0, or no tensorboard_dir
        for key, tag in tags.items():
            board.add_scalar(tag, row[key], step)
