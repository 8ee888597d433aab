"""Corpora: three text files per corpus (train, valid, test), read, checked and fetched: WikiText-2
downloaded from its official release and verified, or read from a folder the user names; any
other corpus a folder of three UTF-8 files; the offline demo corpus made from Python's docstrings.
"""

import ast
import hashlib
import inspect
import io
import sysconfig
import urllib.request
import zipfile
from pathlib import Path

from attnscore.files import DataError, atomic_path

SPLITS = ("train", "valid", "test")
USER_AGENT = "attnscore/0.1 (research pipeline; python-urllib)"

# Each release: where its files sit in the zip, how to check the zip, the line counts of the
# splits (which also stops anyone passing the valid split off as the train split), and the
# sources tried in order. The Salesforce S3 URLs of the original release serve nothing, so they are
# not among them.
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


def release_file(release: str, split: str) -> str:
    """The name of a split's file in a folder holding a WikiText release (as its zip unpacks)."""
    return Path(WIKITEXT[release]["member"].format(split=split)).name


def file_digest(path) -> str:
    with open(path, "rb") as f:
        return hashlib.file_digest(f, "sha256").hexdigest()


def fetch(url: str, checksum: tuple[str, str] | None = None, timeout: float = 60.0) -> bytes:
    """GET a URL with our own User-Agent (the WikiText mirror refuses Python's default); with a
    checksum (algorithm, hex digest), a download that does not match is refused."""
    request = urllib.request.Request(url, headers={"User-Agent": USER_AGENT})
    with urllib.request.urlopen(request, timeout=timeout) as response:
        blob = response.read()
    if checksum and (digest := hashlib.new(checksum[0], blob).hexdigest()) != checksum[1]:
        raise DataError(f"{url}: {checksum[0]} {digest} does not match {checksum[1]}; not using it")
    return blob


def existing_file(path, fix: str) -> Path:
    path = Path(path)
    if not path.is_file():
        raise DataError(f"{path}: {'is a directory, not a file' if path.is_dir() else 'file not found'}; {fix}")
    return path


def read_text(path) -> str:
    """A split file as text, without a UTF-8 byte order mark (it would become tokens); fails
    clearly if it is missing, a directory, empty or not UTF-8."""
    path = existing_file(path, "point data.dir / data.files in the config at the split files")
    try:
        text = path.read_text(encoding="utf-8-sig")
    except UnicodeDecodeError as err:
        raise DataError(f"{path}: not UTF-8 text ({err.reason} at byte {err.start}); convert it to UTF-8") from err
    if not text.strip():
        raise DataError(f"{path}: file is empty; every split needs text")
    return text


def check_wikitext_split(path, release: str, split: str, data: bytes | None = None) -> None:
    """A WikiText split (the file at `path`, or the downloaded `data`) must have its official line
    count (and sha256, where recorded)."""
    spec = WIKITEXT[release]
    data = Path(path).read_bytes() if data is None else data
    expected, found = spec["lines"][split], len(io.BytesIO(data).readlines())
    fix = "Delete it to download it again, or point data.dir at the official release"
    if found != expected:
        raise DataError(
            f"{path}: {found} lines, but the {release} {split} split has {expected}; the file is "
            f"truncated, corrupt or a different split. {fix}"
        )
    if split in spec["sha256"] and hashlib.sha256(data).hexdigest() != spec["sha256"][split]:
        raise DataError(f"{path}: sha256 differs from the official {release} {split} split. {fix}")


def download_wikitext(release: str, out_dir, sources=None) -> str:
    """Download a WikiText release into out_dir (one file per split); returns the source used.
    Sources are tried in order: the author's mirror (the zip, checksum-verified), then the Hugging
    Face dataset (parquet); every split is checked (check_wikitext_split) before any is written."""
    spec = WIKITEXT[release]
    sources = sources or [("mirror", WIKITEXT_MIRROR.format(zip=spec["zip"])), ("huggingface", HF_PARQUET)]
    failures = []
    for name, url in sources:
        try:
            splits = _from_zip(spec, url) if name == "mirror" else _from_parquet(spec, url)
            for split, data in splits.items():
                check_wikitext_split(f"the downloaded {split} split", release, split, data)
        except Exception as err:  # any failure means: try the next source, report all at the end
            failures.append(f"  {name} ({url}): {err}")
            continue
        for split, data in splits.items():
            with atomic_path(Path(out_dir) / f"{split}.txt") as target:
                Path(target).write_bytes(data)
        return f"{name}: {url}"
    raise DataError(
        f"could not download {release} from any source:\n" + "\n".join(failures) + "\nDownload "
        f"{spec['zip']} by hand, unzip it and set data.dir to the folder holding the split files"
    )


def _from_zip(spec, url) -> dict:
    with zipfile.ZipFile(io.BytesIO(fetch(url, spec["checksum"]))) as archive:
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


def demo_corpus(out_dir, min_chars: int = 200) -> None:
    """Write an offline English corpus: the docstrings of at least min_chars characters of Python's
    top-level standard library modules, in file order. The same for a given Python version."""
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
    splits = {"train": [doc for i, doc in enumerate(docs) if i % 10 > 1], "valid": docs[::10], "test": docs[1::10]}
    for split, texts in splits.items():
        with atomic_path(Path(out_dir) / f"{split}.txt") as target:
            Path(target).write_text("\n\n".join(texts) + "\n", encoding="utf-8")
