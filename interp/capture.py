"""capture_heads(...) -> HeadCapture: every head's output in residual space, per prompt.

A head's result is `z_h @ W_O[h]` (TransformerLens `hook_result`, no `b_O`). Only `hook_z`
is hooked; positions are reduced on z before the W_O multiplication (linearity), so the
[batch, pos, heads, d_model] result tensor of `use_attn_result` is never built. Each layer's
reduction and projection run inside its hook, on that layer's device, so models split over
several GPUs (`load_model(..., n_devices=N)`) capture without gathering W_O in one place.

`mean_z(...) -> MeanZ`: every layer's z averaged over prompts per position, the reference of
mean ablation.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from typing import Any, Literal

import torch
from tqdm.auto import tqdm

from interp.models import HookedModel

Positions = Literal["mean", "last", "all"]
_POSITIONS = ("mean", "last", "all")


@dataclass
class HeadCapture:
    """Per-head outputs (z_h @ W_O[h], no b_O) of a set of prompts, in float32."""

    results: torch.Tensor
    """`mean`/`last`: [n_prompts, n_layers*n_heads, d_model] (`acts_PHD`). `all`:
    [n_prompts, max_len, n_layers*n_heads, d_model], zero where `mask` is False."""
    labels: list[str]
    """`L{layer}H{head}` of each head index (layer-major)."""
    positions: str
    """How positions were reduced: `mean`, `last` or `all`."""
    lengths: torch.Tensor
    """Real tokens per prompt (BOS included), [n_prompts]."""
    mask: torch.Tensor | None = None
    """`all` only: [n_prompts, max_len] bool, True at the positions that were kept."""
    z: torch.Tensor | None = None
    """With `return_z`: z reduced like `results`, d_head instead of d_model in the last dim."""


def capture_heads(
    model: HookedModel,
    prompts_or_tokens: Sequence[str] | torch.Tensor,
    *,
    positions: Positions = "mean",
    include_bos: bool = True,
    batch_size: int = 32,
    return_z: bool = False,
    progress: bool = True,
    attention_mask: torch.Tensor | None = None,
    device: str | torch.device = "cpu",
) -> HeadCapture:
    """Capture every head's result per prompt, reduced over positions (`mean`|`last`|`all`).

    `device` is where `results` and `z` are returned (default CPU); pass the model's device
    to keep them on the GPU for the SAE.
    """
    if not isinstance(model, HookedModel):
        raise TypeError(
            f"model is a {type(model).__name__}; wrap it first with interp.load_model(model)"
        )
    if positions not in _POSITIONS:
        raise ValueError(f"positions={positions!r} is not one of {_POSITIONS}")
    if batch_size < 1:
        raise ValueError(f"batch_size={batch_size}: use a positive batch size")
    tokens_PS, mask_PS = _tokens_and_mask(model, prompts_or_tokens, attention_mask)
    keep_PS = mask_PS.clone()
    if not include_bos:
        first_P = mask_PS.long().argmax(dim=1)
        rows = torch.arange(len(first_P))
        is_bos = tokens_PS[rows, first_P] == model.bos_token_id
        keep_PS[rows[is_bos], first_P[is_bos]] = False
    empty = (~keep_PS.any(dim=1)).nonzero().flatten().tolist()
    if empty:
        raise ValueError(
            f"prompts {empty[:5]} have no token left to reduce (only BOS and "
            "include_bos=False); drop them or set include_bos=True"
        )
    lengths_P = mask_PS.sum(dim=1)
    out_device = torch.device(device)
    outputs: list[tuple[torch.Tensor, torch.Tensor, torch.Tensor | None]] = []
    # Longest first so that each batch carries little padding; order restored below.
    order = torch.argsort(lengths_P, descending=True, stable=True)
    batches = order.split(batch_size)
    for index in tqdm(batches, desc=f"capture {model.name}", disable=not progress):
        width = int(mask_PS[index].nonzero()[:, 1].max()) + 1
        batch_tokens = tokens_PS[index, :width]
        batch_mask = mask_PS[index, :width]
        keep_BS = keep_PS[index, :width]
        results, z = _batch_results(
            model, batch_tokens, batch_mask, keep_BS, positions, out_device, return_z
        )
        outputs.append((index, results, z))
    max_len = tokens_PS.shape[1]
    results_P = _reassemble([(i, r) for i, r, _ in outputs], len(order), max_len, out_device)
    z_P = (
        _reassemble([(i, z) for i, _, z in outputs], len(order), max_len, out_device)
        if return_z
        else None
    )
    return HeadCapture(
        results=results_P,
        labels=model.head_labels,
        positions=positions,
        lengths=lengths_P.cpu(),
        mask=keep_PS.cpu() if positions == "all" else None,
        z=z_P,
    )


def _tokens_and_mask(
    model: HookedModel,
    prompts_or_tokens: Sequence[str] | torch.Tensor,
    attention_mask: torch.Tensor | None,
) -> tuple[torch.Tensor, torch.Tensor]:
    """Token ids and a boolean real-token mask, on the model's device."""
    if isinstance(prompts_or_tokens, torch.Tensor):
        tokens = prompts_or_tokens
        if tokens.ndim != 2:
            raise ValueError(f"tokens have shape {tuple(tokens.shape)}; expected [batch, seq]")
        if attention_mask is None:
            attention_mask = torch.ones_like(tokens, dtype=torch.bool)
        if attention_mask.shape != tokens.shape:
            raise ValueError(
                f"attention_mask shape {tuple(attention_mask.shape)} differs from tokens "
                f"shape {tuple(tokens.shape)}"
            )
        return tokens.to(model.device), attention_mask.to(model.device).bool()
    if isinstance(prompts_or_tokens, str):
        raise TypeError("pass a list of prompts, not a single string")
    if attention_mask is not None:
        raise ValueError("attention_mask is only meaningful with token ids, not strings")
    return model.to_tokens(list(prompts_or_tokens), prepend_bos=True)


