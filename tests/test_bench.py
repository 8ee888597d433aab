"""The throughput benchmark, its FLOP count and the automatic precision choice."""

import json
import os
import signal
import subprocess
import sys
import time
from dataclasses import replace

import pandas as pd
import pytest
import torch
from torch.utils.flop_counter import FlopCounterMode

from attnscore import bench, runtime
from attnscore.model import DecoderLM, ModelConfig, training_flops_per_token
from helpers import ROOT

TINY = ModelConfig(vocab_size=64, d_model=16, n_layers=1, n_heads=2, d_ff=32, max_seq_len=16, attention="euclid")


def test_flop_count_of_the_reference_model():
    cfg = ModelConfig(vocab_size=50257)  # d 512, 6 layers, d_ff 2048
    weights = 6 * (4 * 512 * 512 + 2 * 512 * 2048) + 512 * 50257
    assert weights == 44_605_952
    assert training_flops_per_token(cfg, 512) == 6 * weights + 12 * 6 * 512 * 512 == 286_510_080


def test_flop_count_is_what_torch_counts_in_a_training_step():
    """6 N + 12 L d T per token, dot's count, is exactly the matrix-multiply FLOPs that torch's
    FlopCounterMode sees in a forward and backward pass when attention runs as plain matmuls
    (euclid's autograd Function; the count covers the masked half, as is customary). euclid's
    own count adds its elementwise work per pair (5 a score: attention.register's score_flops),
    three times (forward and backward) per layer, head and position."""
    model_cfg = replace(TINY, n_layers=2, dropout=0.0)
    model = DecoderLM(model_cfg)
    x, y = torch.randint(64, (3, 16)), torch.randint(64, (3, 16))
    with FlopCounterMode(display=False) as counter:
        model(x, y).backward()
    dot_count = training_flops_per_token(replace(model_cfg, attention="dot"), 16)
    assert counter.get_total_flops() == dot_count * x.numel()
    assert training_flops_per_token(model_cfg, 16) == dot_count + 3 * 2 * 16 * 2 * 5


def test_rounds_rotate_the_order_of_the_kinds():
    kinds = ["dot", "euclid", "euclid_naive"]
    orders = [bench.round_order(kinds, r) for r in (1, 2, 3, 4)]
    assert orders[0] == kinds and orders[3] == kinds
    assert orders[1] == ["euclid", "euclid_naive", "dot"] and orders[2] == ["euclid_naive", "dot", "euclid"]
    for position in range(3):  # over a full rotation, each kind takes every position once
        assert sorted(order[position] for order in orders[:3]) == sorted(kinds)


def test_a_round_times_each_kind_and_shape_in_a_fresh_process():
    timing = bench.Timing(
        batch_size=2, device="cpu", precision="fp32", compile=False, seq_lens=[8, 32], warmup_steps=1, steps=3,
        peak_tflops=1.0,
    )  # fmt: skip
    kinds = {kind: replace(TINY, attention=kind) for kind in ("dot", "euclid")}
    started = time.perf_counter()
    rows = bench.run_round(kinds, timing, round_number=2)
    wall_s = time.perf_counter() - started
    assert [(r["round"], r["position"], r["kind"], r["seq_len"], r["status"]) for r in rows] == [
        (2, 0, "euclid", 8, "ok"), (2, 1, "dot", 8, "ok"), (2, 0, "euclid", 32, "ok"), (2, 1, "dot", 32, "ok"),
    ]  # fmt: skip
    assert "dot_triton" not in {r["kind"] for r in rows}  # the control runs on CUDA only
    for row in rows:  # seq_len 32 exceeds the model's max_seq_len: the benchmark widens it
        assert row["step_ms_min"] <= row["step_ms"] <= row["step_ms_max"] and 3 * row["step_ms_min"] / 1000 < wall_s
        assert row["tokens_per_s"] == pytest.approx(2 * row["seq_len"] / row["step_ms"] * 1000)
        assert 0 < row["mfu"] < 1  # against the 1 TFLOP/s given; a tiny model on a CPU does not reach it
        assert row["peak_memory_mib"] > 0 and row["dtype"] == "float32" and "threads" in row["device"]
        assert row["attention_ms"] > 0 and row["attention_shape"] == f"2x2x{row['seq_len']}x8"
        assert row["attention_dropout"] == TINY.dropout
        assert row["cpu_wait"] is None or 0 <= row["cpu_wait"] <= 1


def test_a_thread_that_sleeps_is_not_waiting_for_a_core():
    """The busy-round rule's measure (timings.BUSY_WAIT) counts a thread's time runnable without a
    core, never time it sleeps or blocks: a kind that waits is slow by its own doing."""
    before = bench.cpu_wait_seconds()
    if before is None:
        pytest.skip("this system does not report per-thread run-queue waits (Linux schedstat)")
    time.sleep(0.3)
    assert bench.cpu_wait_seconds() - before < 0.05  # waking up takes microseconds, however busy the cores


def _killed():
    os.kill(os.getpid(), signal.SIGKILL)


def _out_of_memory():
    raise torch.OutOfMemoryError("CUDA out of memory. Tried to allocate 20.00 GiB")


def _pid():
    return {"pid": os.getpid()}


def _broken():
    raise ValueError("a bug, not a lack of memory")


def test_a_measurement_killed_or_out_of_memory_is_a_row_and_other_failures_raise():
    assert bench.in_fresh_process(_killed) == {"status": "killed (likely out of memory)"}
    assert bench.in_fresh_process(_out_of_memory) == {"status": "out of memory"}
    pids = {bench.in_fresh_process(_pid)["pid"] for _ in range(2)}
    assert len(pids) == 2 and os.getpid() not in pids
    with pytest.raises(ValueError, match="a bug"):
        bench.in_fresh_process(_broken)


