"""Where a CPU training step's time goes: torch.profiler's operators over one step of the reference
model (vocab 50,257, d_model 512, 6 layers, 8 heads, feed-forward 2048, dropout 0.1, batch 8 x
512, Adam), after warm-up steps, by self time and input shapes (so the output layer's matrix
products stand apart from the blocks').

    .venv/bin/python benchmarks/profile_cpu.py [--attention dot] [--precision auto] [--rows 30]
"""

import argparse

import torch
from torch.profiler import ProfilerActivity, profile

from attnscore.bench import step_config
from attnscore.model import ModelConfig
from attnscore.trainer import Trainer


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--attention", default="dot")
    parser.add_argument("--precision", default="auto")
    parser.add_argument("--warmup", type=int, default=1)
    parser.add_argument("--rows", type=int, default=30, help="operators to list")
    args = parser.parse_args()
    trainer = Trainer(
        ModelConfig(vocab_size=50257, attention=args.attention),
        step_config(seq_len=512, batch_size=8, device="cpu", precision=args.precision, compile=False),
        total_steps=1,
    )
    tokens = torch.randint(50257, (8, 513), generator=torch.Generator().manual_seed(0))
    x, y = tokens[:, :-1].contiguous(), tokens[:, 1:].contiguous()
    for _ in range(args.warmup):
        trainer.step(x, y)
    with profile(activities=[ProfilerActivity.CPU], record_shapes=True) as profiler:
        trainer.step(x, y)
    dtype = trainer.dtype or torch.float32
    print(f"{args.attention}, precision {args.precision} ({dtype}), {torch.get_num_threads()} threads")
    table = profiler.key_averages(group_by_input_shape=True).table(
        sort_by="self_cpu_time_total", row_limit=args.rows, max_name_column_width=40, max_shapes_column_width=60
    )
    print(table)


if __name__ == "__main__":
    main()
