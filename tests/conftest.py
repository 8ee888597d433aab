from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
SHARED_DATA = ROOT.parent / "shared" / "data"


@pytest.fixture
def shared_data() -> Path:
    """The offline WikiText-2 valid/test splits and GPT-2 BPE files laid beside the project."""
    if not (SHARED_DATA / "gpt2-bpe" / "vocab.bpe").exists():
        pytest.skip(f"{SHARED_DATA} is not there (it sits beside the project on dev machines and CI)")
    return SHARED_DATA
