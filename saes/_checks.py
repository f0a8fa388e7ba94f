"""Input checks shared by training and coding: one place for the error messages."""

from __future__ import annotations

from collections.abc import Sequence

import torch
from torch import Tensor


def check_acts(
    acts: Tensor, name: str, *, last_dim: int | None = None, what: str = "d_model"
) -> None:
    """Raise if `acts` is not a non-empty 3-D floating tensor with the expected last dimension."""
    if not isinstance(acts, Tensor):
        raise TypeError(f"{name} must be a torch.Tensor, got {type(acts).__name__}.")
    if acts.ndim != 3:
        hint = " For a single prompt use acts.unsqueeze(0)." if acts.ndim == 2 else ""
        raise ValueError(
            f"{name} must be 3-D [n_prompts, n_heads, {what}], got shape {tuple(acts.shape)}.{hint}"
        )
    if not acts.is_floating_point():
        raise TypeError(
            f"{name} must be a floating tensor, got dtype {acts.dtype}; cast it with .float()."
        )
    if acts.shape[0] == 0 or acts.shape[1] == 0:
        raise ValueError(f"{name} has no prompts or no heads: shape {tuple(acts.shape)}.")
    if last_dim is not None and acts.shape[-1] != last_dim:
        raise ValueError(
            f"{name} has {what}={acts.shape[-1]} but the SAE expects {last_dim}; "
            f"pass activations of the space the SAE was trained on."
        )


def check_finite(
    acts: Tensor,
    name: str,
    *,
    row_offset: int = 0,
    n_heads: int = 1,
    head_offset: int = 0,
    prompt_ids: Sequence[int] | None = None,
) -> None:
    """Raise naming the first (prompt, head) with a NaN or inf in `acts` [rows, d].

    Rows are (prompt, head) pairs flattened prompt-major over `n_heads` heads starting at
    `row_offset`; `head_offset` shifts the head reported (a layer's slice of all heads) and
    `prompt_ids` maps row prompts back to the caller's prompt indices (a subset).
    """
    bad_rows = ~torch.isfinite(acts).all(dim=-1)
    if bool(bad_rows.any()):
        first = row_offset + int(bad_rows.nonzero()[0, 0])
        prompt = first // n_heads
        if prompt_ids is not None:
            prompt = prompt_ids[prompt]
        raise ValueError(
            f"{name} contains NaN or inf ({int(bad_rows.sum())} rows in this batch; first at "
            f"prompt {prompt}, head {head_offset + first % n_heads}). Fix the capture "
            f"(e.g. fp16 overflow: capture in float32) or drop those prompts."
        )
