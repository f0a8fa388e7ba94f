"""Random-weight models of real shapes and a device-aware timer, shared by the benchmarks.

Timing does not depend on the weights, so every benchmark builds a random HookedTransformer
with a real model's shape (no download) and the vendored GPT-2 tokenizer. Models are built
directly on their device (no CPU copy first), which matters at Llama-3-8B size (16 GB bf16).
"""

from __future__ import annotations

import statistics
import sys
import time
import warnings
from collections.abc import Callable
from pathlib import Path
from typing import Any

import torch

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))

from interp import HookedModel, load_model  # noqa: E402
from tests.conftest import build_gpt2_tokenizer  # noqa: E402

_GPT2 = {"act_fn": "gelu_new", "normalization_type": "LN", "d_head": 64, "n_ctx": 1024}
SHAPES: dict[str, dict[str, Any]] = {
    "gpt2-small": {**_GPT2, "n_layers": 12, "n_heads": 12, "d_model": 768, "d_mlp": 3072},
    "gpt2-xl": {**_GPT2, "n_layers": 48, "n_heads": 25, "d_model": 1600, "d_mlp": 6400},
    "attn-only-4l": {
        "n_layers": 4,
        "n_heads": 8,
        "d_model": 512,
        "d_head": 64,
        "n_ctx": 2048,
        "attn_only": True,
        "normalization_type": "LN",
        "positional_embedding_type": "shortformer",
    },
    "llama-3-8b": {
        "n_layers": 32,
        "n_heads": 32,
        "n_key_value_heads": 8,
        "d_model": 4096,
        "d_head": 128,
        "d_mlp": 14336,
        "d_vocab": 128256,
        "n_ctx": 8192,
        "act_fn": "silu",
        "gated_mlp": True,
        "normalization_type": "RMS",
        "final_rms": True,
        "eps": 1e-5,
        "positional_embedding_type": "rotary",
        "rotary_dim": 128,
        "rotary_base": 500000,
        "original_architecture": "LlamaForCausalLM",
    },
}
"""HookedTransformerConfig fields of each real shape (vocabulary: at least GPT-2's)."""


def random_model(
    shape: str,
    *,
    device: str = "cpu",
    dtype: torch.dtype = torch.float32,
    attn_kernel: str = "sdpa",
    n_devices: int = 1,
    seed: int = 0,
    **overrides: Any,
) -> HookedModel:
    """A random HookedModel of a real shape with the GPT-2 tokenizer, built on `device`."""
    from transformer_lens import HookedTransformer, HookedTransformerConfig

    tokenizer = build_gpt2_tokenizer()
    tokenizer.pad_token = tokenizer.eos_token
    fields = {**SHAPES[shape], **overrides}
    # Tokens of the GPT-2 tokenizer must be valid ids; a larger real vocabulary is kept.
    fields["d_vocab"] = max(fields.get("d_vocab", 0), len(tokenizer))
    cfg = HookedTransformerConfig(**fields, device=device, dtype=dtype, seed=seed)
    warnings.filterwarnings("ignore", category=DeprecationWarning)
    # Parameters are allocated and initialised on the device itself.
    with torch.device(device):
        model = HookedTransformer(cfg, move_to_device=False)
    model.eval().requires_grad_(False)
    model.tokenizer = tokenizer
    hooked = load_model(model, attn_kernel=attn_kernel, n_devices=n_devices, device=device)
    hooked.name = f"random-{shape}"
    return hooked


def timed(fn: Callable[[], Any], device: torch.device | str) -> tuple[float, Any]:
    """Seconds of `fn()` (CUDA: events around it, synchronised) and its result."""
    device = torch.device(device)
    if device.type == "cuda":
        torch.cuda.synchronize(device)
        start, end = torch.cuda.Event(enable_timing=True), torch.cuda.Event(enable_timing=True)
        start.record()
        out = fn()
        end.record()
        torch.cuda.synchronize(device)
        return start.elapsed_time(end) / 1e3, out
    start_s = time.perf_counter()
    out = fn()
    return time.perf_counter() - start_s, out


def median_seconds(
    fn: Callable[[], Any], device: torch.device | str, warmup: int, repeats: int
) -> tuple[float, list[float]]:
    """Median and all timings of `repeats` calls of `fn` after `warmup` untimed calls."""
    for _ in range(warmup):
        fn()
    times = [timed(fn, device)[0] for _ in range(repeats)]
    return statistics.median(times), times
