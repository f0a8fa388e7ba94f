"""Capture from a model split over several GPUs (`load_model(..., n_devices=N)`)."""

from __future__ import annotations

import copy

import pytest
import torch
from transformer_lens import HookedTransformer, HookedTransformerConfig

from interp import capture_heads, load_model

PROMPTS = ["When Mary and John went to the store, John gave a drink to", "Hi", "The cat sat on"]

two_gpus = pytest.mark.skipif(torch.cuda.device_count() < 2, reason="needs two CUDA devices")


def _random_model(rotary_gqa: bool, gpt2_tokenizer) -> HookedTransformer:
    common = {"n_layers": 4, "d_model": 64, "d_head": 16, "n_heads": 4, "n_ctx": 64, "seed": 0}
    if rotary_gqa:
        fields = {
            "n_key_value_heads": 2,
            "d_mlp": 128,
            "act_fn": "silu",
            "gated_mlp": True,
            "normalization_type": "RMS",
            "positional_embedding_type": "rotary",
            "rotary_dim": 16,
        }
    else:
        fields = {"d_mlp": 256, "act_fn": "gelu_new", "normalization_type": "LN"}
    cfg = HookedTransformerConfig(**common, **fields, d_vocab=len(gpt2_tokenizer), device="cpu")
    model = HookedTransformer(cfg).eval().requires_grad_(False)
    gpt2_tokenizer.pad_token = gpt2_tokenizer.eos_token
    model.tokenizer = gpt2_tokenizer
    return model


def test_n_devices_beyond_visible_gpus_is_an_error(gpt2_tokenizer) -> None:
    model = _random_model(False, gpt2_tokenizer)
    with pytest.raises(ValueError, match="n_devices=64 needs 64 CUDA devices"):
        load_model(model, n_devices=64, device="cuda")


@two_gpus
@pytest.mark.parametrize("kernel", ["eager", "sdpa", "flex"])
@pytest.mark.parametrize("rotary_gqa", [False, True], ids=["gpt2", "llama-gqa"])
def test_split_capture_equals_one_gpu(kernel: str, rotary_gqa: bool, gpt2_tokenizer) -> None:
    model = _random_model(rotary_gqa, gpt2_tokenizer)
    one = load_model(copy.deepcopy(model), attn_kernel=kernel, device="cuda:0")
    split = load_model(model, attn_kernel=kernel, device="cuda:0", n_devices=2)
    devices = {block.attn.W_Q.device for block in split.model.blocks}
    assert devices == {torch.device("cuda", 0), torch.device("cuda", 1)}
    assert split.model.unembed.W_U.device == torch.device("cuda", 1)
    for positions in ("mean", "last", "all"):
        want = capture_heads(one, PROMPTS, positions=positions, progress=False, return_z=True)
        got = capture_heads(split, PROMPTS, positions=positions, progress=False, return_z=True)
        torch.testing.assert_close(got.results, want.results, rtol=1e-5, atol=1e-6)
        torch.testing.assert_close(got.z, want.z, rtol=1e-5, atol=1e-6)
    tokens_BS, mask_BS = split.to_tokens(PROMPTS)
    torch.testing.assert_close(
        split(tokens_BS, mask_BS).cuda(0)[mask_BS], one(tokens_BS, mask_BS)[mask_BS]
    )
