"""Our training step beside Hugging Face's GPT2LMHeadModel and nanoGPT's GPT of the same size, on this CPU.

Every model: vocab 50,257, d_model 512, 6 layers, 8 heads, feed-forward 2048, dropout 0.1,
Adam (lr 1e-5, betas 0.9/0.98, eps 1e-9), batch 8 x 512 random tokens, the same number of
warm-up and timed steps. Each (model, precision) runs in its own fresh process (peak memory is
its own), all of them once per round, over several interleaved rounds (a slow spell of a shared
machine hits all of them); the best round of each is kept. tokens_per_cpu_s counts the
process's CPU seconds instead of wall time: steadier where other jobs share the cores. Ours is the reference model (untied
output layer with bias, ReLU, sinusoidal positions) at `precision: auto` (bf16 autocast on CPUs
with native bf16, else fp32) and fp32, and, to show what padding the loss's output rows to a
multiple of 64 gains, dot without it ("unpadded"); Hugging Face and nanoGPT (tied embeddings, GELU, learned
positions) in fp32 and bf16 autocast.

Needs `pip install transformers` beside attnscore for the Hugging Face rows, and for nanoGPT's a
folder holding karpathy/nanoGPT's model.py (`--nanogpt`); rows whose code is missing are skipped.

    python benchmarks/hf_gpt2_cpu.py --out benchmarks/results/cpu-<cpu>-<torch>-<date> [--nanogpt DIR]
        [--rounds 3] [--warmup 1] [--steps 3] [--models "ours dot auto" "nanoGPT bf16" ...]
"""

import argparse
import datetime
import json
import platform
import resource
import statistics
import subprocess
import sys
import time
from contextlib import nullcontext
from pathlib import Path

import pandas as pd
import torch

from attnscore.runtime import autocast_dtype, device_name

VOCAB, D_MODEL, LAYERS, HEADS, D_FF, DROPOUT = 50257, 512, 6, 8, 2048, 0.1
MODELS = [
    "ours dot auto", "ours euclid auto", "ours dot fp32", "ours dot unpadded auto", "huggingface fp32",
    "huggingface bf16", "nanoGPT fp32", "nanoGPT bf16",
]  # fmt: skip


def adam(model):
    return torch.optim.Adam(model.parameters(), lr=1e-5, betas=(0.9, 0.98), eps=1e-9)


def library_step(model, precision, loss_of):
    """One Adam step of a model from another library, under bf16 autocast or in fp32."""
    optimizer = adam(model.train())
    autocast = torch.autocast("cpu", dtype=torch.bfloat16) if precision == "bf16" else nullcontext()

    def step(x, y):
        with autocast:
            loss = loss_of(model, x, y)
        loss.backward()
        optimizer.step()
        optimizer.zero_grad(set_to_none=True)

    return step


def make_step(name, batch, seq_len, nanogpt_dir):
    """The step function of a model named as in MODELS, its parameter count and its precision."""
    family, *variant, precision = name.split()
    torch.manual_seed(0)
    if family == "ours":
        from attnscore import model
        from attnscore.bench import step_config
        from attnscore.model import ModelConfig
        from attnscore.trainer import Trainer

        if "unpadded" in variant:  # the loss's output rows unpadded (what padding gains)
            model.PAD_OUTPUTS_TO = 1
        model_cfg = ModelConfig(VOCAB, D_MODEL, LAYERS, HEADS, D_FF, DROPOUT, max_seq_len=seq_len, attention=variant[0])
        cfg = step_config(seq_len=seq_len, batch_size=batch, device="cpu", precision=precision, compile=False)
        trainer = Trainer(model_cfg, cfg, total_steps=1)
        precision = "bf16" if trainer.dtype == torch.bfloat16 else "fp32"
        return trainer.step, trainer.model, precision
    if family == "huggingface":
        from transformers import GPT2Config, GPT2LMHeadModel

        config = GPT2Config(
            vocab_size=VOCAB, n_positions=seq_len, n_embd=D_MODEL, n_layer=LAYERS, n_head=HEADS, n_inner=D_FF
        )
        model = GPT2LMHeadModel(config)  # dropout 0.1 on embeddings, residuals and attention by default
        return library_step(model, precision, lambda m, x, y: m(input_ids=x, labels=x).loss), model, precision
    sys.path.insert(0, nanogpt_dir)
    from model import GPT, GPTConfig  # nanoGPT's model.py

    config = GPTConfig(
        block_size=seq_len, vocab_size=VOCAB, n_layer=LAYERS, n_head=HEADS, n_embd=D_MODEL, dropout=DROPOUT
    )
    model = GPT(config)
    return library_step(model, precision, lambda m, x, y: m(x, y)[1]), model, precision