def _batch_results(
    model: HookedModel,
    tokens_BS: torch.Tensor,
    mask_BS: torch.Tensor,
    keep_BS: torch.Tensor,
    positions: str,
    out_device: torch.device,
    return_z: bool,
) -> tuple[torch.Tensor, torch.Tensor | None]:
    """Head results (and z) of one batch, reduced over kept positions, float32 on `out_device`.

    Shapes [batch, layers*heads, d_model] and [batch, layers*heads, d_head], or with a
    `seq` dimension after `batch` for `all`.
    """
    results: list[torch.Tensor | None] = [None] * model.n_layers
    zs: list[torch.Tensor | None] = [None] * model.n_layers
    count_B = keep_BS.sum(dim=1).float()
    last_B = (keep_BS.long() * torch.arange(keep_BS.shape[1], device=keep_BS.device)).argmax(1)

    def reduce(z_BSHd: torch.Tensor, hook: Any) -> None:
        layer = hook.layer()
        # Layers of a model split over GPUs live on different devices.
        keep, count, last = (t.to(z_BSHd.device) for t in (keep_BS, count_B, last_B))
        # masked_fill rather than a product: values at padded positions are unspecified.
        z_BSHd = z_BSHd.float().masked_fill(~keep[:, :, None, None], 0.0)
        if positions == "mean":
            z = z_BSHd.sum(dim=1) / count[:, None, None]
        elif positions == "last":
            z = z_BSHd[torch.arange(len(last), device=last.device), last]
        else:
            z = z_BSHd
        W_O_HdM = model.model.blocks[layer].attn.W_O.float()
        results[layer] = torch.einsum("...hd,hdm->...hm", z, W_O_HdM).to(out_device)
        if return_z:
            zs[layer] = z.to(out_device)

    hooks = [(f"blocks.{layer}.attn.hook_z", reduce) for layer in range(model.n_layers)]
    # Right-padded, fully real batches need no mask (and keep sdpa on its fast path).
    mask = None if bool(mask_BS.all()) else mask_BS
    with torch.inference_mode(), model.hooks(hooks):
        model.run(tokens_BS, mask, return_type=None)
    return torch.cat(results, dim=-2), torch.cat(zs, dim=-2) if return_z else None


