"""Our training step against Hugging Face's GPT2LMHeadModel of the same size, on this CPU.

Both models: vocab 50,257, d_model 512, 6 layers, 8 heads, feed-forward 2048, dropout 0.1,
Adam (lr 1e-5, betas 0.9/0.98, eps 1e-9), batch 8 x 512 random tokens, the same number of
warm-up and timed steps, each model in its own fresh process (peak memory is its own).
Hugging Face runs in fp32 (its default); ours runs in fp32 and with `precision: auto` (bf16
autocast on CPUs with native bf16). Needs `pip install transformers` beside attnscore.

    python benchmarks/hf_gpt2_cpu.py [--steps 5] [--warmup 2] [--out benchmarks/results/hf.csv]
"""

import argparse
import json
import resource
import statistics
import subprocess
import sys
import time

import torch


def hf_step_times(batch, seq_len, warmup, steps):
    from transformers import GPT2Config, GPT2LMHeadModel

    torch.manual_seed(0)
    config = GPT2Config(vocab_size=50257, n_positions=seq_len, n_embd=512, n_layer=6, n_head=8, n_inner=2048)
    model = GPT2LMHeadModel(config).train()
    optimizer = torch.optim.Adam(model.parameters(), lr=1e-5, betas=(0.9, 0.98), eps=1e-9)
    tokens = torch.randint(50257, (batch, seq_len), generator=torch.Generator().manual_seed(0))
    times = []
    for i in range(warmup + steps):
        start = time.perf_counter()
        model(input_ids=tokens, labels=tokens).loss.backward()
        optimizer.step()
        optimizer.zero_grad(set_to_none=True)
        if i >= warmup:
            times.append(time.perf_counter() - start)
    return times, sum(p.numel() for p in model.parameters())


def ours_step_times(batch, seq_len, warmup, steps, precision):
    from attnscore.model import ModelConfig
    from attnscore.train import TrainConfig, Trainer

    trainer = Trainer(
        ModelConfig(vocab_size=50257, max_seq_len=seq_len),
        TrainConfig(seq_len=seq_len, batch_size=batch, device="cpu", precision=precision),
    )
    tokens = torch.randint(50257, (batch, seq_len + 1), generator=torch.Generator().manual_seed(0))
    times = []
    for i in range(warmup + steps):
        start = time.perf_counter()
        trainer.step(tokens[:, :-1], tokens[:, 1:])
        if i >= warmup:
            times.append(time.perf_counter() - start)
    return times, trainer.model.num_params()


def run_one(name, batch, seq_len, warmup, steps):
    if name == "huggingface GPT2LMHeadModel fp32":
        times, params = hf_step_times(batch, seq_len, warmup, steps)
    else:
        times, params = ours_step_times(batch, seq_len, warmup, steps, "fp32" if name.endswith("fp32") else "auto")
    return {
        "model": name, "params": params, "threads": torch.get_num_threads(),
        "tokens_per_s": steps * batch * seq_len / sum(times), "step_s_median": statistics.median(times),
        "step_s_min": min(times), "step_s_max": max(times), "peak_rss_mib": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024,
    }  # fmt: skip


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--batch", type=int, default=8)
    parser.add_argument("--seq-len", type=int, default=512)
    parser.add_argument("--warmup", type=int, default=2)
    parser.add_argument("--steps", type=int, default=5)
    parser.add_argument("--out", help="CSV file for the rows")
    parser.add_argument("--one", help=argparse.SUPPRESS)  # internal: measure one model in this process
    args = parser.parse_args()
    if args.one:
        print(json.dumps(run_one(args.one, args.batch, args.seq_len, args.warmup, args.steps)))
        return
    names = ["huggingface GPT2LMHeadModel fp32", "attnscore dot fp32", "attnscore dot precision=auto"]
    rows = []
    for name in names:
        cmd = [sys.executable, __file__, "--one", name, *sys.argv[1:]]
        rows.append(json.loads(subprocess.run(cmd, capture_output=True, text=True, check=True).stdout.splitlines()[-1]))
        print(rows[-1], flush=True)
    hf = rows[0]["tokens_per_s"]
    print(f"\n{'model':36s} {'params':>11s} {'tokens/s':>9s} {'vs HF':>6s} {'step s (median)':>15s}")
    for row in rows:
        row["vs_hf"] = row["tokens_per_s"] / hf
        print(
            f"{row['model']:36s} {row['params']:11,d} {row['tokens_per_s']:9.0f} {row['vs_hf']:5.2f}x {row['step_s_median']:15.2f}"
        )
    if args.out:
        import pandas as pd

        pd.DataFrame(rows).to_csv(args.out, index=False)


if __name__ == "__main__":
    main()
