"""Corpus checks, downloads (from a loopback server), tokenization, token arrays and batching."""

import hashlib
import http.server
import io
import threading
import zipfile

import numpy as np
import pytest
import torch

from attnscore import corpora, tokenizer, tokens
from attnscore.files import DataError
from attnscore.tokens import batchify, num_windows, windows


def test_batchify_lays_consecutive_tokens_along_rows():
    m = batchify(np.arange(23), batch_size=4)
    assert m.shape == (4, 5) and m.dtype == torch.int64
    assert m[1].tolist() == [5, 6, 7, 8, 9]  # row b holds tokens b*n .. b*n+n-1; 3 dropped


def test_windows_shift_targets_by_one_and_cover_every_target():
    m = batchify(np.arange(40), batch_size=2)  # rows of 20
    pairs = list(windows(m, seq_len=8))
    assert len(pairs) == num_windows(m, 8) == 3
    assert [x.shape[1] for x, _ in pairs] == [8, 8, 3]  # the last window is shorter
    for x, y in pairs:
        assert torch.equal(y, x + 1)
    assert torch.cat([y for _, y in pairs], 1)[0].tolist() == list(range(1, 20))


def test_batchify_rejects_a_stream_too_short_for_the_batch():
    with pytest.raises(DataError, match="too few for batch size 8"):
        batchify(np.arange(10), batch_size=8)


def test_batch_sizes_too_big_for_a_split_name_the_key(tmp_path):
    files = {split: tmp_path / f"{split}.npy" for split in corpora.SPLITS}
    for split, length in zip(corpora.SPLITS, (100, 30, 40), strict=True):
        tokens.save_tokens(np.arange(length, dtype=np.uint16), files[split])
    tokens.check_batch_sizes(files, {"batch_size": 50, "eval_batch_size": 15})
    with pytest.raises(DataError, match="too few for train.batch_size=51 .* set train.batch_size to 50 or less"):
        tokens.check_batch_sizes(files, {"batch_size": 51, "eval_batch_size": 15})
    with pytest.raises(DataError, match="valid split has 30 tokens, too few for train.eval_batch_size=16 rows"):
        tokens.check_batch_sizes(files, {"batch_size": 8, "eval_batch_size": 16})


def test_gpt2_bpe_matches_the_published_token_count(shared_data, tmp_path):
    gpt2 = tokenizer.build_tokenizer("gpt2", bpe_dir=shared_data / "gpt2-bpe")
    ids = tokenizer.encode(gpt2, corpora.read_text(shared_data / "wikitext-2" / "wiki.valid.tokens"))
    assert len(ids) == 258_659 and ids.dtype == np.uint16
    tokens.save_tokens(ids, tmp_path / "valid.npy")
    np.testing.assert_array_equal(tokens.load_tokens(tmp_path / "valid.npy", 50257), ids)


def test_tampered_bpe_file_is_refused(shared_data, tmp_path):
    (tmp_path / "vocab.bpe").write_bytes((shared_data / "gpt2-bpe" / "vocab.bpe").read_bytes() + b" ")
    (tmp_path / "encoder.json").write_bytes((shared_data / "gpt2-bpe" / "encoder.json").read_bytes())
    with pytest.raises(DataError, match="vocab.bpe: sha256 does not match"):
        tokenizer.build_tokenizer("gpt2", bpe_dir=tmp_path)


def test_official_splits_pass_their_checks(shared_data):
    for split in ("valid", "test"):
        corpora.check_wikitext_split(shared_data / "wikitext-2" / f"wiki.{split}.tokens", "wikitext-2", split)


def test_an_edited_split_fails_its_checksum(shared_data, tmp_path):
    text = (shared_data / "wikitext-2" / "wiki.test.tokens").read_text(encoding="utf-8")
    (tmp_path / "wiki.test.tokens").write_text(text.replace(" the ", " teh ", 1), encoding="utf-8")
    with pytest.raises(DataError, match="sha256 differs from the official wikitext-2 test split"):
        corpora.check_wikitext_split(tmp_path / "wiki.test.tokens", "wikitext-2", "test")


def test_valid_split_cannot_pass_for_the_train_split(shared_data):
    with pytest.raises(DataError, match="3760 lines, but the wikitext-2 train split has 36718"):
        corpora.check_wikitext_split(shared_data / "wikitext-2" / "wiki.valid.tokens", "wikitext-2", "train")


@pytest.mark.parametrize(
    "content, message",
    [
        (None, "file not found"),
        ("folder", "train.txt: is a directory, not a file; point data.dir / data.files"),
        (b"  \n\n", "file is empty"),
        (b"caf\xe9 au lait\n", "not UTF-8 text"),
    ],
)
def test_unreadable_split_files_fail_clearly(tmp_path, content, message):
    path = tmp_path / "train.txt"
    if content == "folder":
        path.mkdir()
    elif content is not None:
        path.write_bytes(content)
    with pytest.raises(DataError, match=message):
        corpora.read_text(path)


