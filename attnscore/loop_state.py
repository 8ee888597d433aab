"""Where the training loop is and what it has measured (TrainingState): the one object train()
steps, checkpoints save (a key per field) and restore."""

from dataclasses import dataclass, field, fields, replace

from attnscore.runtime import all_sum


@dataclass
class TrainingState:
    """Within a process the running sums are its own; in a checkpoint they are the totals over all
    processes (totals()), and on resume process 0 takes them back, the others start from zero."""

    epoch: int = 0  # epochs finished
    step: int = 0  # steps finished within the current epoch
    nll_sum: float = 0.0  # the current epoch's summed training NLL so far
    count: int = 0  # and the tokens it predicted
    epoch_seconds: float = 0.0  # training seconds of the current epoch so far
    # The per-step log's current interval (train.log_every steps, within an epoch), so far:
    interval_nll: float = 0.0  # summed training NLL
    interval_count: int = 0  # tokens predicted
    interval_grad_norm: float = 0.0  # the steps' gradient norms (before clipping), summed
    interval_steps: int = 0
    interval_seconds: float = 0.0
    history: list[dict] = field(default_factory=list)  # one metrics row per finished epoch
    steps: list[dict] = field(default_factory=list)  # one row per logged interval (attnscore.steplog.COLUMNS)
    curve: list[dict] = field(default_factory=list)  # the validation curve: step, epoch, valid_loss

    SUMMED = ("nll_sum", "count", "interval_nll", "interval_count")  # summed over processes in a checkpoint
    INTERVAL = ("interval_nll", "interval_count", "interval_grad_norm", "interval_steps", "interval_seconds")

    def steps_done(self, steps_per_epoch: int) -> int:
        return self.epoch * steps_per_epoch + self.step

    def close_interval(self, row: dict) -> None:
        """The interval is logged: keep its row and start the next one from zero."""
        self.steps = [*self.steps, row]
        self.reset(self.INTERVAL)

    def add_curve_point(self, step: int, valid_loss: float) -> dict:
        """Keep a point of the validation curve, at `step` optimizer steps into the run."""
        point = {"step": step, "epoch": self.epoch + 1, "valid_loss": valid_loss}
        self.curve = [*self.curve, point]
        return point

    def finish_epoch(self, row: dict) -> None:
        """The epoch is done: keep its metrics row and start the next epoch's sums from zero."""
        self.history = [*self.history, row]
        self.epoch = row["epoch"]
        self.reset(("step", "nll_sum", "count", "epoch_seconds", *self.INTERVAL))

    def up_to(self, epochs: int) -> "TrainingState":
        """A copy holding the metrics, per-step rows and curve of the first `epochs` epochs only."""
        steps, curve = ([row for row in rows if row["epoch"] <= epochs] for rows in (self.steps, self.curve))
        return replace(self, history=self.history[:epochs], steps=steps, curve=curve)

    def reset(self, names) -> None:
        for name in names:
            setattr(self, name, type(getattr(self, name))())

    def totals(self, device) -> "TrainingState":
        """A copy holding the sums over all processes (the state itself in a single process)."""
        summed = all_sum([float(getattr(self, name)) for name in self.SUMMED], device)
        return replace(
            self, **{name: type(getattr(self, name))(value) for name, value in zip(self.SUMMED, summed, strict=True)}
        )


STATE_FIELDS = tuple(f.name for f in fields(TrainingState))
