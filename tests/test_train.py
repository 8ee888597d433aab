"""Model causality, perplexity arithmetic, the Trainer's state, training, resuming and the
offline real-data path."""

import io
import math
import signal
from dataclasses import replace

import numpy as np
import pytest
import torch
import torch.nn.functional as F

from attnscore import checkpoints, runtime, tokenizer, tokens, train
from attnscore.corpora import SPLITS
from attnscore.evaluation import evaluate, evaluate_checkpoint, perplexity
from attnscore.files import DataError
from attnscore.model import DecoderLM, ModelConfig, linear_cross_entropy
from attnscore.train import TrainingInterrupted
from attnscore.trainer import Trainer
from helpers import TINY, tiny_run, tiny_run_folder, train_config, without_timing


@pytest.mark.parametrize("kind", ["dot", "euclid"])
@pytest.mark.parametrize("options", [{}, {"positions": "learned", "activation": "gelu", "tie_embeddings": True}])
def test_model_never_looks_ahead(kind, options):
    torch.manual_seed(0)
    model = DecoderLM(ModelConfig(vocab_size=50, attention=kind, **TINY, **options)).eval()
    idx = torch.randint(50, (2, 12))
    changed = idx.clone()
    changed[:, 8] = (changed[:, 8] + 1) % 50
    torch.testing.assert_close(model(idx)[:, :8], model(changed)[:, :8], rtol=0, atol=0)
    assert not torch.allclose(model(idx)[:, 8:], model(changed)[:, 8:])


def test_tied_embeddings_share_one_matrix():
    model = DecoderLM(ModelConfig(vocab_size=50, tie_embeddings=True, **TINY))
    assert model.head.weight is model.tok_emb.weight


def test_model_returns_summed_nll():
    model = DecoderLM(ModelConfig(vocab_size=50, **TINY)).eval()
    idx, targets = torch.randint(50, (2, 5)), torch.randint(50, (2, 5))
    expected = -torch.log_softmax(model(idx), -1).gather(-1, targets.unsqueeze(-1)).sum()
    torch.testing.assert_close(model(idx, targets), expected)


@pytest.mark.parametrize("bias", [True, False])
@pytest.mark.parametrize("vocab", [50, 64])  # padded to 64 outputs inside; already a multiple of 64
@pytest.mark.parametrize("chunk_rows", [4, 64])  # 10 rows: three chunks, the last short; one chunk
@pytest.mark.parametrize(
    "dtype, autocast, tolerance", [(torch.float64, None, 1e-12), (torch.float32, torch.bfloat16, 1e-2)]
)
def test_chunked_loss_and_its_gradients_equal_the_plain_ones(bias, vocab, chunk_rows, dtype, autocast, tolerance):
    """The loss and the gradients of x, weight and bias: equal in float64, and within bf16's
    precision under bf16 autocast (where both run their matrix products in bf16)."""
    torch.manual_seed(0)
    linear = torch.nn.Linear(8, vocab, bias=bias, dtype=dtype)
    x, targets = torch.randn(10, 8, dtype=dtype, requires_grad=True), torch.randint(vocab, (10,))
    losses = {
        "chunked": lambda: linear_cross_entropy(x, linear, targets, chunk_rows),
        "plain": lambda: F.cross_entropy(linear(x).to(dtype), targets, reduction="sum"),
    }
    results = {}
    for name, loss_of in losses.items():
        x.grad = None
        linear.zero_grad(set_to_none=True)
        with torch.autocast("cpu", dtype=autocast, enabled=autocast is not None):
            loss = loss_of()
        (loss * 0.5).backward()  # a factor, so backward has to scale the gradients it kept
        results[name] = (loss, x.grad, *(param.grad for param in linear.parameters()))
    torch.testing.assert_close(results["chunked"], results["plain"], rtol=tolerance, atol=tolerance)
    with torch.no_grad(), torch.autocast("cpu", dtype=autocast, enabled=autocast is not None):  # the loss alone
        torch.testing.assert_close(linear_cross_entropy(x, linear, targets, chunk_rows), results["plain"][0])


