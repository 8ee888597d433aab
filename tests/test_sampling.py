"""Text samples (attnscore.sampling): greedy continuations are the argmax, top-k draws repeat with
their seed and stay within the k likeliest, and the samples reach samples.md escaped."""

import numpy as np
import torch

from attnscore.model import DecoderLM, ModelConfig
from attnscore.sampling import PROMPTS, continue_tokens, greedy_and_sampled, prompts, samples_markdown


def tiny_model() -> DecoderLM:
    torch.manual_seed(0)
    return DecoderLM(ModelConfig(vocab_size=64, d_model=16, n_layers=1, n_heads=2, d_ff=32, max_seq_len=8))


def test_greedy_takes_the_likeliest_token_from_the_last_context_tokens():
    model = tiny_model().eval()
    prompt = [1, 2, 3, 4, 5, 6, 7]
    tokens = continue_tokens(model, prompt, 3, context=4)
    history = list(prompt)
    for token in tokens:
        with torch.no_grad():
            assert token == model(torch.tensor([history[-4:]]))[0, -1].argmax().item()
        history.append(token)


def test_top_k_draws_repeat_with_their_seed_and_stay_within_the_k_likeliest():
    model = tiny_model()
    first, second = (greedy_and_sampled(model, [[1, 2, 3]], 6, context=8, top_k=3, seed=5) for _ in range(2))
    assert first == second and len(first[0][1]) == 6 and model.training  # the model's mode is left as it was
    other = greedy_and_sampled(model, [[1, 2, 3]], 6, context=8, top_k=3, seed=6)
    history = [1, 2, 3]
    for token in first[0][1]:
        with torch.no_grad():
            likeliest = model.eval()(torch.tensor([history]))[0, -1].topk(3).indices.tolist()
        assert token in likeliest
        history.append(token)
    assert other[0][0] == first[0][0]  # the greedy one has no seed
    one = greedy_and_sampled(model, [[1, 2, 3]], 6, context=8, top_k=1, seed=6)
    assert one[0][1] == one[0][0]  # top-1 is greedy


def test_prompts_are_spread_over_the_split():
    tokens = np.arange(100)
    assert [list(p[:2]) for p in prompts(tokens, 10)] == [[0, 1], [45, 46], [90, 91]] and PROMPTS == 3


def test_samples_are_shown_as_written():
    text = samples_markdown(
        {"dot, seed 1": [("<script>alert(1)</script>", "*x*\n# head")]}, ["[l](javascript:x)"],
        new_tokens=4, top_k=2, seed=0,
    )  # fmt: skip
    assert "- greedy: &lt;script&gt;alert\\(1\\)&lt;/script&gt;" in text
    assert "- top-2: \\*x\\* ⏎ \\# head" in text and "> \\[l\\]\\(javascript:x\\)" in text
    assert "<script>" not in text and "](javascript" not in text