def test_a_byte_order_mark_is_not_read_as_text(tmp_path):
    text = "the cat sat on the mat\n" * 50
    for name, prefix in (("plain", ""), ("bom", "\ufeff")):
        (tmp_path / name).mkdir()
        for split in corpora.SPLITS:
            (tmp_path / name / f"{split}.txt").write_text(prefix + text, encoding="utf-8")
        out = {key: tmp_path / name / f"{key}.out" for key in (*corpora.SPLITS, "tokenizer", "meta")}
        tokenizer.tokenize_corpus({s: tmp_path / name / f"{s}.txt" for s in corpora.SPLITS}, out, "bpe", vocab_size=260)
    for split in corpora.SPLITS:
        np.testing.assert_array_equal(
            np.load(tmp_path / "bom" / f"{split}.out"), np.load(tmp_path / "plain" / f"{split}.out")
        )


def test_a_bpe_vocabulary_smaller_than_asked_is_refused():
    text = "the cat sat on the mat\n" * 50  # 268 tokens: 256 bytes and 12 merges
    with pytest.raises(DataError, match="tokenizer.vocab_size is 512, but the train split yields only 268 tokens"):
        tokenizer.build_tokenizer("bpe", text, vocab_size=512)
    assert tokenizer.build_tokenizer("bpe", text, vocab_size=268).get_vocab_size() == 268


def test_a_directory_for_a_gpt2_bpe_file_is_named(tmp_path):
    (tmp_path / "vocab.bpe").mkdir()
    with pytest.raises(DataError, match="vocab.bpe: is a directory, not a file; set tokenizer.dir"):
        tokenizer.build_tokenizer("gpt2", bpe_dir=tmp_path)


def test_token_ids_beyond_the_vocabulary_are_refused(tmp_path):
    tokens.save_tokens(np.array([1, 2, 900], dtype=np.uint16), tmp_path / "t.npy")
    with pytest.raises(DataError, match="token id 900 is beyond the vocabulary \\(512\\)"):
        tokens.load_tokens(tmp_path / "t.npy", vocab_size=512)


def test_demo_corpus_is_english_text_in_three_splits(tmp_path):
    corpora.demo_corpus(tmp_path)
    sizes = {split: len((tmp_path / f"{split}.txt").read_text()) for split in corpora.SPLITS}
    assert sizes["train"] > 300_000 and sizes["valid"] > 30_000 and sizes["test"] > 30_000
    assert " the " in (tmp_path / "train.txt").read_text()


@pytest.fixture
def loopback_server():
    """Serve {path: bytes} on 127.0.0.1; unknown paths answer 404."""
    files = {}

    class Handler(http.server.BaseHTTPRequestHandler):
        def do_GET(self):
            body = files.get(self.path)
            self.send_response(200 if body is not None else 404)
            self.end_headers()
            self.wfile.write(body or b"")

        def log_message(self, *args):
            pass

    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    yield files, f"http://127.0.0.1:{server.server_port}"
    server.shutdown()


def small_release(monkeypatch):
    """A stand-in WikiText release of 3/2/1 lines, registered as 'tiny' with the zip's md5."""
    lines = {"train": 3, "valid": 2, "test": 1}
    buffer = io.BytesIO()
    with zipfile.ZipFile(buffer, "w") as archive:
        for split, n in lines.items():
            archive.writestr(f"tiny/wiki.{split}.tokens", "".join(f" {split} line {i} \n" for i in range(n)))
    blob = buffer.getvalue()
    spec = {
        "zip": "tiny.zip",
        "checksum": ("md5", hashlib.md5(blob).hexdigest()),
        "member": "tiny/wiki.{split}.tokens",
        "lines": lines,
        "sha256": {},
    }
    monkeypatch.setitem(corpora.WIKITEXT, "tiny", spec)
    return blob


def test_download_skips_a_corrupt_source_and_verifies_the_next(loopback_server, monkeypatch, tmp_path):
    files, url = loopback_server
    blob = small_release(monkeypatch)
    files["/bad.zip"], files["/good.zip"] = blob[:-10], blob  # a truncated download, then a good one
    source = corpora.download_wikitext(
        "tiny", tmp_path / "out", [("mirror", url + "/bad.zip"), ("mirror", url + "/good.zip")]
    )
    assert source.endswith("/good.zip")
    assert (tmp_path / "out" / "train.txt").read_text().count("\n") == 3


def test_failed_downloads_leave_no_files_and_name_every_source(loopback_server, monkeypatch, tmp_path):
    files, url = loopback_server
    files["/bad.zip"] = small_release(monkeypatch)[:-10]
    with pytest.raises(DataError, match="(?s)could not download tiny.*bad.zip.*does not match.*missing.zip.*404"):
        corpora.download_wikitext(
            "tiny", tmp_path / "out", [("mirror", url + "/bad.zip"), ("mirror", url + "/missing.zip")]
        )
    assert not (tmp_path / "out").exists() or not any((tmp_path / "out").iterdir())
