"""Fixtures shared by the tests; helpers for running the workflow are in helpers.py."""

import os

import pytest
import torch

from helpers import ROOT, SEEDS, copy_workflow, snakemake, tiny_config, write_config, write_token_files

# Without a GPU the Triton kernels run through Triton's interpreter, which must be chosen before
# anything imports triton. Test modules import it indirectly (torch.utils.flop_counter does), so
# this is decided here, before any test module is collected.
if not torch.cuda.is_available():
    os.environ.setdefault("TRITON_INTERPRET", "1")

SHARED_DATA = ROOT.parent / "shared" / "data"


@pytest.fixture
def shared_data():
    """The offline WikiText-2 valid/test splits and GPT-2 BPE files laid beside the project."""
    if not (SHARED_DATA / "gpt2-bpe" / "vocab.bpe").exists():
        pytest.skip(f"{SHARED_DATA} is not there (it sits beside the project on dev machines and CI)")
    return SHARED_DATA


@pytest.fixture
def token_files(tmp_path):
    """Token arrays of a small learnable stream (vocabulary 64): 4000 train, 1000 valid, 1000 test."""
    return write_token_files(tmp_path)


@pytest.fixture(scope="session")
def tiny_experiment(tmp_path_factory):
    """The tests' config (.test/config) at two seeds, run once through a copy of the workflow:
    (its folder, the log of that run). A module works on a copy of it (helpers.copy_finished)."""
    work = copy_workflow(tmp_path_factory.mktemp("tiny"))
    config = write_config(work, "tiny.yaml", tiny_config(seeds=SEEDS))
    return work, snakemake(work, "--configfile", config).log
