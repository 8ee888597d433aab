"""The Trainer: a model, its optimizer, learning-rate schedule and mixed-precision settings, one
object to step, to save (state_dict) and to load (load_state_dict), as PyTorch's own are; and its
divergence check: a NaN or inf loss or weight, or a loss worse than guessing uniformly over the
vocabulary, stops the run before a checkpoint of it is saved, saying what to change."""

import math
from dataclasses import dataclass

import torch
from torch.nn.parallel import DistributedDataParallel

from attnscore.files import Explained
from attnscore.model import DecoderLM, ModelConfig
from attnscore.runtime import autocast, autocast_dtype, pick_device, rank_and_world


@dataclass
class TrainConfig:
    """The config's train section (config/config.yaml says what each key does) and the run's
    seed. No defaults: whoever makes one names every setting."""

    seq_len: int
    batch_size: int
    eval_batch_size: int
    epochs: int
    lr: float  # the peak learning rate
    betas: tuple
    eps: float
    weight_decay: float
    grad_clip: float  # 0 = off
    optimizer: str  # adam (weight_decay is L2 on every weight) | adamw (parameter_groups)
    schedule: str  # constant | cosine: lr_factor
    warmup_steps: int  # linear warm-up over the first steps; 0 = none
    min_lr_ratio: float  # cosine: the last step's learning rate as a fraction of lr
    device: str  # auto | cpu | cuda | cuda:N
    precision: str  # auto | fp32 | bf16 | fp16
    compile: bool  # torch.compile the model
    processes: int  # >1: DistributedDataParallel under torchrun, one process per GPU (or CPU share)
    checkpoint_every: int  # also save every N steps within an epoch; 0 = at epoch ends only
    log_every: int  # steps between rows of the per-step log (steps.csv, TensorBoard), and at epoch ends
    max_steps_per_epoch: int  # 0 = the whole split; >0 truncates epochs (debugging only)
    eval_every: int  # steps between points of the validation curve; 0 = each epoch's validation loss
    eval_batches: int  # windows of batch_size rows of the valid split each point evaluates; 0 = all
    seed: int


class TrainingDiverged(Explained, RuntimeError):
    """A NaN or inf loss or weight, or a loss worse than a uniform guess; the last good checkpoint is kept."""


# Nats per token above a uniform guess (log of the vocabulary) that only a diverged run reaches:
# an untrained model starts well within that of it.
DIVERGED_ABOVE_UNIFORM = 1.0


def lr_factor(step: int, cfg: TrainConfig, total_steps: int) -> float:
    """The learning rate of optimizer step `step` (0: the run's first) as a fraction of cfg.lr: a
    linear warm-up over cfg.warmup_steps, then 1 (constant; the reference, without warm-up) or a half
    cosine down to cfg.min_lr_ratio at the run's last step, total_steps - 1 (nanoGPT's, GPT-3's)."""
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


def gradient_norm(parameters) -> torch.Tensor:
    """The 2-norm of all gradients together, as clip_grad_norm_ measures it, without clipping."""
    grads = [p.grad for p in parameters if p.grad is not None]
    if hasattr(torch.nn.utils, "get_total_norm"):  # torch >= 2.6
        return torch.nn.utils.get_total_norm(grads)
    return torch.linalg.vector_norm(torch.stack([torch.linalg.vector_norm(g) for g in grads]))