def run_one(name, args):
    """Time one model in this process: warm-up steps, then timed ones."""
    step, model, precision = make_step(name, args.batch, args.seq_len, args.nanogpt)
    tokens = torch.randint(VOCAB, (args.batch, args.seq_len + 1), generator=torch.Generator().manual_seed(0))
    x, y = tokens[:, :-1].contiguous(), tokens[:, 1:].contiguous()  # as a data loader hands them over
    times, cpu_times = [], []
    for i in range(args.warmup + args.steps):
        start, cpu_start = time.perf_counter(), time.process_time()
        step(x, y)
        if i >= args.warmup:
            times.append(time.perf_counter() - start)
            cpu_times.append(time.process_time() - cpu_start)
    tokens = args.steps * args.batch * args.seq_len
    return {
        "model": name, "precision": precision, "params": sum(p.numel() for p in model.parameters()),
        "tokens_per_s": tokens / sum(times), "tokens_per_cpu_s": tokens / sum(cpu_times),
        "step_s_median": statistics.median(times), "step_s_min": min(times), "step_s_max": max(times),
        "peak_rss_mib": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024,
    }  # fmt: skip


def available(name, nanogpt_dir) -> bool:
    if name.startswith("huggingface"):
        try:
            import transformers  # noqa: F401
        except ImportError:
            return False
    return not name.startswith("nanoGPT") or (nanogpt_dir is not None and (Path(nanogpt_dir) / "model.py").exists())


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--out", help="folder for rounds.csv, summary.md and environment.json")
    parser.add_argument("--models", nargs="+", default=MODELS, choices=MODELS)
    parser.add_argument("--nanogpt", help="folder holding nanoGPT's model.py")
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--batch", type=int, default=8)
    parser.add_argument("--seq-len", type=int, default=512)
    parser.add_argument("--warmup", type=int, default=1)
    parser.add_argument("--steps", type=int, default=3)
    parser.add_argument("--one", help=argparse.SUPPRESS)  # internal: measure one model in this process
    args = parser.parse_args()
    if args.one:
        print(json.dumps(run_one(args.one, args)))
        return
    names = [name for name in args.models if available(name, args.nanogpt)]
    print("skipped (code not installed):", [name for name in args.models if name not in names], flush=True)
    shared = ["--batch", str(args.batch), "--seq-len", str(args.seq_len), "--warmup", str(args.warmup)]
    shared += ["--steps", str(args.steps), *(["--nanogpt", args.nanogpt] if args.nanogpt else [])]
    rows = []
    for round_ in range(1, args.rounds + 1):
        for name in names:
            done = subprocess.run([sys.executable, __file__, "--one", name, *shared], capture_output=True, text=True)
            if done.returncode:
                sys.exit(f"{name} failed:\n{done.stderr[-3000:]}")
            rows.append({"round": round_, **json.loads(done.stdout.splitlines()[-1])})
            print(rows[-1], flush=True)
    table = summarise(pd.DataFrame(rows))
    environment = {
        "cpu": device_name(torch.device("cpu")), "bf16 autocast native": autocast_dtype(torch.device("cpu")) is not None,
        "torch": torch.__version__, "python": platform.python_version(), "date": str(datetime.date.today()),
        "batch": args.batch, "seq_len": args.seq_len, "warmup": args.warmup, "steps": args.steps, "rounds": args.rounds,
    }  # fmt: skip
    try:
        import transformers

        environment["transformers"] = transformers.__version__
    except ImportError:
        pass
    summary = f"# Training step on the CPU\n\n```\n{json.dumps(environment, indent=1)}\n```\n\n{table.to_markdown(index=False)}\n"
    print("\n" + summary)
    if args.out:
        out = Path(args.out)
        out.mkdir(parents=True, exist_ok=True)
        pd.DataFrame(rows).to_csv(out / "rounds.csv", index=False)
        (out / "summary.md").write_text(summary)
        (out / "environment.json").write_text(json.dumps(environment, indent=2) + "\n")


def summarise(rounds: pd.DataFrame) -> pd.DataFrame:
    """The best round of each model, its range over rounds, and its speed against the others."""
    best = rounds.loc[rounds.groupby("model", sort=False)["tokens_per_s"].idxmax()].set_index("model")
    best["tokens_per_cpu_s"] = rounds.groupby("model")["tokens_per_cpu_s"].max()
    best["tokens/s over rounds"] = rounds.groupby("model")["tokens_per_s"].agg(lambda s: f"{s.min():.0f}-{s.max():.0f}")
    for other in ("ours dot auto", "nanoGPT bf16", "nanoGPT fp32", "huggingface fp32"):
        if other in best.index:
            best[f"vs {other}"] = (best["tokens_per_s"] / best.loc[other, "tokens_per_s"]).map("{:.2f}x".format)
    columns = ["precision", "params", "tokens_per_s", "tokens/s over rounds", "tokens_per_cpu_s", "step_s_median"]
    columns.append("peak_rss_mib")
    return best[columns + [c for c in best if c.startswith("vs ")]].round(2).reset_index()


if __name__ == "__main__":
    main()