def test_mfu_needs_a_known_peak():
    assert runtime.peak_flops("NVIDIA H100 80GB HBM3", torch.bfloat16) == 989e12
    assert runtime.peak_flops("NVIDIA H100 PCIe", torch.float16) == 756e12
    assert runtime.peak_flops("NVIDIA H100 80GB HBM3", torch.float32) is None  # no fp32 tensor-core peak
    assert runtime.peak_flops("AMD EPYC (2 threads)", torch.bfloat16) is None
    assert runtime.peak_flops("AMD EPYC (2 threads)", torch.float32, override_tflops=2.0) == 2e12


def test_cpu_precision_auto_follows_native_bf16_support():
    expected = torch.bfloat16 if runtime.cpu_has_fast_bf16() else None
    assert runtime.autocast_dtype(torch.device("cpu"), "auto") == expected
    assert runtime.autocast_dtype(torch.device("cpu"), "fp32") is None
    assert runtime.autocast_dtype(torch.device("cpu"), "bf16") == torch.bfloat16


def test_attention_dropout_defaults_to_dropout_and_can_be_set_apart():
    reference = DecoderLM(ModelConfig(vocab_size=64, dropout=0.1, d_model=16, n_heads=2, n_layers=1, d_ff=16))
    assert reference.blocks[0].attn.dropout == 0.1
    no_attention_dropout = DecoderLM(
        ModelConfig(vocab_size=64, dropout=0.1, attention_dropout=0.0, d_model=16, n_heads=2, n_layers=1, d_ff=16)
    )
    assert no_attention_dropout.blocks[0].attn.dropout == 0.0 and no_attention_dropout.blocks[0].drop.p == 0.1


def gpu_timing(out, *args) -> subprocess.CompletedProcess:
    script = ROOT / "benchmarks" / "gpu_timing.py"
    return subprocess.run(
        [sys.executable, script, "--smoke", "--out", out, *args], capture_output=True, text=True, timeout=600
    )


@pytest.mark.slow
def test_gpu_timing_script_runs_on_cpu_in_smoke_mode(tmp_path):
    """The GPU script is run rarely and on borrowed time: make sure it works before a GPU is at hand."""
    done = gpu_timing(tmp_path, "--steps", "2", "--compile-workers", "1")
    assert done.returncode == 0, done.stdout[-3000:] + done.stderr[-3000:]
    attention = pd.read_csv(tmp_path / "attention.csv")
    assert set(attention["stage"]) == {"attention", "tma", "head_dim_128"} and attention["tflops"].gt(0).all()
    assert set(attention["kind"]) == {"dot", "dot_triton", "euclid", "euclid_naive", "dot_triton_tma", "euclid_tma"}
    training = pd.read_csv(tmp_path / "training.csv")
    assert set(training["kind"]) == {"dot", "euclid"} and set(training["attention_dropout"]) == {0.0, 0.1}
    assert training["tokens_per_s"].gt(0).all() and training["peak_memory_mib"].gt(0).all()
    environment = json.loads((tmp_path / "environment.json").read_text())
    assert {"card", "driver", "torch", "triton", "date", "seconds"} <= set(environment)
    assert environment["compile_cases"] > 0 and environment["compile_failures"] == 0
    assert (tmp_path / "autotune.csv").exists()
    summary = (tmp_path / "summary.md").read_text()
    assert "## Targets" in summary
    assert "euclid time / dot_triton's" in summary and "dot_triton_tma time / dot_triton's" in summary


@pytest.mark.slow
def test_gpu_timing_skips_what_the_time_budget_leaves_no_time_for(tmp_path):
    done = gpu_timing(tmp_path, "--budget", "0", "--stages", "tma,training", "--compile-workers", "0")
    assert done.returncode == 0, done.stdout[-3000:] + done.stderr[-3000:]
    for name in ("attention.csv", "training.csv"):
        assert pd.read_csv(tmp_path / name)["status"].eq("skipped: time budget").all()
    assert set(pd.read_csv(tmp_path / "attention.csv")["stage"]) == {"tma"}
    rows = len(pd.read_csv(tmp_path / "attention.csv")) + len(pd.read_csv(tmp_path / "training.csv"))
    assert f"rows skipped for the time budget: {rows}" in (tmp_path / "summary.md").read_text()


@pytest.mark.slow
def test_kind_costs_script_measures_a_plugin_kind_against_dot(tmp_path):
    """benchmarks/kind_costs.py end to end, on the known kinds: its tables and sentences."""
    command = [sys.executable, "benchmarks/kind_costs.py", "--plugins", "known_kinds", "--kinds", "dot", "dot_double",
               "--rounds", "2", "--warmup", "1", "--steps", "2", "--out", str(tmp_path)]  # fmt: skip
    subprocess.run(command, cwd=ROOT, check=True, capture_output=True, timeout=600)
    measurements = pd.read_csv(tmp_path / "measurements.csv")
    assert sorted(measurements["kind"]) == ["dot", "dot", "dot_double", "dot_double"]
    assert (measurements["status"] == "ok").all() and measurements["cpu_wait"].between(0, 1).all()
    comparisons = pd.read_csv(tmp_path / "comparisons.csv")
    assert set(comparisons["measure"]) == {"step", "attention"}
    assert "dot_double vs dot, attention op (forward + backward) at seq_len 64" in (tmp_path / "summary.md").read_text()
