"""Fused norms and GELU (`interp.fused`) compute TransformerLens's function, hooks intact."""

from __future__ import annotations

import copy

import pytest
import torch
from transformer_lens import HookedTransformer, HookedTransformerConfig

from interp.fused import fuse_modules

COMMON = {"n_layers": 2, "d_model": 32, "d_head": 8, "n_heads": 4, "n_ctx": 16, "d_vocab": 50}
ARCHITECTURES = {
    "ln-gelu_new": {"d_mlp": 64, "act_fn": "gelu_new", "normalization_type": "LN"},
    "lnpre": {"d_mlp": 64, "act_fn": "gelu_new", "normalization_type": "LNPre"},
    "rms-gated": {
        "d_mlp": 64,
        "act_fn": "silu",
        "gated_mlp": True,
        "normalization_type": "RMS",
        "positional_embedding_type": "rotary",
        "rotary_dim": 8,
    },
    "rmspre": {"d_mlp": 64, "act_fn": "gelu", "normalization_type": "RMSPre"},
}


def _pair(fields: dict) -> tuple[HookedTransformer, HookedTransformer]:
    cfg = HookedTransformerConfig(**COMMON, **fields, seed=0, device="cpu", dtype=torch.float64)
    model = HookedTransformer(cfg).eval()
    for param in model.parameters():  # non-trivial norm weights and biases
        param.data.add_(0.1 * torch.randn_like(param))
    return model, fuse_modules(copy.deepcopy(model))


@pytest.mark.parametrize("name", sorted(ARCHITECTURES))
def test_fused_modules_compute_the_same_function(name: str) -> None:
    reference, fused = _pair(ARCHITECTURES[name])
    tokens = torch.randint(0, 50, (3, 16), generator=torch.Generator().manual_seed(1))
    torch.testing.assert_close(fused(tokens), reference(tokens), rtol=1e-10, atol=1e-10)


def test_norm_hooks_still_fire_and_edit() -> None:
    reference, fused = _pair(ARCHITECTURES["ln-gelu_new"])
    tokens = torch.randint(0, 50, (2, 8), generator=torch.Generator().manual_seed(2))
    seen = {}

    def double(value: torch.Tensor, hook) -> torch.Tensor:
        seen[hook.name] = value.shape
        return 2 * value

    hooks = [("blocks.1.ln1.hook_scale", double), ("blocks.0.mlp.hook_post", double)]
    want = reference.run_with_hooks(tokens, fwd_hooks=hooks)
    got = fused.run_with_hooks(tokens, fwd_hooks=hooks)
    assert set(seen) == {"blocks.1.ln1.hook_scale", "blocks.0.mlp.hook_post"}
    torch.testing.assert_close(got, want, rtol=1e-10, atol=1e-10)
