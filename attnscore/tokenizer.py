"""Tokenizers: GPT-2's byte-level BPE from its published files, or a byte-level BPE trained on the
train split; tokenizing a corpus into one token array per split."""

from pathlib import Path

import numpy as np

from attnscore.corpora import check_wikitext_split, existing_file, fetch, file_digest, read_text
from attnscore.files import DataError, atomic_path, write_json
from attnscore.tokens import save_tokens

GPT2_BPE = {
    "vocab.bpe": "1ce1664773c50f3e0cc8842619a93edc4624525b728b188a9e0be33b7726adc5",
    "encoder.json": "196139668be63f3b5d6574427317ae82f612a97c5d1cdaf36ed2256dbf636783",
}
GPT2_BPE_URL = "https://openaipublic.blob.core.windows.net/gpt-2/encodings/main/{name}"


def download_gpt2_bpe(out_dir) -> None:
    """Fetch GPT-2's BPE files into out_dir, each checked against its published sha256."""
    for name, expected in GPT2_BPE.items():
        url = GPT2_BPE_URL.format(name=name)
        try:
            blob = fetch(url, ("sha256", expected))
        except OSError as err:
            raise DataError(
                f"could not download {url}: {err}; or set tokenizer.dir to a folder holding vocab.bpe and encoder.json"
            ) from err
        with atomic_path(Path(out_dir) / name) as target:
            Path(target).write_bytes(blob)


def build_tokenizer(kind: str, train_text: str = "", bpe_dir=None, vocab_size: int = 4096):
    """GPT-2's byte-level BPE from its official files, or a byte-level BPE trained on train_text."""
    from tokenizers import ByteLevelBPETokenizer

    if kind == "gpt2":
        for name, expected in GPT2_BPE.items():
            fix = f"set tokenizer.dir to the folder holding GPT-2's {name}, or null to download it"
            path = existing_file(Path(bpe_dir) / name, fix)
            if file_digest(path) != expected:
                raise DataError(f"{path}: sha256 does not match GPT-2's {name} ({expected}); replace the file")
        return ByteLevelBPETokenizer(vocab=str(Path(bpe_dir) / "encoder.json"), merges=str(Path(bpe_dir) / "vocab.bpe"))
    tokenizer = ByteLevelBPETokenizer()
    tokenizer.train_from_iterator(train_text.splitlines(keepends=True), vocab_size=vocab_size, show_progress=False)
    built = tokenizer.get_vocab_size()
    if built < vocab_size:  # the model and the config would claim a vocabulary it does not have
        raise DataError(
            f"tokenizer.vocab_size is {vocab_size}, but the train split yields only {built} tokens (the 256 bytes "
            f"plus every merge its text allows); set tokenizer.vocab_size to {built}, or use a bigger train split"
        )
    return tokenizer


def encode(tokenizer, text: str) -> np.ndarray:
    """Token ids of a text, encoded line by line (same ids as whole-text, much faster)."""
    ids = [i for enc in tokenizer.encode_batch(text.splitlines(keepends=True)) for i in enc.ids]
    dtype = np.uint16 if tokenizer.get_vocab_size() <= 2**16 else np.uint32
    return np.asarray(ids, dtype=dtype)


def tokenize_corpus(text_files: dict, out: dict, kind: str, *, bpe_dir=None, vocab_size=8192, release=None) -> dict:
    """Tokenize the three split files into out[split] (.npy), out['tokenizer'] and out['meta'];
    with `release`, a WikiText release whose official line counts the files must have."""
    texts = {split: read_text(path) for split, path in text_files.items()}  # missing, empty, not UTF-8
    if release:
        for split, path in text_files.items():
            check_wikitext_split(path, release, split)
    tokenizer = build_tokenizer(kind, texts["train"], bpe_dir, vocab_size)
    meta = {"tokenizer": kind, "vocab_size": tokenizer.get_vocab_size(), "tokens": {}, "sha256": {}}
    for split, text in texts.items():
        tokens = encode(tokenizer, text)
        save_tokens(tokens, out[split])
        meta["tokens"][split], meta["sha256"][split] = len(tokens), file_digest(text_files[split])
    with atomic_path(out["tokenizer"]) as target:
        tokenizer.save(target)
    write_json(meta, out["meta"])
    return meta
