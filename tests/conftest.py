"""Shared fixtures: the real GPT-2 tokenizer (offline) and seeds."""

from __future__ import annotations

from pathlib import Path

import pytest
from tokenizers import Tokenizer, decoders, models, pre_tokenizers
from transformers import PreTrainedTokenizerFast

FIXTURES = Path(__file__).parent / "fixtures"
GPT2_TOKENIZER_DIR = FIXTURES / "gpt2-tokenizer"


def build_gpt2_tokenizer() -> PreTrainedTokenizerFast:
    """The byte-level BPE GPT-2 tokenizer from the vendored vocab and merges files."""
    bpe = models.BPE.from_file(
        str(GPT2_TOKENIZER_DIR / "vocab.json"), str(GPT2_TOKENIZER_DIR / "merges.txt")
    )
    backend = Tokenizer(bpe)
    backend.pre_tokenizer = pre_tokenizers.ByteLevel(add_prefix_space=False)
    backend.decoder = decoders.ByteLevel()
    return PreTrainedTokenizerFast(
        tokenizer_object=backend,
        bos_token="<|endoftext|>",
        eos_token="<|endoftext|>",
        unk_token="<|endoftext|>",
    )


@pytest.fixture(scope="session")
def gpt2_tokenizer() -> PreTrainedTokenizerFast:
    return build_gpt2_tokenizer()
