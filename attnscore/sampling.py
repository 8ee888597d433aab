"""Text samples: each kind's best checkpoint continues fixed prompts from the test split, greedily
and by top-k sampling with a fixed seed, into samples.md (text escaped for Markdown and HTML)."""

import numpy as np
import torch

from attnscore.attention_stats import window_starts
from attnscore.summary import markdown_text

PROMPTS = 3


@torch.no_grad()
def continue_tokens(model, prompt, new_tokens: int, *, context: int, top_k: int = 0, generator=None) -> list[int]:
    """`new_tokens` token ids after `prompt`, each from the last `context` tokens' logits in eval mode: the
    likeliest (top_k 0), or drawn from the top_k likeliest by `generator`."""
    device = next(model.parameters()).device
    tokens = torch.as_tensor(np.asarray(prompt, dtype=np.int64), device=device)
    training = model.training
    model.eval()
    try:
        for _ in range(new_tokens):
            logits = model(tokens[-context:].unsqueeze(0))[0, -1].double()
            if top_k:
                best = logits.topk(min(top_k, len(logits)))
                probabilities = best.values.softmax(-1).cpu()
                chosen = best.indices[torch.multinomial(probabilities, 1, generator=generator)]
            else:
                chosen = logits.argmax().view(1)
            tokens = torch.cat([tokens, chosen.to(device)])
    finally:
        model.train(training)
    return tokens[len(prompt) :].tolist()


def greedy_and_sampled(model, prompts, new_tokens: int, *, context: int, top_k: int, seed: int) -> list[tuple]:
    """Per prompt, its greedy continuation and a top-k one, drawn by one generator seeded with `seed`."""
    generator = torch.Generator().manual_seed(seed)
    return [
        (
            continue_tokens(model, prompt, new_tokens, context=context),
            continue_tokens(model, prompt, new_tokens, context=context, top_k=top_k, generator=generator),
        )
        for prompt in prompts
    ]


def prompts(tokens, prompt_tokens: int) -> list[np.ndarray]:
    """PROMPTS prompts of `prompt_tokens` tokens, evenly spread over a split's tokens."""
    return [np.asarray(tokens[s : s + prompt_tokens]) for s in window_starts(len(tokens), prompt_tokens, PROMPTS)]


def one_line(text: str) -> str:
    """Text for one Markdown line, shown as written: escaped, line breaks as ⏎."""
    return markdown_text(text).replace("\r\n", "\n").replace("\n", " ⏎ ")


def samples_markdown(samples: dict, prompt_texts: list[str], *, new_tokens: int, top_k: int, seed: int) -> str:
    """samples.md; `samples` maps a run's label (e.g. 'dot, seed 1234') to its (greedy, top-k) texts per prompt."""
    lines = [
        "# Samples",
        "",
        f"Each kind's best checkpoint (its first seed) continues {len(prompt_texts)} prompts from the test split by",
        f"{new_tokens} tokens: greedily, and drawn from the {top_k} likeliest tokens (top-k, seed {seed}). Line breaks",
        "are shown as ⏎.",
        "",
    ]
    for i, prompt in enumerate(prompt_texts):
        lines += [f"## Prompt {i + 1}", "", f"> {one_line(prompt)}", ""]
        for label, texts in samples.items():
            greedy, sampled = texts[i]
            lines += [f"**{markdown_text(label)}**", "", f"- greedy: {one_line(greedy)}",
                      f"- top-{top_k}: {one_line(sampled)}", ""]  # fmt: skip
    return "\n".join(lines)