class Trainer:
    """A model, its optimizer, learning-rate schedule and grad scaler. `total_steps` (the run's
    optimizer steps) is where a cosine schedule ends."""

    def __init__(self, model_cfg: ModelConfig, cfg: TrainConfig, total_steps: int):
        self.cfg = cfg
        self.device = pick_device(cfg.device)
        torch.manual_seed(cfg.seed)
        self.model = DecoderLM(model_cfg).to(self.device)
        self.dtype = autocast_dtype(self.device, cfg.precision)
        params, optimizer = self.model.parameters(), torch.optim.Adam
        if cfg.optimizer == "adamw":  # each group sets its own weight decay
            params, optimizer = parameter_groups(self.model, cfg.weight_decay), torch.optim.AdamW
        # Fused: one pass over all parameters per step.
        self.optimizer = optimizer(
            params, lr=cfg.lr, betas=tuple(cfg.betas), eps=cfg.eps, weight_decay=cfg.weight_decay, fused=True
        )
        # Sets each step's learning rate to cfg.lr x lr_factor (exactly cfg.lr for the reference).
        self.scheduler = torch.optim.lr_scheduler.LambdaLR(
            self.optimizer, lambda step: lr_factor(step, cfg, total_steps)
        )
        self.scaler = torch.amp.GradScaler(self.device.type, enabled=self.dtype == torch.float16)
        # The state is self.model's; DDP and the compiled wrapper only run it.
        net = self.model
        if rank_and_world()[1] > 1:
            torch.manual_seed(cfg.seed + rank_and_world()[0])  # same initial weights, each its own dropout masks
            net = DistributedDataParallel(net, device_ids=[self.device.index] if self.device.type == "cuda" else None)
        self.forward = torch.compile(net) if cfg.compile else net

    PARTS = ("model", "optimizer", "scheduler", "scaler")  # state_dict holds each one's under its name

    def state_dict(self) -> dict:
        return {name: getattr(self, name).state_dict() for name in self.PARTS}

    def load_state_dict(self, state: dict) -> None:
        for name in self.PARTS:
            getattr(self, name).load_state_dict(state[name])

    @property
    def lr(self) -> float:
        """The learning rate the next step takes (the scheduler's, as set after the last step)."""
        return self.scheduler.get_last_lr()[0]

    def step(self, x, y) -> tuple[torch.Tensor, torch.Tensor]:
        """One optimisation step on a window; returns the summed NLL and the gradient's norm
        before clipping, both left on the device (reading them would wait for it)."""
        with autocast(self.device, self.dtype):
            nll = self.forward(x, y)
        self.scaler.scale(nll / y.numel()).backward()
        self.scaler.unscale_(self.optimizer)  # the gradient's own scale (nothing to do without fp16)
        if self.cfg.grad_clip > 0:
            norm = torch.nn.utils.clip_grad_norm_(self.model.parameters(), self.cfg.grad_clip)
        else:
            norm = gradient_norm(self.model.parameters())
        self.scaler.step(self.optimizer)
        self.scaler.update()
        self.scheduler.step()
        self.optimizer.zero_grad(set_to_none=True)
        return nll.detach(), norm.detach()

    def check_sane(self, what: str, value: float, *, where: str, kept: str | None, bounded=True) -> None:
        """Stop at a NaN or inf value, or (`bounded`: a loss) one worse than a uniform guess over the
        vocabulary by DIVERGED_ABOVE_UNIFORM nats, saying where it was seen, with which kind, learning
        rate and precision, which good checkpoint is kept, and what may help."""
        uniform = math.log(self.model.cfg.vocab_size)
        if math.isfinite(value) and not (bounded and value > uniform + DIVERGED_ABOVE_UNIFORM):
            return
        if math.isfinite(value):
            problem = f"is {value:.4g} nats/token, worse than a uniform guess ({uniform:.2f}) by over {DIVERGED_ABOVE_UNIFORM:g}"
        else:
            problem = "became NaN/inf"
        keeps = f"the last good checkpoint, {kept}, is kept" if kept else "there is no earlier checkpoint of this run"
        precision = {torch.bfloat16: "bf16", torch.float16: "fp16"}.get(self.dtype, "fp32")
        fp16 = ", or use precision bf16 or fp32 (fp16 overflows first)" if precision == "fp16" else ""
        raise TrainingDiverged(
            f"the run diverged: {what} {problem} {where}; {keeps}. Attention kind {self.model.cfg.attention!r} at "
            f"train.lr={self.cfg.lr:g}, precision {precision}: lower train.lr{fp16}, or check the kind's numerics"
        )

    def check_losses(self, row: dict, where: str, kept: str | None) -> None:
        for split, name in (("train", "training"), ("valid", "validation"), ("test", "test")):
            self.check_sane(f"the {name} loss", row[f"{split}_loss"], where=where, kept=kept)

    def check_weights(self, where: str, kept: str | None) -> None:
        """The largest absolute weight is finite only if every weight is."""
        largest = torch.stack([p.detach().abs().max().float() for p in self.model.parameters()]).max().item()
        self.check_sane("a model weight", largest, where=where, kept=kept, bounded=False)
