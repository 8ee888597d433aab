"""Corpora, tokenizers, token arrays and batching.

Corpora come as three text files (train/valid/test). WikiText-2 is downloaded from its
official release and verified, or read from a directory the user names; any other corpus is
a directory of three files; the offline demo corpus is generated from the docstrings of
Python's standard library. Token streams are stored as one .npy array per split.
"""

import ast
import hashlib
import inspect
import io
import json
import shutil
import sysconfig
import tempfile
import urllib.request
import zipfile
from pathlib import Path

import numpy as np
import torch

from attnscore.io import atomic_path

SPLITS = ("train", "valid", "test")
USER_AGENT = "attnscore/0.1 (research pipeline; python-urllib)"

# Each release: where its files sit in the zip, how to check the zip, the line counts of the
# splits (which also stops anyone passing the valid split off as the train split), and the
# sources tried in order. The Salesforce S3 bucket that first hosted the zips is gone.
WIKITEXT = {
    "wikitext-2": {
        "zip": "wikitext-2-v1.zip",
        "checksum": ("md5", "542ccefacc6c27f945fb54453812b3cd"),
        "member": "wikitext-2/wiki.{split}.tokens",
        "lines": {"train": 36718, "valid": 3760, "test": 4358},
        "sha256": {  # of the files in the zip; the train split's is not recorded here
            "valid": "f0737ed31fc1329026e95cb8b98e19c2a182c39c240ab909dc31abf2f8af58e8",
            "test": "d790b833ef8cf03a90db7bf1271b7520b83c45ce07ba3c1a9699df81e239eca0",
        },
        "hf_config": "wikitext-2-v1",
    },
    "wikitext-2-raw": {
        "zip": "wikitext-2-raw-v1.zip",
        "checksum": ("sha256", "ef7edb566e3e2b2d31b29c1fdb0c89a4cc683597484c3dc2517919c615435a11"),
        "member": "wikitext-2-raw/wiki.{split}.raw",
        "lines": {"train": 36718, "valid": 3760, "test": 4358},
        "sha256": {},
        "hf_config": "wikitext-2-raw-v1",
    },
}
WIKITEXT_MIRROR = "https://wikitext.smerity.com/{zip}"
HF_PARQUET = "https://huggingface.co/datasets/Salesforce/wikitext/resolve/main/{config}/{split}-00000-of-00001.parquet"
HF_SPLIT_NAMES = {"train": "train", "valid": "validation", "test": "test"}

GPT2_BPE = {
    "vocab.bpe": "1ce1664773c50f3e0cc8842619a93edc4624525b728b188a9e0be33b7726adc5",
    "encoder.json": "196139668be63f3b5d6574427317ae82f612a97c5d1cdaf36ed2256dbf636783",
}
GPT2_BPE_URL = "https://openaipublic.blob.core.windows.net/gpt-2/encodings/main/{name}"


class DataError(RuntimeError):
    """Bad or missing input data; the message names the file and how to fix it."""


def file_digest(path, algorithm="sha256") -> str:
    with open(path, "rb") as f:
        return hashlib.file_digest(f, algorithm).hexdigest()


def fetch(url: str, timeout: float = 60.0) -> bytes:
    """GET a URL with our own User-Agent (the WikiText mirror refuses Python's default)."""
    request = urllib.request.Request(url, headers={"User-Agent": USER_AGENT})
    with urllib.request.urlopen(request, timeout=timeout) as response:
        return response.read()


def read_text(path) -> str:
    """A split file as text; fails clearly if it is missing, empty or not UTF-8."""
    path = Path(path)
    if not path.is_file():
        raise DataError(f"{path}: file not found; check data.dir / data.files in the config")
    try:
        text = path.read_text(encoding="utf-8")
    except UnicodeDecodeError as err:
        raise DataError(f"{path}: not UTF-8 text ({err.reason} at byte {err.start}); convert it to UTF-8") from err
    if not text.strip():
        raise DataError(f"{path}: file is empty; every split needs text")
    return text