def test_evaluation_counts_every_predicted_token_once():
    """Valid/test perplexity is exp(total NLL / predicted tokens) over every window, the short
    last one included; here the NLL is summed token by token from the model's log-probabilities."""
    model = DecoderLM(ModelConfig(vocab_size=64, **TINY))
    matrix = tokens.batchify(np.arange(4 * 37) % 64, 4)  # rows of 37: 36 targets, windows of 16, 16 and 4
    nll, count = evaluate(model, matrix, seq_len=16, dtype=None)
    expected = 0.0
    model.eval()
    with torch.no_grad():
        for start, end in ((0, 16), (16, 32), (32, 36)):
            log_probs = torch.log_softmax(model(matrix[:, start:end]).double(), -1)
            expected -= log_probs.gather(-1, matrix[:, start + 1 : end + 1].unsqueeze(-1)).sum().item()
    assert count == 4 * 36 and nll == pytest.approx(expected, rel=1e-6)
    assert perplexity(nll, count) == pytest.approx(math.exp(expected / (4 * 36)), rel=1e-6)


def test_a_trainer_loaded_from_a_state_dict_takes_the_same_next_step():
    """Trainer.state_dict() holds all a step depends on but the RNG (model, optimizer, schedule,
    scaler): a fresh Trainer of other initial weights, loaded with it as a checkpoint holds it,
    steps to bit-identical weights."""
    model_cfg = ModelConfig(vocab_size=64, **TINY)
    cfg = train_config(optimizer="adamw", schedule="cosine", warmup_steps=2, weight_decay=0.1, grad_clip=1.0)
    x = torch.randint(64, (2, 16), generator=torch.Generator().manual_seed(0))
    trainer = Trainer(model_cfg, cfg, total_steps=10)
    for _ in range(3):
        trainer.step(x, x)
    buffer = io.BytesIO()
    torch.save(trainer.state_dict(), buffer)
    buffer.seek(0)
    fresh = Trainer(model_cfg, replace(cfg, seed=cfg.seed + 1), total_steps=10)
    fresh.load_state_dict(torch.load(buffer, weights_only=True))
    assert fresh.lr == trainer.lr
    for each in (trainer, fresh):
        torch.manual_seed(5)  # the same dropout masks
        each.step(x, x)
    assert fresh.lr == trainer.lr != cfg.lr
    for name, weight in trainer.model.state_dict().items():
        assert torch.equal(fresh.model.state_dict()[name], weight), name


def test_training_learns_and_writes_checkpoints(token_files, tmp_path):
    history = tiny_run(token_files, tmp_path / "ckpt", epochs=3)
    assert [row["epoch"] for row in history] == [1, 2, 3]
    assert history[-1]["valid_ppl"] < history[0]["valid_ppl"] < 64  # better than uniform over the vocabulary
    assert {"train_ppl", "valid_ppl", "test_ppl", "lr", "tokens_per_s", "elapsed_s"} <= set(history[0])
    folder = tiny_run_folder(token_files, tmp_path / "ckpt")
    saved = checkpoints.load(folder / "last.pt")
    assert saved["epoch"] == 3 and {"trainer", "rng_cpu", "history"} <= set(saved)
    assert set(saved["trainer"]) == {"model", "optimizer", "scheduler", "scaler"}
    best = checkpoints.load(folder / "best.pt")
    assert best["history"][-1]["valid_loss"] == min(row["valid_loss"] for row in history)
    for epoch in (1, 2, 3):
        assert checkpoints.load(folder / f"epoch{epoch}.pt", checkpoints.MODEL_KEYS)["epoch"] == epoch


def test_same_seed_same_metrics(token_files, tmp_path):
    assert without_timing(tiny_run(token_files, tmp_path / "a")) == without_timing(
        tiny_run(token_files, tmp_path / "b")
    )


def test_interrupted_run_resumes_to_identical_metrics(token_files, tmp_path, monkeypatch):
    reference = tiny_run(token_files, tmp_path / "reference")
    real_step, calls = train.Trainer.step, []

    def step_then_sigterm(self, x, y):
        calls.append(1)
        if len(calls) == 90:  # mid-way through epoch 2 (63 steps an epoch)
            signal.raise_signal(signal.SIGTERM)
        return real_step(self, x, y)

    monkeypatch.setattr(train.Trainer, "step", step_then_sigterm)
    with pytest.raises(TrainingInterrupted, match="re-run to resume"):
        tiny_run(token_files, tmp_path / "resumed")
    monkeypatch.setattr(train.Trainer, "step", real_step)
    assert checkpoints.load(tiny_run_folder(token_files, tmp_path / "resumed") / "last.pt")["step"] == 90 - 63
    assert without_timing(tiny_run(token_files, tmp_path / "resumed")) == without_timing(reference)


