"""Several training processes: train() under torchrun with DistributedDataParallel (NCCL on CUDA,
gloo on CPU). train_distributed() starts them; `python -m attnscore.launch JOB HISTORY` is what
each of them runs."""

import json
import os
import subprocess
import sys
import tempfile
from dataclasses import asdict
from pathlib import Path

import torch
import torch.distributed as dist

from attnscore.loop_state import TrainingState
from attnscore.model import ModelConfig
from attnscore.runtime import pick_device, signals_to
from attnscore.train import train
from attnscore.trainer import TrainConfig


def write_job(path, model_cfg: ModelConfig, cfg: TrainConfig, **train_args) -> None:
    """train()'s arguments (token_files, checkpoint_dir, tensorboard_dir) as JSON: what every worker needs."""
    Path(path).write_text(json.dumps({"model_cfg": vars(model_cfg), "cfg": vars(cfg), **train_args}, default=str))


def torchrun_command(processes: int, job, history) -> list[str]:
    """torchrun starting `processes` workers on this machine; process 0 writes the final
    TrainingState (metrics and per-step log) to `history`."""
    run = [sys.executable, "-m", "torch.distributed.run", "--standalone", f"--nproc-per-node={processes}"]
    return [*run, "-m", "attnscore.launch", str(job), str(history)]


def train_distributed(
    model_cfg: ModelConfig, cfg: TrainConfig, *, token_files: dict, checkpoint_dir, tensorboard_dir=None
) -> TrainingState:
    """train() in cfg.processes processes under torchrun (the same arguments, but log: each process
    logs to its own output); returns process 0's TrainingState. Signals to this process are passed
    on to torchrun, which passes them to the workers: they checkpoint and stop together."""
    with tempfile.TemporaryDirectory() as tmp:
        job, history = Path(tmp) / "job.json", Path(tmp) / "history.json"
        write_job(
            job, model_cfg, cfg, token_files=token_files, checkpoint_dir=checkpoint_dir, tensorboard_dir=tensorboard_dir
        )
        threads = max(1, torch.get_num_threads() // cfg.processes)  # CPU workers share the cores
        env = {**os.environ, "OMP_NUM_THREADS": str(threads)}
        torchrun = subprocess.Popen(torchrun_command(cfg.processes, job, history), env=env)
        with signals_to(lambda signum, _: torchrun.send_signal(signum)):
            returncode = torchrun.wait()
        if returncode != 0:
            raise RuntimeError(
                f"torchrun with {cfg.processes} processes exited with {returncode}; see the log above. "
                f"Re-run to resume from {checkpoint_dir}"
            )
        return TrainingState(**json.loads(history.read_text()))


def worker(job_path, history_path) -> None:
    job = json.loads(Path(job_path).read_text())
    model_cfg, cfg = ModelConfig(**job.pop("model_cfg")), TrainConfig(**job.pop("cfg"))
    dist.init_process_group("nccl" if pick_device(cfg.device).type == "cuda" else "gloo")
    try:
        state = train(model_cfg, cfg, **job)
        if dist.get_rank() == 0:
            Path(history_path).write_text(json.dumps(asdict(state)))
    finally:
        dist.destroy_process_group()


if __name__ == "__main__":
    worker(*sys.argv[1:])