def check_wikitext_split(path, release: str, split: str) -> None:
    """A WikiText split must have its official line count (and sha256, where recorded)."""
    spec = WIKITEXT[release]
    expected = spec["lines"][split]
    with open(path, "rb") as f:
        found = sum(1 for _ in f)
    fix = "Delete it to download it again, or point data.dir at the official release"
    if found != expected:
        raise DataError(
            f"{path}: {found} lines, but the {release} {split} split has {expected}; the file is "
            f"truncated, corrupt or a different split. {fix}"
        )
    if split in spec["sha256"] and file_digest(path) != spec["sha256"][split]:
        raise DataError(f"{path}: sha256 differs from the official {release} {split} split. {fix}")


def download_wikitext(release: str, out_dir, sources=None) -> str:
    """Download a WikiText release into out_dir (one file per split); returns the source used.

    Sources are tried in order: the author's mirror (the zip, checksum-verified), then the
    Hugging Face dataset (parquet; each split verified by its line count and, for valid and
    test of the tokenized release, by the sha256 of the original files). A download that
    fails verification is discarded, never used.
    """
    spec, out_dir = WIKITEXT[release], Path(out_dir)
    sources = sources or [("mirror", WIKITEXT_MIRROR.format(zip=spec["zip"])), ("huggingface", HF_PARQUET)]
    failures = []
    for name, url in sources:
        try:
            splits = _from_zip(spec, url) if name == "mirror" else _from_parquet(spec, url)
            with tempfile.TemporaryDirectory(dir=out_dir.parent if out_dir.parent.exists() else None) as tmp:
                for split, data in splits.items():
                    (Path(tmp) / f"{split}.txt").write_bytes(data)
                    check_wikitext_split(Path(tmp) / f"{split}.txt", release, split)
                out_dir.mkdir(parents=True, exist_ok=True)
                for split in SPLITS:
                    with atomic_path(out_dir / f"{split}.txt") as target:
                        shutil.copyfile(Path(tmp) / f"{split}.txt", target)
            return f"{name}: {url}"
        except Exception as err:  # any failure means: try the next source, report all at the end
            failures.append(f"  {name} ({url}): {err}")
    raise DataError(
        f"could not download {release} from any source:\n" + "\n".join(failures) + "\nDownload "
        f"{spec['zip']} by hand, unzip it and set data.dir to the folder holding the split files"
    )


def _from_zip(spec, url) -> dict:
    blob = fetch(url)
    algorithm, expected = spec["checksum"]
    digest = hashlib.new(algorithm, blob).hexdigest()
    if digest != expected:
        raise DataError(f"{algorithm} {digest} of the download does not match {expected}")
    with zipfile.ZipFile(io.BytesIO(blob)) as archive:
        return {split: archive.read(spec["member"].format(split=split)) for split in SPLITS}


def _from_parquet(spec, url_template) -> dict:
    import pandas as pd  # parquet support (pyarrow) is only needed for this fallback

    splits = {}
    for split in SPLITS:
        url = url_template.format(config=spec["hf_config"], split=HF_SPLIT_NAMES[split])
        rows = pd.read_parquet(io.BytesIO(fetch(url)))["text"]
        # The dataset keeps each line with its newline but stores blank lines (" \n") as "".
        splits[split] = "".join(row if row else " \n" for row in rows).encode("utf-8")
    return splits


