"""What gpu_timing.py measured, as summary.md: the tables and the issue's targets; and the
machine it ran on."""

import datetime
import subprocess
import sys

import pandas as pd
import torch
import triton


def environment(smoke: bool, capability) -> dict:
    if smoke:
        card, driver = "CPU smoke run (Triton interpreter)", None
    else:
        card = torch.cuda.get_device_name()
        try:
            query = ["nvidia-smi", "--query-gpu=driver_version", "--format=csv,noheader"]
            driver = subprocess.run(query, capture_output=True, text=True, timeout=30).stdout.strip() or None
        except (OSError, subprocess.SubprocessError):
            driver = None
    return dict(
        card=card, driver=driver, torch=torch.__version__, triton=triton.__version__, cuda=torch.version.cuda,
        capability=capability, python=sys.version.split()[0], date=str(datetime.date.today()),
    )  # fmt: skip


SKIPPED = "skipped: time budget"


def measured(rows: pd.DataFrame, column: str) -> pd.DataFrame:
    """The rows with a value in `column` (neither skipped nor failed)."""
    if column not in rows:
        return rows.iloc[0:0].reindex(columns=[*rows.columns, column])
    return rows[rows[column].notna()]


def markdown(table: pd.DataFrame) -> str:
    return table.to_markdown(index=False, floatfmt=".3g") + "\n"


def attention_table(attn: pd.DataFrame, stage: str) -> pd.DataFrame | None:
    """ms and TFLOPS per kind, with dot_triton against SDPA's dot, euclid against dot_triton and the
    tensor-descriptor kernels against the plain ones."""
    rows = measured(attn, "fwd_bwd_ms")
    rows = rows[rows["stage"] == stage]
    if rows.empty:
        return None
    index = ["head_dim", "dropout", "seq_len"]
    ms = rows.pivot_table(index=index, columns="kind", values="fwd_bwd_ms", sort=False)
    tflops = rows.pivot_table(index=index, columns="kind", values="tflops", sort=False)
    table = ms.add_suffix(" ms").join(tflops.add_suffix(" TFLOPS"))
    if {"dot", "dot_triton"} <= set(ms.columns):
        table["dot_triton speed / SDPA's"] = ms["dot"] / ms["dot_triton"]
    for kind, base in (("euclid", "dot_triton"), ("dot_triton_tma", "dot_triton"), ("euclid_tma", "euclid")):
        if {kind, base} <= set(ms.columns):
            table[f"{kind} time / {base}'s"] = ms[kind] / ms[base]
    return table.reset_index()


def targets(attn, steps) -> pd.DataFrame:
    """The issue's targets against this run's numbers."""
    rows = []

    def add(target: str, value: str, met) -> None:
        rows.append(dict(target=target, measured=value, met=bool(met)))

    timed, ms = measured(attn, "fwd_bwd_ms"), pd.DataFrame()
    if len(timed):
        timed = timed[timed["stage"] != "tma"]
        ms = timed.pivot_table(index=["head_dim", "dropout", "seq_len"], columns="kind", values="fwd_bwd_ms")
    if {"dot", "dot_triton"} <= set(ms.columns):
        for t in (2048, 4096):
            if (64, 0.0, t) in ms.index:
                speed = ms.loc[(64, 0.0, t), "dot"] / ms.loc[(64, 0.0, t), "dot_triton"]
                add(f"dot_triton >= 0.8x SDPA's speed, T {t}, head_dim 64, no dropout", f"{speed:.2f}x", speed >= 0.8)
    if {"euclid", "dot_triton"} <= set(ms.columns) and len(ratio := (ms["euclid"] / ms["dot_triton"]).dropna()):
        span = f"{ratio.min():.2f}-{ratio.max():.2f}x at {len(ratio)} shapes"
        add("euclid <= 1.15x dot_triton's time at every shape", span, (ratio <= 1.15).all())
    done = measured(steps, "tokens_per_s")
    if len(done) and {"dot", "euclid"} <= set(done["kind"]):
        index = ["attention_dropout", "seq_len"]
        speed = done.pivot_table(index=index, columns="kind", values="tokens_per_s")
        memory = done.pivot_table(index=index, columns="kind", values="peak_memory_mib")
        slower = (1 - speed["euclid"] / speed["dot"]).dropna()
        more = (memory["euclid"] / memory["dot"] - 1).dropna()
        if len(slower):
            span = f"{100 * slower.min():+.1f}% to {100 * slower.max():+.1f}% slower"
            add("training step with euclid within 5% of dot's tokens/s", span, (slower <= 0.05).all())
            add("peak memory within 10% of dot's", f"{100 * more.max():+.1f}% at most", (more <= 0.10).all())
    return pd.DataFrame(rows, columns=["target", "measured", "met"])


def summary(env: dict, seconds: float, attn, steps, tuned) -> str:
    skipped = sum(int(df["status"].eq(SKIPPED).sum()) for df in (attn, steps) if "status" in df)
    parts = [
        f"# GPU timings: {env['card']}, driver {env['driver']}, torch {env['torch']}, triton {env['triton']}, {env['date']}\n",
        f"{seconds:.0f} s; rows skipped for the time budget: {skipped}.\n",
        "## Targets (issue 17)\n",
        markdown(targets(attn, steps)),
    ]
    titles = {
        "attention": "Attention forward + backward, bf16, causal, batch x heads = {}",
        "tma": "Tensor descriptors (TMA) against plain loads, bf16, causal, dropout 0",
        "head_dim_128": "Attention forward + backward at head_dim 128",
    }
    for stage, title in titles.items():
        table = attention_table(attn, stage) if len(attn) else None
        if table is not None:
            parts += [f"## {title.format(env.get('batch_heads'))}\n", markdown(table)]
    done = measured(steps, "tokens_per_s")
    if len(done):
        index = ["attention_dropout", "seq_len"]
        table = done.pivot_table(index=index, columns="kind", values=["tokens_per_s", "peak_memory_mib"], sort=False)
        table.columns = [f"{kind} {value}" for value, kind in table.columns]
        title = f"## Training step, reference model, batch {env['train_batch']}, precision auto\n"
        parts += [title, markdown(table.reset_index())]
    if len(tuned):
        parts += ["## Launch sizes the autotuner chose\n", markdown(tuned)]
    return "\n".join(parts)
