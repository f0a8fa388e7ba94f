"""load_model equals the Hugging Face forward of the same weights, for every architecture
family it converts, with norm gains and biases away from the identity (a checkpoint whose
norm weights were dropped fails here; random-init norms would hide it)."""

from __future__ import annotations

from pathlib import Path

import pytest
import torch
from hf_families import (
    FAMILIES,
    VOCAB,
    max_centred_difference,
    perturbed,
    save_checkpoint,
    word_tokenizer,
)

from interp import KERNELS, load_model


@pytest.fixture(scope="module")
def checkpoints(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path]:
    root = tmp_path_factory.mktemp("families")
    return {family: save_checkpoint(family, root / family) for family in FAMILIES}


@pytest.mark.parametrize("kernel", KERNELS)
@pytest.mark.parametrize("family", list(FAMILIES))
def test_local_checkpoint_matches_hf(
    checkpoints: dict[str, Path], family: str, kernel: str, one_thread
) -> None:
    assert max_centred_difference(checkpoints[family], kernel) < 1e-4


def test_norm_weights_are_far_from_identity() -> None:
    # The parity above only means something if dropping the norm weights changes logits.
    gains = [
        param
        for name, param in perturbed("llama-gqa").named_parameters()
        if "norm" in name and name.endswith("weight")
    ]
    assert gains and all((gain - 1).abs().mean() > 0.2 for gain in gains)


def test_in_memory_hf_model_matches_its_forward(one_thread) -> None:
    hf_model = perturbed("llama-gqa")
    hooked = load_model(hf_model, tokenizer=word_tokenizer(), device="cpu", attn_kernel="sdpa")
    assert (hooked.n_layers, hooked.n_heads) == (2, 4)
    tokens, mask = hooked.to_tokens(["w5 w6 w7 w8", "w9 w10"])
    assert tokens[0, 0] == 0  # the tokenizer's BOS
    with torch.no_grad():
        ours = hooked(tokens, mask)
        theirs = hf_model(tokens, attention_mask=mask.long()).logits
    ours, theirs = ours - ours.mean(-1, keepdim=True), theirs - theirs.mean(-1, keepdim=True)
    torch.testing.assert_close(ours[mask], theirs[mask], atol=1e-4, rtol=0)


def test_in_memory_model_without_tokenizer_takes_token_ids(one_thread) -> None:
    hooked = load_model(perturbed("gpt2"), device="cpu")
    assert hooked.tokenizer is None
    logits = hooked(torch.randint(0, VOCAB, (1, 5)))
    assert logits.shape == (1, 5, VOCAB)
    with pytest.raises(ValueError, match="has no tokenizer"):
        hooked.to_tokens("w5")
