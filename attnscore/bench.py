"""Training-step throughput: warm-up steps, then timed, synchronised steps, one process per shape.

Each (variant, seq_len) runs in a fresh Python process, so peak memory is that shape's own and a
shape that runs out of memory (or is killed for it) is recorded as such instead of ending the run.
"""

import json
import resource
import statistics
import subprocess
import sys
import time
from dataclasses import asdict, replace

import torch

from attnscore.model import ModelConfig, training_flops_per_token
from attnscore.runtime import device_name, peak_flops
from attnscore.train import TrainConfig, Trainer


def measure(model_cfg: ModelConfig, cfg: TrainConfig, warmup: int, steps: int, peak_tflops=None) -> dict:
    """Time `steps` training steps on random tokens after `warmup` untimed ones, in this process."""
    model_cfg = replace(model_cfg, max_seq_len=max(model_cfg.max_seq_len, cfg.seq_len))
    trainer = Trainer(model_cfg, cfg)
    device = trainer.device
    generator = torch.Generator().manual_seed(cfg.seed)
    tokens = torch.randint(model_cfg.vocab_size, (cfg.batch_size, cfg.seq_len + 1), generator=generator)
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
    name, dtype = device_name(device), trainer.dtype or torch.float32
    tokens_per_s = steps * cfg.batch_size * cfg.seq_len / sum(times)
    peak = peak_flops(name, dtype, peak_tflops)
    return {
        "tokens_per_s": tokens_per_s,
        "iters_per_s": steps / sum(times),
        "step_ms_median": 1000 * statistics.median(times),
        "step_ms_min": 1000 * min(times),
        "step_ms_max": 1000 * max(times),
        "mfu": training_flops_per_token(model_cfg, cfg.seq_len) * tokens_per_s / peak if peak else None,
        "peak_memory_mib": peak_mib,
        "memory_kind": memory_kind,
        "device": name,
        "dtype": str(dtype).removeprefix("torch."),
        "params": trainer.model.num_params(),
    }


def benchmark(model_cfg: ModelConfig, cfg: TrainConfig, seq_lens, warmup=3, steps=10, peak_tflops=None) -> list[dict]:
    """One row per seq_len, each measured in its own process; failures become rows that say why."""
    rows = []
    for seq_len in seq_lens:
        job = {
            "model": asdict(model_cfg),
            "train": asdict(replace(cfg, seq_len=seq_len)),
            "warmup": warmup,
            "steps": steps,
            "peak_tflops": peak_tflops,
        }
        row = {
            "variant": model_cfg.attention,
            "seq_len": seq_len,
            "batch_size": cfg.batch_size,
            "warmup_steps": warmup,
            "timed_steps": steps,
            "torch": torch.__version__,
        }
        done = subprocess.run(
            [sys.executable, "-m", "attnscore.bench", json.dumps(job)], capture_output=True, text=True
        )
        sys.stderr.write(done.stderr)
        if done.returncode == 0:
            row.update(json.loads(done.stdout.splitlines()[-1]), status="ok")
        elif "out of memory" in done.stderr.lower():
            row["status"] = "out of memory"
        elif done.returncode == -9:
            row["status"] = "killed by SIGKILL (likely out of memory)"
        else:
            raise RuntimeError(
                f"benchmark of {model_cfg.attention} at seq_len {seq_len} failed:\n{done.stderr[-2000:]}"
            )
        print(row, flush=True)
        rows.append(row)
    return rows


if __name__ == "__main__":  # one shape, run by benchmark(): JSON job in, JSON row out
    job = json.loads(sys.argv[1])
    train_cfg = TrainConfig(**job["train"])
    result = measure(ModelConfig(**job["model"]), train_cfg, job["warmup"], job["steps"], job["peak_tflops"])
    print(json.dumps(result))
