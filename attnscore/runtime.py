"""Where and how a job runs: the device, the autocast precision, the processes of a distributed
run (rank, world, sums, each one's rows, stop signals caught), and the device's name and peak FLOPs."""

import functools
import os
import platform
import re
import signal
from contextlib import contextmanager, nullcontext
from pathlib import Path

import torch
import torch.distributed as dist

# Dense bf16/fp16 tensor-core peaks from NVIDIA's datasheets, matched against the device name
# in this order. For other devices MFU is reported only with benchmark.peak_tflops set.
PEAK_TFLOPS = [("H100 PCIe", 756.0), ("H100 NVL", 835.0), ("H100", 989.0), ("H200", 989.0), ("A100", 312.0)]


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


def all_gather(obj) -> list:
    """One picklable object from every process, in rank order ([obj] in a single process)."""
    world = rank_and_world()[1]
    if world == 1:
        return [obj]
    gathered = [None] * world
    dist.all_gather_object(gathered, obj)
    return gathered


def barrier() -> None:
    if rank_and_world()[1] > 1:
        dist.barrier()


def shard_rows(matrix: torch.Tensor) -> torch.Tensor:
    """This process's share of a batchified split's rows: distinct windows, equal sizes."""
    rank, world = rank_and_world()
    rows = matrix.shape[0] // world
    return matrix[rank * rows : (rank + 1) * rows]


def check_device(name: str, processes: int = 1) -> None:
    """Fail, naming the key, unless this machine has the GPUs train.device and train.processes ask for."""
    if name == "cpu" or name == "auto" and not torch.cuda.is_available():
        return
    count = torch.cuda.device_count()
    visible = os.environ.get("CUDA_VISIBLE_DEVICES")
    masked = f" (CUDA_VISIBLE_DEVICES={visible})" if visible is not None else ""
    has = f"this machine has {count or 'no'} CUDA GPU{'' if count == 1 else 's'}{masked}"
    if int(name.partition(":")[2] or 0) >= count:
        raise RuntimeError(f"train.device is {name!r} but {has}; set train.device to 'auto', 'cpu' or a GPU it has")
    if processes > count:
        raise RuntimeError(f"train.processes={processes} needs one GPU per process but {has}; lower train.processes")


def pick_device(name: str = "auto") -> torch.device:
    if name == "auto":
        name = "cuda" if torch.cuda.is_available() else "cpu"
    check_device(name, rank_and_world()[1])
    if name == "cuda" and rank_and_world()[1] > 1:  # one GPU per process, as torchrun numbers them
        return torch.device("cuda", int(os.environ.get("LOCAL_RANK", 0)))
    return torch.device(name)


@functools.cache
def cpu_info() -> str:
    """The text of /proc/cpuinfo; empty where there is none (not Linux)."""
    try:
        return Path("/proc/cpuinfo").read_text()
    except OSError:
        return ""


def cpu_has_fast_bf16() -> bool:
    """Whether the CPU multiplies bf16 natively (AVX512-BF16 or AMX): there bf16 autocast trains
    faster than fp32 (benchmarks/README.md); elsewhere bf16 is emulated and slower, so fp32 stays."""
    return "avx512_bf16" in cpu_info() or "amx_bf16" in cpu_info()


def autocast_dtype(device: torch.device, precision: str = "auto"):
    """The autocast dtype for a device and precision setting; None means plain fp32. auto: on CUDA
    bf16 where supported, else fp16 (with a grad scaler); on CPU bf16 if cpu_has_fast_bf16, else fp32."""
    if precision == "auto":
        if device.type == "cuda":
            return torch.bfloat16 if torch.cuda.is_bf16_supported() else torch.float16
        return torch.bfloat16 if cpu_has_fast_bf16() else None
    return {"fp32": None, "bf16": torch.bfloat16, "fp16": torch.float16}[precision]


def autocast(device: torch.device, dtype):  # dtype: autocast_dtype's choice
    return nullcontext() if dtype is None else torch.autocast(device.type, dtype=dtype)


def to_device(tensor: torch.Tensor, device: torch.device) -> torch.Tensor:
    """A batch on the device; to a GPU from pinned memory, without waiting for the copy."""
    if device.type == "cuda":
        return tensor.pin_memory().to(device, non_blocking=True)
    return tensor.to(device)


def device_name(device: torch.device) -> str:
    """The GPU's name, or the CPU's model and the threads torch uses."""
    if device.type == "cuda":
        return torch.cuda.get_device_name(device)
    names = re.findall(r"^model name[^:]*:(.*)$", cpu_info(), re.MULTILINE)
    model = names[0].strip() if names else platform.processor() or "CPU"
    return f"{model} ({torch.get_num_threads()} threads)"


def peak_flops(name: str, dtype, override_tflops=None) -> float | None:
    """The device's dense peak FLOP/s for MFU: the override, else a known NVIDIA GPU's in bf16/fp16."""
    if override_tflops:
        return override_tflops * 1e12
    if dtype not in (torch.bfloat16, torch.float16):
        return None
    return next((tflops * 1e12 for key, tflops in PEAK_TFLOPS if key in name), None)


@contextmanager
def signals_to(handler):
    """While in the block, SIGTERM and SIGINT call handler(signum, frame) instead of stopping the process."""
    handlers = {sig: signal.signal(sig, handler) for sig in (signal.SIGTERM, signal.SIGINT)}
    try:
        yield
    finally:
        for sig, old in handlers.items():
            signal.signal(sig, old)