def _reassemble(
    outputs: list[tuple[torch.Tensor, torch.Tensor]],
    n_prompts: int,
    max_len: int,
    device: torch.device,
) -> torch.Tensor:
    """Per-batch tensors back in prompt order; `all` captures are zero-padded to max_len."""
    first = outputs[0][1]
    all_positions = first.ndim == 4
    shape = (
        (n_prompts, max_len, *first.shape[-2:]) if all_positions else (n_prompts, *first.shape[-2:])
    )
    merged = torch.zeros(shape, dtype=first.dtype, device=device)
    for index, batch in outputs:
        if all_positions:
            merged[index.to(device), : batch.shape[1]] = batch
        else:
            merged[index.to(device)] = batch
    return merged


@dataclass(frozen=True)
class MeanZ:
    """Per-layer mean ``z`` of some reference prompts, per position and over all positions."""

    by_position_LSHE: torch.Tensor
    """Mean over the prompts that reach each position (prompts are right-padded)."""
    overall_LHE: torch.Tensor
    """Mean over every real position, for positions past the longest reference prompt."""

    def at(self, width: int) -> torch.Tensor:
        """The mean of the first ``width`` positions, ``[layer, width, head, d_head]``."""
        mean_LSHE = self.by_position_LSHE[:, :width]
        if mean_LSHE.shape[1] < width:
            extra = self.overall_LHE[:, None].expand(-1, width - mean_LSHE.shape[1], -1, -1)
            mean_LSHE = torch.cat([mean_LSHE, extra], dim=1)
        return mean_LSHE


def mean_z(
    model: HookedModel,
    batches: Iterable[tuple[torch.Tensor, torch.Tensor]],
    progress: bool = False,
) -> MeanZ:
    """Mean ``z`` of right-padded ``(tokens_BS, mask_BS)`` batches, over real tokens."""
    sums_LSHE: torch.Tensor | None = None
    counts_S: torch.Tensor | None = None
    for tokens_BS, mask_BS in tqdm(batches, desc="mean z", disable=not progress, leave=False):
        # A batch without padding needs no mask (and keeps fused attention on its fast path).
        z_LBSHE = model.layer_z(tokens_BS, None if bool(mask_BS.all()) else mask_BS)
        # Sums in float32 at least (float64 models keep their precision).
        z_LBSHE = z_LBSHE.to(torch.promote_types(z_LBSHE.dtype, torch.float32))
        z_LBSHE = z_LBSHE.masked_fill(~mask_BS[None, :, :, None, None], 0.0)
        batch_sums, batch_counts = z_LBSHE.sum(dim=1), mask_BS.sum(dim=0).float()
        if sums_LSHE is None or counts_S is None:
            sums_LSHE, counts_S = batch_sums, batch_counts
            continue
        width = max(sums_LSHE.shape[1], batch_sums.shape[1])
        sums_LSHE = _pad(sums_LSHE, width) + _pad(batch_sums, width)
        counts_S = _pad(counts_S, width, dim=0) + _pad(batch_counts, width, dim=0)
    if sums_LSHE is None or counts_S is None:
        raise ValueError("mean z of no prompts; give at least one batch.")
    mean_LSHE = sums_LSHE / counts_S.clamp(min=1)[None, :, None, None]
    overall_LHE = sums_LSHE.sum(dim=1) / counts_S.sum()
    return MeanZ(mean_LSHE.to(model.dtype), overall_LHE.to(model.dtype))


def _pad(x: torch.Tensor, width: int, dim: int = 1) -> torch.Tensor:
    """Zero-pad axis ``dim`` (positions: 1 of ``[layer, seq, head, d]``, 0 of counts)."""
    padding = [0, 0] * (x.ndim - 1 - dim) + [0, width - x.shape[dim]]
    return torch.nn.functional.pad(x, padding)
