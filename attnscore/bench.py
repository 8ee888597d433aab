"""Training-step throughput at a given shape: warm-up steps, then timed, synchronised steps."""

import platform
import resource
import statistics
import time

import torch

from attnscore.model import ModelConfig
from attnscore.train import TrainConfig, Trainer


def device_name(device: torch.device) -> str:
    if device.type == "cuda":
        return torch.cuda.get_device_name(device)
    model = next(
        (line.split(":", 1)[1].strip() for line in open("/proc/cpuinfo") if line.startswith("model name")), None
    )
    return f"{model or platform.processor() or 'CPU'} ({torch.get_num_threads()} threads)"


def benchmark(model_cfg: ModelConfig, cfg: TrainConfig, warmup: int = 3, steps: int = 10) -> dict:
    """Time `steps` training steps on random tokens after `warmup` untimed ones."""
    trainer = Trainer(model_cfg, cfg)
    device = trainer.device
    tokens = torch.randint(
        model_cfg.vocab_size, (cfg.batch_size, cfg.seq_len + 1), generator=torch.Generator().manual_seed(cfg.seed)
    )
    x, y = trainer.to_device(tokens[:, :-1]), trainer.to_device(tokens[:, 1:])
    sync = torch.cuda.synchronize if device.type == "cuda" else (lambda: None)
    for _ in range(warmup):
        trainer.step(x, y)
    sync()
    if device.type == "cuda":
        torch.cuda.reset_peak_memory_stats(device)
    times = []
    for _ in range(steps):
        start = time.perf_counter()
        trainer.step(x, y)
        sync()
        times.append(time.perf_counter() - start)
    if device.type == "cuda":
        peak_mib, memory_kind = torch.cuda.max_memory_allocated(device) / 2**20, "cuda max allocated"
    else:
        peak_mib, memory_kind = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024, "process max RSS"
    total = sum(times)
    return {
        "variant": model_cfg.attention, "device": device_name(device), "dtype": str(trainer.dtype or torch.float32).removeprefix("torch."),
        "batch_size": cfg.batch_size, "seq_len": cfg.seq_len, "params": trainer.model.num_params(),
        "warmup_steps": warmup, "timed_steps": steps, "iters_per_s": steps / total,
        "tokens_per_s": steps * cfg.batch_size * cfg.seq_len / total, "step_ms_median": 1000 * statistics.median(times),
        "step_ms_min": 1000 * min(times), "peak_memory_mib": peak_mib, "memory_kind": memory_kind, "torch": torch.__version__,
    }  # fmt: skip
