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


def save_tiny_gpt2(directory: Path, seed: int = 0) -> Path:
    """A random 2-layer, 4-head, d_model 64 GPT-2 checkpoint with the GPT-2 tokenizer."""
    import torch
    from transformers import GPT2Config, GPT2LMHeadModel

    torch.manual_seed(seed)
    tokenizer = build_gpt2_tokenizer()
    config = GPT2Config(n_layer=2, n_head=4, n_embd=64, n_positions=256, vocab_size=len(tokenizer))
    GPT2LMHeadModel(config).save_pretrained(directory)
    tokenizer.save_pretrained(directory)
    return directory


@pytest.fixture(scope="session")
def tiny_gpt2_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """Directory of a tiny random GPT-2 checkpoint (Hugging Face format), built once."""
    return save_tiny_gpt2(tmp_path_factory.mktemp("tiny-gpt2-checkpoint"))


@pytest.fixture
def one_thread():
    """One torch thread: on a loaded machine tiny ops otherwise wait for a descheduled one."""
    import torch

    previous = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(previous)
