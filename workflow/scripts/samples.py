from pathlib import Path

from tokenizers import Tokenizer

from attnscore.evaluation import load_model
from attnscore.files import atomic_path, log_to
from attnscore.runtime import pick_device
from attnscore.sampling import greedy_and_sampled, prompts, samples_markdown
from attnscore.tokens import load_tokens

with log_to(snakemake.log[0]):
    settings, seed = snakemake.params.samples, snakemake.params.seed
    tokenizer = Tokenizer.from_file(snakemake.input.tokenizer)
    where = pick_device(settings["device"])
    samples = {}
    for (size, variant), path in zip(snakemake.params.runs, snakemake.input.models, strict=True):
        model, _ = load_model(path, where)
        starts = prompts(load_tokens(snakemake.input.test, model.cfg.vocab_size), settings["prompt_tokens"])
        continued = greedy_and_sampled(
            model, starts, settings["sample_tokens"], context=settings["seq_len"], top_k=settings["top_k"],
            seed=settings["sample_seed"],
        )  # fmt: skip
        label = f"{size}/{variant}, seed {seed}" if size else f"{variant}, seed {seed}"
        samples[label] = [tuple(map(tokenizer.decode, pair)) for pair in continued]
    text = samples_markdown(
        samples, [tokenizer.decode(prompt.tolist()) for prompt in starts], new_tokens=settings["sample_tokens"],
        top_k=settings["top_k"], seed=settings["sample_seed"],
    )  # fmt: skip
    print(text)
    with atomic_path(snakemake.output[0]) as tmp:
        Path(tmp).write_text(text)