def download_gpt2_bpe(out_dir) -> None:
    """Fetch GPT-2's BPE files into out_dir, each checked against its published sha256."""
    out_dir = Path(out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    for name, expected in GPT2_BPE.items():
        url = GPT2_BPE_URL.format(name=name)
        try:
            blob = fetch(url)
        except OSError as err:
            raise DataError(
                f"could not download {url}: {err}; or set tokenizer.dir to a folder holding vocab.bpe and encoder.json"
            ) from err
        digest = hashlib.sha256(blob).hexdigest()
        if digest != expected:
            raise DataError(f"{url}: sha256 {digest} does not match {expected}; not using it")
        with atomic_path(out_dir / name) as target:
            Path(target).write_bytes(blob)


def check_gpt2_bpe(bpe_dir) -> None:
    for name, expected in GPT2_BPE.items():
        path = Path(bpe_dir) / name
        if not path.is_file():
            raise DataError(f"{path}: missing; set tokenizer.dir to GPT-2's BPE files, or null to download them")
        if file_digest(path) != expected:
            raise DataError(f"{path}: sha256 does not match GPT-2's {name} ({expected}); replace the file")


def demo_corpus(out_dir, min_chars: int = 200) -> None:
    """Write an offline English corpus: the docstrings of Python's standard library modules.

    Docstrings of at least min_chars characters from the top-level modules, in file order;
    every tenth goes to valid, the one after it to test, the rest to train. It needs no
    network and is the same for a given Python version.
    """
    docs = []
    for path in sorted(Path(sysconfig.get_paths()["stdlib"]).glob("*.py")):
        try:
            tree = ast.parse(path.read_text(encoding="utf-8"))
        except (SyntaxError, UnicodeDecodeError):
            continue
        for node in ast.walk(tree):
            if isinstance(node, (ast.Module, ast.ClassDef, ast.FunctionDef, ast.AsyncFunctionDef)):
                doc = ast.get_docstring(node)
                if doc and len(doc) >= min_chars:
                    docs.append(inspect.cleandoc(doc))
    splits = {split: [] for split in SPLITS}
    for i, doc in enumerate(docs):
        splits["valid" if i % 10 == 0 else "test" if i % 10 == 1 else "train"].append(doc)
    Path(out_dir).mkdir(parents=True, exist_ok=True)
    for split, texts in splits.items():
        with atomic_path(Path(out_dir) / f"{split}.txt") as target:
            Path(target).write_text("\n\n".join(texts) + "\n", encoding="utf-8")


def build_tokenizer(kind: str, train_text: str = "", bpe_dir=None, vocab_size: int = 4096):
    """GPT-2's byte-level BPE from its official files, or a byte-level BPE trained on train_text."""
    from tokenizers import ByteLevelBPETokenizer

    if kind == "gpt2":
        check_gpt2_bpe(bpe_dir)
        return ByteLevelBPETokenizer(vocab=str(Path(bpe_dir) / "encoder.json"), merges=str(Path(bpe_dir) / "vocab.bpe"))
    tokenizer = ByteLevelBPETokenizer()
    tokenizer.train_from_iterator(train_text.splitlines(keepends=True), vocab_size=vocab_size, show_progress=False)
    return tokenizer


def encode(tokenizer, text: str) -> np.ndarray:
    """Token ids of a text, encoded line by line (same ids as whole-text, much faster)."""
    ids = [i for enc in tokenizer.encode_batch(text.splitlines(keepends=True)) for i in enc.ids]
    dtype = np.uint16 if tokenizer.get_vocab_size() <= 2**16 else np.uint32
    return np.asarray(ids, dtype=dtype)


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


def batchify(tokens, batch_size: int) -> torch.Tensor:
    """Lay the stream out as (batch_size, n) rows of consecutive tokens, dropping the remainder."""
    n = len(tokens) // batch_size
    if n < 2:
        raise DataError(f"{len(tokens)} tokens are too few for batch size {batch_size}; use a bigger split")
    return torch.from_numpy(np.asarray(tokens[: n * batch_size], dtype=np.int64)).view(batch_size, n)


def windows(matrix: torch.Tensor, seq_len: int):
    """(input, target) pairs of up to seq_len columns, targets shifted one token ahead."""
    for start in range(0, matrix.shape[1] - 1, seq_len):
        length = min(seq_len, matrix.shape[1] - 1 - start)
        yield matrix[:, start : start + length], matrix[:, start + 1 : start + 1 + length]


def num_windows(matrix: torch.Tensor, seq_len: int) -> int:
    return -(-(matrix.shape[1] - 1) // seq_len)


def vocab_size(meta_path) -> int:
    """The vocabulary size tokenize recorded in meta.json."""
    return json.loads(Path(meta_path).read_text())["vocab_size"]


def write_json(obj, path) -> None:
    with atomic_path(path) as target:
        Path(target).write_text(json.dumps(obj, indent=2) + "\n")


def tokenize_corpus(text_files: dict, out: dict, kind: str, bpe_dir=None, vocab_size=8192, release=None) -> dict:
    """Tokenize the three split files into out[split] (.npy), out['tokenizer'] and out['meta'].

    release names a WikiText release whose official line counts the files must have.
    """
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
