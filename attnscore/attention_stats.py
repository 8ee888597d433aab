"""What each kind attends to, in numbers: per layer and head, statistics of the attention weights
on a fixed set of test windows (attnscore.attention_probe reads the weights).

Each statistic is a mean with equal weight over every query position i of every window, of
- entropy: -sum_j w_ij log w_ij (nats; 0 log 0 = 0), log(i + 1) for uniform weights over the past;
- distance: sum_j w_ij (i - j), how far back the weight lies (i / 2 for uniform weights);
- first_share: w_i0, the weight on the window's first token (an attention sink);
- prev_share: w_i,i-1, the weight on the previous token (0 for i = 0).
The formulas take the weights as the kind gives them: for a kind that does not normalise its rows
(sigmoid) they are its weights' own, not a distribution's.
"""

import numpy as np
import pandas as pd
import torch

from attnscore.attention_probe import layer_weights

STATISTICS = ("entropy", "distance", "first_share", "prev_share")
COLUMNS = ["layer", "head", *STATISTICS]
WINDOWS_A_BATCH = 8


def head_statistics(weights: torch.Tensor) -> dict[str, torch.Tensor]:
    """Each statistic's mean over the queries of weights (batch, heads, queries, keys), in float64."""
    w = weights.double()
    t = w.shape[-1]
    position = torch.arange(t, dtype=w.dtype, device=w.device)
    back = position.view(-1, 1) - position.view(1, -1)  # i - j
    previous = torch.diagonal(w, offset=-1, dim1=-2, dim2=-1)  # w_i,i-1 for i >= 1
    return {
        "entropy": -torch.special.xlogy(w, w).sum(-1).mean(-1),
        "distance": (w * back).sum(-1).mean(-1),
        "first_share": w[..., 0].mean(-1),
        "prev_share": previous.sum(-1) / t,  # i = 0 contributes 0
    }


def window_starts(tokens: int, seq_len: int, count: int) -> list[int]:
    """Where `count` windows of seq_len tokens start, evenly spread over `tokens` from 0 (the same for every run)."""
    if tokens < seq_len:
        raise ValueError(f"the test split has {tokens} tokens, fewer than one window of train.seq_len={seq_len}")
    return sorted({int(start) for start in np.linspace(0, tokens - seq_len, count)})


def run_statistics(model, tokens, *, seq_len: int, windows: int, kind: str) -> tuple[pd.DataFrame, np.ndarray, dict]:
    """A model's statistics per layer and head over `windows` test windows (COLUMNS); the first
    window's weights of the first and last layer, mean over heads (2, seq_len, seq_len); and what
    the probe found (windows, whether the kind normalised every row)."""
    starts = window_starts(len(tokens), seq_len, windows)
    device = next(model.parameters()).device
    per_window, maps, normalised = [], None, True
    for first in range(0, len(starts), WINDOWS_A_BATCH):
        batch = [np.asarray(tokens[s : s + seq_len], dtype=np.int64) for s in starts[first : first + WINDOWS_A_BATCH]]
        weights, rows_normalised = layer_weights(model, torch.from_numpy(np.stack(batch)).to(device), kind)
        normalised &= rows_normalised
        per_window.append([head_statistics(w) for w in weights])
        if maps is None:
            maps = torch.stack([weights[0][0].mean(0), weights[-1][0].mean(0)]).double().cpu().numpy()
    rows = []
    for layer in range(len(per_window[0])):
        values = {name: torch.cat([chunk[layer][name] for chunk in per_window]).mean(0) for name in STATISTICS}
        for head in range(len(values["entropy"])):
            rows.append({"layer": layer, "head": head, **{name: values[name][head].item() for name in STATISTICS}})
    probe = {"windows": len(starts), "starts": starts, "normalised": normalised}
    return pd.DataFrame(rows, columns=COLUMNS), maps, probe
