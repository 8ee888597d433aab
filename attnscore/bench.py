"""What a kind costs: training steps and the attention op alone, timed in interleaved rounds.

A round times every kind once per shape, in an order rotated by the round's number, so that a
drift of the machine falls on every kind alike (attnscore.timings pairs the rounds). Each (kind,
shape) is measured in a fresh process, so that its peak memory is its own and running out of
memory is a row that says so. The processes come from a forkserver that has imported torch and
this package: none imports torch again or inherits threads or a CUDA context. A script calling
run_round must guard its own code with ``if __name__ == "__main__":``.
"""

import importlib.metadata
import multiprocessing
import os
import resource
import statistics
import time
from concurrent.futures import ProcessPoolExecutor
from concurrent.futures.process import BrokenProcessPool
from dataclasses import dataclass, replace

import torch

from attnscore.attention import Unsupported
from attnscore.kinds import CONTROLS
from attnscore.model import ModelConfig, SelfAttention, training_flops_per_token
from attnscore.runtime import device_name, peak_flops, to_device
from attnscore.trainer import TrainConfig, Trainer

# What each measuring process needs imported, imported once: the first optimizer a process makes
# imports torch._dynamo, which is slow.
_FORKSERVER = multiprocessing.get_context("forkserver")
_FORKSERVER.set_forkserver_preload(["attnscore.bench", "torch._dynamo"])
try:
    TRITON = importlib.metadata.version("triton")
except importlib.metadata.PackageNotFoundError:
    TRITON = None
SEED = 1234  # the initial weights and the random tokens: the same for every kind and round


@dataclass(frozen=True)
class Timing:
    """What a round measures and how: the config's train keys of the timing role and its benchmark keys."""

    batch_size: int
    device: str
    precision: str
    compile: bool
    seq_lens: list
    warmup_steps: int
    steps: int
    peak_tflops: float | None


def step_config(*, seq_len: int, batch_size: int, device: str, precision: str, compile: bool) -> TrainConfig:
    """The step a measurement times: the reference recipe's (Adam at a constant learning rate) whatever
    the run trains with, since a step costs the same at any learning rate."""
    return TrainConfig(
        seq_len=seq_len, batch_size=batch_size, eval_batch_size=batch_size, epochs=1, lr=1e-5, betas=(0.9, 0.98),
        eps=1e-9, weight_decay=0.0, grad_clip=0.0, optimizer="adam", schedule="constant", warmup_steps=0,
        min_lr_ratio=0.1, device=device, precision=precision, compile=compile, processes=1, checkpoint_every=0,
        log_every=1, max_steps_per_epoch=0, eval_every=0, eval_batches=0, seed=SEED,
    )  # fmt: skip


def round_order(kinds: list, round_number: int) -> list:
    """The kinds in the order round `round_number` (from 1) times them."""
    shift = (round_number - 1) % len(kinds)
    return kinds[shift:] + kinds[:shift]


def time_calls(fn, warmup: int, repeats: int, device: torch.device) -> list[float]:
    """Seconds of each of `repeats` calls of fn() after `warmup` untimed ones (CUDA events on CUDA)."""
    for _ in range(warmup):
        fn()
    if device.type != "cuda":
        times = []
        for _ in range(repeats):
            start = time.perf_counter()
            fn()
            times.append(time.perf_counter() - start)
        return times
    torch.cuda.synchronize(device)
    events = [(torch.cuda.Event(enable_timing=True), torch.cuda.Event(enable_timing=True)) for _ in range(repeats)]
    for start, end in events:
        start.record()
        fn()
        end.record()
    torch.cuda.synchronize(device)
    return [start.elapsed_time(end) / 1000 for start, end in events]


def cpu_wait_seconds() -> float | None:
    """Seconds this process's threads have spent runnable but waiting for a CPU (Linux's
    per-thread schedstat), or None where the system does not say. Only other work on the cores
    makes a thread wait so: a kind that sleeps, blocks or waits for a device is not runnable."""
    if not os.path.exists("/proc/self/schedstat"):
        return None
    total = 0
    for thread in os.listdir("/proc/self/task"):
        try:
            with open(f"/proc/self/task/{thread}/schedstat") as f:
                total += int(f.read().split()[1])
        except (OSError, IndexError, ValueError):  # a thread that ended meanwhile
            continue
    return total / 1e9