def test_raising_epochs_continues_a_finished_run(token_files, tmp_path):
    reference = tiny_run(token_files, tmp_path / "reference", epochs=2)
    tiny_run(token_files, tmp_path / "continued", epochs=1)
    assert without_timing(tiny_run(token_files, tmp_path / "continued", epochs=2)) == without_timing(reference)


def test_evaluate_checkpoint_reports_test_perplexity(token_files, tmp_path):
    history = tiny_run(token_files, tmp_path / "ckpt", epochs=2)
    checkpoints.export_best(tiny_run_folder(token_files, tmp_path / "ckpt"), history, tmp_path / "model.pt")
    result = evaluate_checkpoint(
        tmp_path / "model.pt", token_files["test"], seq_len=16, eval_batch_size=4, device="cpu", precision="fp32"
    )
    best = min(history, key=lambda row: row["valid_loss"])
    assert result["perplexity"] == pytest.approx(best["test_ppl"], rel=1e-6)
    assert result["tokens"] == 996 and result["attention"] == "dot" and result["epoch"] == best["epoch"]


def test_gpus_a_machine_lacks_are_named(monkeypatch):
    monkeypatch.setattr(torch.cuda, "is_available", lambda: False)
    monkeypatch.setattr(torch.cuda, "device_count", lambda: 0)
    monkeypatch.delenv("CUDA_VISIBLE_DEVICES", raising=False)
    with pytest.raises(RuntimeError, match="train.device is 'cuda' but this machine has no CUDA GPUs; set"):
        runtime.pick_device("cuda")
    runtime.check_device("auto", processes=4)  # auto without CUDA is the CPU
    monkeypatch.setattr(torch.cuda, "is_available", lambda: True)
    monkeypatch.setattr(torch.cuda, "device_count", lambda: 2)
    monkeypatch.setenv("CUDA_VISIBLE_DEVICES", "3,5")
    runtime.check_device("cuda:1")
    with pytest.raises(RuntimeError, match="'cuda:7' but this machine has 2 CUDA GPUs \\(CUDA_VISIBLE_DEVICES=3,5\\)"):
        runtime.check_device("cuda:7")
    with pytest.raises(RuntimeError, match="train.processes=3 needs one GPU per process but this machine has 2"):
        runtime.check_device("auto", processes=3)


def test_offline_real_path_gpt2_bpe_on_wikitext_valid_and_test(shared_data, tmp_path):
    """Tokenize the real WikiText-2 valid/test files with GPT-2's BPE, then train a few steps.

    The train split is not available offline, so this 'offline mini split' trains on valid.
    """
    wiki = shared_data / "wikitext-2"
    out = {split: tmp_path / f"{split}.npy" for split in SPLITS}
    out.update(tokenizer=tmp_path / "tokenizer.json", meta=tmp_path / "meta.json")
    texts = {"train": wiki / "wiki.valid.tokens", "valid": wiki / "wiki.test.tokens", "test": wiki / "wiki.test.tokens"}
    meta = tokenizer.tokenize_corpus(texts, out, "gpt2", bpe_dir=shared_data / "gpt2-bpe")
    assert meta["vocab_size"] == 50257 and meta["tokens"] == {"train": 258_659, "valid": 295_877, "test": 295_877}
    # Evaluating 50,257-way logits over all 295,877 tokens takes minutes here: evaluate on a prefix.
    for split in ("valid", "test"):
        tokens.save_tokens(np.load(out[split])[:8192], out[split])
    model_cfg = ModelConfig(vocab_size=50257, d_model=32, n_layers=1, n_heads=2, d_ff=64, max_seq_len=32)
    cfg = train_config(seq_len=32, batch_size=8, eval_batch_size=8, epochs=1, lr=1e-3, max_steps_per_epoch=5)
    token_files = {s: out[s] for s in SPLITS}
    (row,) = train.train(
        model_cfg, cfg, token_files=token_files, checkpoint_dir=tmp_path / "ckpt", log=lambda *_: None
    ).history
    assert math.isfinite(row["test_ppl"]) and row["test_ppl"] < 2 * 50257


def test_corpus_too_small_for_one_batch_fails_before_training(tmp_path):
    files = {split: tmp_path / f"{split}.npy" for split in SPLITS}
    for path in files.values():
        tokens.save_tokens(np.arange(20, dtype=np.uint16), path)
    with pytest.raises(DataError, match="20 tokens are too few for batch size 16"):
        tiny_run(files, tmp_path / "ckpt", batch_size=16)
    assert not (tmp_path / "ckpt").exists()
