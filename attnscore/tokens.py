"""Token arrays (one .npy per split, memory-mapped when read) and the batching of the reference
(pytorch/examples word_language_model): the stream as (batch, n) rows cut into seq_len windows."""

import json
from pathlib import Path

import numpy as np
import torch

from attnscore.files import DataError, atomic_path


def save_tokens(tokens: np.ndarray, path) -> None:
    with atomic_path(path) as target, open(target, "wb") as f:
        np.save(f, tokens)


def load_tokens(path, vocab_size: int | None = None) -> np.ndarray:
    """A split's token array, memory-mapped; ids must fit the vocabulary."""
    tokens = np.load(path, mmap_mode="r")
    if vocab_size is not None and tokens.size and int(tokens.max()) >= vocab_size:
        raise DataError(
            f"{path}: token id {int(tokens.max())} is beyond the vocabulary ({vocab_size}); re-run tokenize"
        )
    return tokens


# The batch size each split is laid out with (batchify) in training and evaluation.
BATCH_SIZE_KEYS = {"train": "batch_size", "valid": "eval_batch_size", "test": "eval_batch_size"}


def check_batch_sizes(token_files: dict, train: dict) -> None:
    """Fail before any model is built, naming the key, if a split is too short for its batch size
    (the config's train section): batchify needs two tokens a row."""
    for split, path in token_files.items():
        key, tokens = BATCH_SIZE_KEYS[split], len(np.load(path, mmap_mode="r"))
        if tokens < 2 * train[key]:
            raise DataError(
                f"{path}: the {split} split has {tokens} tokens, too few for train.{key}={train[key]} rows of "
                f"at least 2; set train.{key} to {tokens // 2} or less, or use a bigger {split} split"
            )


def batchify(tokens, batch_size: int) -> torch.Tensor:
    """Lay the stream out as (batch_size, n) rows of consecutive tokens, dropping the remainder."""
    n = len(tokens) // batch_size
    if n < 2:
        raise DataError(
            f"{len(tokens)} tokens are too few for batch size {batch_size} (rows of at least 2 tokens); "
            "use a smaller batch size or a bigger split"
        )
    return torch.from_numpy(np.asarray(tokens[: n * batch_size], dtype=np.int64)).view(batch_size, n)


def windows(matrix: torch.Tensor, seq_len: int):
    """(input, target) pairs of up to seq_len columns (views), targets shifted one token ahead."""
    return zip(matrix[:, :-1].split(seq_len, dim=1), matrix[:, 1:].split(seq_len, dim=1), strict=True)


def num_windows(matrix: torch.Tensor, seq_len: int) -> int:
    return -(-(matrix.shape[1] - 1) // seq_len)


def read_vocab_size(meta_path) -> int:
    return json.loads(Path(meta_path).read_text())["vocab_size"]