def measure(model_cfg: ModelConfig, timing: Timing, seq_len: int) -> dict:
    """Time training steps (step_config) on random tokens, then the first layer's attention op alone."""
    model_cfg = replace(model_cfg, max_seq_len=max(model_cfg.max_seq_len, seq_len))
    cfg = step_config(
        seq_len=seq_len, batch_size=timing.batch_size, device=timing.device, precision=timing.precision,
        compile=timing.compile,
    )  # fmt: skip
    trainer = Trainer(model_cfg, cfg, total_steps=timing.warmup_steps + timing.steps)
    device = trainer.device
    generator = torch.Generator().manual_seed(SEED)
    tokens = torch.randint(model_cfg.vocab_size, (timing.batch_size, seq_len + 1), generator=generator)
    x, y = to_device(tokens[:, :-1], device), to_device(tokens[:, 1:], device)
    if device.type == "cuda":
        torch.cuda.reset_peak_memory_stats(device)
    waited, started = cpu_wait_seconds(), time.perf_counter()
    times = time_calls(lambda: trainer.step(x, y), timing.warmup_steps, timing.steps, device)
    # On a CPU, the share of the steps' time this process's threads waited for a core that other
    # processes held (the statistics leave rounds with such contention out, and say so).
    cpu_wait = None
    if device.type == "cpu" and waited is not None:
        cpu_wait = (cpu_wait_seconds() - waited) / ((time.perf_counter() - started) * torch.get_num_threads())
    if device.type == "cuda":  # the step's peak: the op below allocates less
        peak_mib, memory_kind = torch.cuda.max_memory_allocated(device) / 2**20, "cuda max allocated"
    else:
        peak_mib, memory_kind = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024, "process max RSS"
    name, dtype = device_name(device), trainer.dtype or torch.float32
    step_s = statistics.median(times)
    tokens_per_s = timing.batch_size * seq_len / step_s
    peak = peak_flops(name, dtype, timing.peak_tflops)
    return {
        "step_ms": 1000 * step_s,
        "step_ms_min": 1000 * min(times),
        "step_ms_max": 1000 * max(times),
        "tokens_per_s": tokens_per_s,
        "mfu": training_flops_per_token(model_cfg, seq_len) * tokens_per_s / peak if peak else None,
        "cpu_wait": cpu_wait,
        "peak_memory_mib": peak_mib,
        "memory_kind": memory_kind,
        **measure_attention(trainer.model.blocks[0].attn, timing, seq_len, dtype),
        "device": name,
        "dtype": str(dtype).removeprefix("torch."),
        "params": trainer.model.num_params(),
    }


def measure_attention(attn: SelfAttention, timing: Timing, seq_len: int, dtype) -> dict:
    """Time the op alone, forward and backward, on q, k, v as the model makes them (permuted views of one
    projection), with its dropout and dtype."""
    b, t, heads = timing.batch_size, seq_len, attn.n_heads
    head_dim = attn.qkv.in_features // heads
    device = attn.qkv.weight.device
    generator = torch.Generator().manual_seed(SEED)
    qkv = torch.randn(b, t, 3, heads, head_dim, generator=generator).to(device, dtype).requires_grad_()
    q, k, v = qkv.permute(2, 0, 3, 1, 4)
    grad = torch.randn(b, heads, t, head_dim, generator=generator).to(qkv)
    times = time_calls(
        lambda: torch.autograd.grad(attn.attend(q, k, v, True, attn.dropout), qkv, grad),
        timing.warmup_steps, timing.steps, device,
    )  # fmt: skip
    return {
        "attention_ms": 1000 * statistics.median(times),
        "attention_shape": f"{b}x{heads}x{t}x{head_dim}",
        "attention_dropout": attn.dropout,
    }


def in_fresh_process(fn, *args) -> dict:
    """fn(*args) in a process of its own: a failure for lack of memory is a status, not a crash."""
    try:
        with ProcessPoolExecutor(1, mp_context=_FORKSERVER) as pool:
            return {**pool.submit(fn, *args).result(), "status": "ok"}
    except BrokenProcessPool:
        return {"status": "killed (likely out of memory)"}
    except Unsupported:
        return {"status": "not supported here"}
    except (torch.OutOfMemoryError, RuntimeError) as err:
        if isinstance(err, torch.OutOfMemoryError) or "not enough memory" in str(err) or "out of memory" in str(err):
            return {"status": "out of memory"}
        raise


def run_round(model_cfgs: dict, timing: Timing, round_number: int) -> list[dict]:
    """A row per seq_len and kind of `model_cfgs` (kind -> ModelConfig), on CUDA with each kind's control (CONTROLS)."""
    if timing.device != "cpu" and torch.cuda.device_count() and TRITON is not None:  # NVML: CUDA stays uninitialised
        model_cfgs = model_cfgs | {
            CONTROLS[kind]: replace(model_cfg, attention=CONTROLS[kind], attention_options={})
            for kind, model_cfg in model_cfgs.items()
            if kind in CONTROLS and CONTROLS[kind] not in model_cfgs
        }
    rows = []
    for seq_len in timing.seq_lens:
        for position, kind in enumerate(round_order(list(model_cfgs), round_number)):
            row = {
                "round": round_number, "position": position, "kind": kind, "seq_len": seq_len,
                "batch_size": timing.batch_size, "warmup_steps": timing.warmup_steps, "timed_steps": timing.steps,
                **in_fresh_process(measure, model_cfgs[kind], timing, seq_len),
                "torch": torch.__version__, "triton": TRITON,
            }  # fmt: skip
            print(row, flush=True)
            rows.append(row)
    return rows
