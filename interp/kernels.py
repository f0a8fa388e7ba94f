"""Attention kernel switch (eager | sdpa | flex) that keeps TransformerLens hook names.

`eager` is TransformerLens's own attention forward (it materialises scores and patterns, so
`hook_attn_scores` and `hook_pattern` fire). `sdpa` and `flex` replace each attention
module's forward with `AttentionKernel`, which computes q, k, v through the module's own
methods (so `hook_q`, `hook_k`, `hook_v` and, for rotary models, `hook_rot_q`, `hook_rot_k`
fire unchanged), calls the fused kernel, then fires `hook_z` and, when
`cfg.use_attn_result` is on, `hook_result`, exactly where TransformerLens does.

Padding: prompts are right-padded, so for every causal preset a real query only sees real
keys and the padding mask is redundant; the fused kernels then drop it, which keeps sdpa
on its flash / causal fast path and lets flex reuse block masks. Values at padded query
positions are therefore unspecified (they differ between kernels); only real positions are
comparable. Left-padded masks are honoured exactly by every kernel.
"""

from __future__ import annotations

import warnings
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

import torch
import torch.nn.functional as F
from transformer_lens import HookedTransformer
from transformer_lens.components.abstract_attention import AbstractAttention
from transformer_lens.hook_points import HookPoint

from interp import KERNELS
from interp.masks import LayerMask, MaskSpec, resolve_masks

# flex_attention works on 128-token blocks; padding the sequence to a multiple keeps the
# number of distinct compiled shapes and cached block masks small.
_FLEX_BLOCK = 128

_OLMO_ARCHITECTURES = ("OlmoeForCausalLM", "Olmo2ForCausalLM", "Olmo3ForCausalLM")


def _unsupported_features(model: HookedTransformer) -> list[str]:
    """Model features that the fused kernels do not reproduce (eager handles them all)."""
    cfg = model.cfg
    checks = {
        f"positional_embedding_type={cfg.positional_embedding_type!r}": (
            cfg.positional_embedding_type in ("alibi", "relative_positional_bias")
        ),
        "attention sinks (use_attention_sinks)": bool(cfg.use_attention_sinks),
        "attention-score soft-capping": bool(cfg.attn_scores_soft_cap)
        and cfg.attn_scores_soft_cap > 0,
        f"{cfg.original_architecture} full-width QK norm": (
            cfg.original_architecture in _OLMO_ARCHITECTURES
        ),
        "clip_qkv": cfg.clip_qkv is not None,
        "log-n attention scaling (use_logn_attn)": bool(cfg.use_logn_attn),
        "4-bit weights": bool(cfg.load_in_4bit),
        f"attention_dir={cfg.attention_dir!r}": cfg.attention_dir != "causal",
    }
    return [name for name, present in checks.items() if present]


@dataclass
class _DenseMasks:
    """Dense boolean masks of the layers, cached for the current shape only."""

    cache: dict[tuple, torch.Tensor] = field(default_factory=dict)

    def get(
        self, layer_mask: LayerMask, q_len: int, k_len: int, device: torch.device
    ) -> torch.Tensor:
        """The dense mask of a layer for `q_len` queries and `k_len` keys."""
        key = (layer_mask, q_len, k_len, device)
        if key not in self.cache:
            if any(k[1:] != key[1:] for k in self.cache):
                self.cache.clear()
            self.cache[key] = layer_mask.dense(q_len, k_len, device)
        return self.cache[key]


@dataclass
class _BlockMasks:
    """flex BlockMasks of the layers, cached by shape (and by padding mask when present)."""

    cache: dict[tuple, Any] = field(default_factory=dict)

    def get(
        self,
        layer_mask: LayerMask,
        batch: int,
        seq_len: int,
        device: torch.device,
        key_mask_BK: torch.Tensor | None,
    ) -> Any:
        """The BlockMask of a layer.

        `key_mask_BK` covers the real sequence; keys appended to reach `seq_len` are hidden.
        """
        from torch.nn.attention.flex_attention import create_block_mask

        key = (layer_mask, seq_len, device, key_mask_BK)
        cached = self.cache.get(key)
        if cached is None:
            n_heads = 1 if layer_mask.is_uniform else len(layer_mask.presets)
            if key_mask_BK is not None:
                key_mask_BK = F.pad(
                    key_mask_BK.to(device), (0, seq_len - key_mask_BK.shape[1]), value=False
                )
            cached = create_block_mask(
                layer_mask.mask_mod(device, key_mask_BK),
                batch if key_mask_BK is not None else None,
                n_heads,
                seq_len,
                seq_len,
                device=device,
            )
            self.cache[key] = cached
        return cached

    def drop_padded(self) -> None:
        """Forget the masks built for a padding mask (keep the unpadded ones)."""
        self.cache = {k: v for k, v in self.cache.items() if k[-1] is None}


@dataclass
class _PaddingCheck:
    """Which key-padding mask the fused kernels must apply, worked out once per forward."""

    block_masks: _BlockMasks
    """Its padded entries are keyed by the mask this check returns; a new mask retires them."""
    last: tuple[torch.Tensor, torch.Tensor | None] | None = None
    """The last attention mask seen and the key mask it gave."""

    def key_mask(self, attention_mask: torch.Tensor | None) -> torch.Tensor | None:
        """The key-padding mask the kernel must apply, or None when padding is harmless."""
        if attention_mask is None:
            return None
        # Every layer receives the same mask object in one forward: check it once.
        if self.last is not None and self.last[0] is attention_mask:
            return self.last[1]
        mask_BK = attention_mask.bool()
        right_padded = bool((mask_BK[:, 1:] <= mask_BK[:, :-1]).all())
        result = None if right_padded and bool(mask_BK[:, 0].all()) else mask_BK
        self.last = (attention_mask, result)
        self.block_masks.drop_padded()
        return result


@dataclass
class _CompiledFlex:
    """flex_attention compiled once per model (uncompiled flex is a slow reference)."""

    compiled: Any = None

    def get(self) -> Any:
        """The compiled flex_attention, compiling it on first use."""
        if self.compiled is None:
            from torch.nn.attention.flex_attention import flex_attention

            self.compiled = torch.compile(flex_attention)
        return self.compiled


@dataclass
class _ModelCaches:
    """What the attention layers of one model share, one object per job."""

    dense_masks: _DenseMasks
    block_masks: _BlockMasks
    padding: _PaddingCheck
    flex: _CompiledFlex

    @classmethod
    def new(cls) -> _ModelCaches:
        """Empty caches for one model."""
        block_masks = _BlockMasks()
        return cls(_DenseMasks(), block_masks, _PaddingCheck(block_masks), _CompiledFlex())


class AttentionKernel:
    """Replacement forward of one attention module: TransformerLens hooks, chosen kernel."""

    def __init__(
        self, attn: AbstractAttention, kernel: str, layer_mask: LayerMask, caches: _ModelCaches
    ):
        self.attn = attn
        self.kernel = kernel
        self.layer_mask = layer_mask
        self.caches = caches

    def __call__(
        self,
        query_input: torch.Tensor,
        key_input: torch.Tensor,
        value_input: torch.Tensor,
        past_kv_cache_entry: Any = None,
        additive_attention_mask: torch.Tensor | None = None,
        attention_mask: torch.Tensor | None = None,
        position_bias: torch.Tensor | None = None,
    ) -> torch.Tensor:
        if self.kernel == "eager":
            return self._eager(
                query_input,
                key_input,
                value_input,
                past_kv_cache_entry,
                additive_attention_mask,
                attention_mask,
                position_bias,
            )
        if past_kv_cache_entry is not None or additive_attention_mask is not None:
            raise NotImplementedError(
                f"attn_kernel={self.kernel!r} does not support a KV cache or an additive "
                "attention mask; switch to attn_kernel='eager' for generation"
            )
        attn = self.attn
        q, k, v = attn.calculate_qkv_matrices(query_input, key_input, value_input)
        if attn.cfg.positional_embedding_type == "rotary":
            q = attn.hook_rot_q(attn.apply_rotary(q, 0, attention_mask))
            k = attn.hook_rot_k(attn.apply_rotary(k, 0, attention_mask))
        key_mask_BK = self.caches.padding.key_mask(attention_mask)
        # [batch, pos, head, d_head] -> [batch, head, pos, d_head] for the fused kernels.
        q_BHQD, k_BHKD, v_BHKD = (t.transpose(1, 2) for t in (q, k, v))
        if self.kernel == "sdpa":
            z_BHQD = self._sdpa(q_BHQD, k_BHKD, v_BHKD, key_mask_BK)
        else:
            z_BHQD = self._flex(q_BHQD, k_BHKD, v_BHKD, key_mask_BK)
        z = attn.hook_z(z_BHQD.transpose(1, 2))
        return project_out(attn, z)

    def _eager(
        self,
        query_input: torch.Tensor,
        key_input: torch.Tensor,
        value_input: torch.Tensor,
        past_kv_cache_entry: Any,
        additive_attention_mask: torch.Tensor | None,
        attention_mask: torch.Tensor | None,
        position_bias: torch.Tensor | None,
    ) -> torch.Tensor:
        """TransformerLens's forward with the preset mask added to the scores as -inf."""
        q_len = query_input.shape[1]
        k_len = q_len + (
            0 if past_kv_cache_entry is None else past_kv_cache_entry.past_keys.size(1)
        )
        allowed = self.caches.dense_masks.get(self.layer_mask, q_len, k_len, query_input.device)
        preset_mask = torch.zeros(allowed.shape, dtype=query_input.dtype, device=allowed.device)
        preset_mask = preset_mask.masked_fill(~allowed, float("-inf"))
        if additive_attention_mask is not None:
            preset_mask = preset_mask + additive_attention_mask
        return type(self.attn).forward(
            self.attn,
            query_input,
            key_input,
            value_input,
            past_kv_cache_entry=past_kv_cache_entry,
            additive_attention_mask=preset_mask,
            attention_mask=attention_mask,
            position_bias=position_bias,
        )

    def _sdpa(
        self,
        q_BHQD: torch.Tensor,
        k_BHKD: torch.Tensor,
        v_BHKD: torch.Tensor,
        key_mask_BK: torch.Tensor | None,
    ) -> torch.Tensor:
        """Fused scaled-dot-product attention; flash/causal fast path when the mask allows."""
        scale = 1.0 / float(self.attn.attn_scale)
        gqa = k_BHKD.shape[1] != q_BHQD.shape[1]
        q_len, k_len = q_BHQD.shape[2], k_BHKD.shape[2]
        if key_mask_BK is None and self.layer_mask.is_causal and q_len == k_len:
            return F.scaled_dot_product_attention(
                q_BHQD, k_BHKD, v_BHKD, is_causal=True, scale=scale, enable_gqa=gqa
            )
        allowed = self.caches.dense_masks.get(self.layer_mask, q_len, k_len, q_BHQD.device)[None]
        if key_mask_BK is not None:
            # Blocks of a model split over GPUs get the mask from the first one.
            allowed = allowed & key_mask_BK.to(allowed.device)[:, None, None, :]
        z_BHQD = F.scaled_dot_product_attention(
            q_BHQD, k_BHKD, v_BHKD, attn_mask=allowed, scale=scale, enable_gqa=gqa
        )
        # A query that may see no key gets z = 0, as in eager (whose NaN pattern becomes 0).
        return z_BHQD.masked_fill(~allowed.any(-1, keepdim=True), 0.0)

    def _flex(
        self,
        q_BHQD: torch.Tensor,
        k_BHKD: torch.Tensor,
        v_BHKD: torch.Tensor,
        key_mask_BK: torch.Tensor | None,
    ) -> torch.Tensor:
        """flex_attention with a block mask built from the layer's presets."""
        if q_BHQD.device.type == "cpu" and any(t.requires_grad for t in (q_BHQD, k_BHKD, v_BHKD)):
            raise RuntimeError(
                "attn_kernel='flex' has no backward pass on CPU; run under torch.no_grad() "
                "or torch.inference_mode(), or use attn_kernel='sdpa' for gradients"
            )
        batch, _, seq_len, _ = q_BHQD.shape
        padded_len = -(-seq_len // _FLEX_BLOCK) * _FLEX_BLOCK
        extra = padded_len - seq_len
        if extra:
            # Appended positions come after every real query, so causality already hides them.
            q_BHQD, k_BHKD, v_BHKD = (F.pad(t, (0, 0, 0, extra)) for t in (q_BHQD, k_BHKD, v_BHKD))
        block_mask = self.caches.block_masks.get(
            self.layer_mask, batch, padded_len, q_BHQD.device, key_mask_BK
        )
        z_BHQD = self.caches.flex.get()(
            q_BHQD,
            k_BHKD,
            v_BHKD,
            block_mask=block_mask,
            scale=1.0 / float(self.attn.attn_scale),
            enable_gqa=k_BHKD.shape[1] != q_BHQD.shape[1],
        )
        return z_BHQD[:, :, :seq_len]


def project_out(attn: AbstractAttention, z: torch.Tensor) -> torch.Tensor:
    """Attention output from z [batch, pos, head, d_head], firing hook_result if enabled."""
    W_O = attn.W_O
    if attn.cfg.use_attn_result:
        result = attn.hook_result(torch.einsum("bphd,hdm->bphm", z, W_O))
        return result.sum(dim=2) + attn.b_O
    batch, pos = z.shape[:2]
    w = W_O.reshape(-1, W_O.shape[-1]).T
    return F.linear(z.reshape(batch, pos, -1), w, attn.b_O)


def set_attn_kernel(
    model: HookedTransformer, kernel: str, masks: MaskSpec = None
) -> tuple[LayerMask, ...]:
    """Switch every attention module of `model` to `kernel` with the given mask presets."""
    if kernel not in KERNELS:
        raise ValueError(f"attn_kernel={kernel!r} is not one of {KERNELS}")
    if kernel != "eager":
        unsupported = _unsupported_features(model)
        if unsupported:
            raise ValueError(
                f"attn_kernel={kernel!r} cannot reproduce {', '.join(unsupported)} of "
                f"{model.cfg.model_name}; use attn_kernel='eager' for this model"
            )
    cfg = model.cfg
    native = tuple(
        cfg.window_size if block.attn.attn_type == "local" else None for block in model.blocks
    )
    layer_masks = resolve_masks(masks, cfg.n_layers, cfg.n_heads, native)
    caches = _ModelCaches.new()
    for block, layer_mask in zip(model.blocks, layer_masks, strict=True):
        attn = block.attn
        attn.__dict__.pop("forward", None)
        for hook_point in (attn.hook_pattern, attn.hook_attn_scores):
            hook_point.__dict__.pop("add_hook", None)
            if kernel != "eager":
                hook_point.add_hook = _never_fires(hook_point, kernel)
        # Eager with plain causal masks is TransformerLens untouched (it applies its own
        # native local window); anything else goes through AttentionKernel.
        if kernel != "eager" or not all(p.is_causal for p in layer_mask.presets):
            attn.forward = AttentionKernel(attn, kernel, layer_mask, caches)
    return layer_masks


def _never_fires(hook_point: HookPoint, kernel: str) -> Callable[..., Any]:
    """`add_hook` of a pattern hook point under a fused kernel: warns, then adds the hook.

    TransformerLens's own `run_with_hooks` / `run_with_cache` reach hook points directly,
    past `HookedModel.hooks` (which refuses pattern hooks under fused kernels): they would
    otherwise skip them without a word.
    """
    add_hook = type(hook_point).add_hook.__get__(hook_point)

    def warn_then_add(*args: Any, **kwargs: Any) -> Any:
        warnings.warn(
            f"{hook_point.name} never fires under attn_kernel={kernel!r} (the fused kernel "
            "forms no pattern); switch to attn_kernel='eager' or use "
            "HookedModel.attention_pattern().",
            stacklevel=2,
        )
        return add_hook(*args, **kwargs)

    return warn_then_add


def head_patterns(
    attn: AbstractAttention,
    q_BQHD: torch.Tensor,
    k_BKHD: torch.Tensor,
    heads: list[int],
    layer_mask: LayerMask,
    attention_mask: torch.Tensor | None,
) -> torch.Tensor:
    """Attention patterns [batch, len(heads), q, k] of the given heads from their q and k."""
    n_heads = q_BQHD.shape[2]
    group = n_heads // k_BKHD.shape[2]
    index = torch.tensor(heads, device=q_BQHD.device)
    q_BHQD = q_BQHD[:, :, index].transpose(1, 2)
    k_BHKD = k_BKHD[:, :, index // group].transpose(1, 2)
    scores = q_BHQD @ k_BHKD.transpose(-1, -2) / attn.attn_scale
    q_len, k_len = scores.shape[-2:]
    allowed = layer_mask.dense(q_len, k_len, scores.device)
    if not layer_mask.is_uniform:
        allowed = allowed[index]
    allowed = allowed[None]
    if attention_mask is not None:
        allowed = allowed & attention_mask.bool()[:, None, None, :]
    pattern = torch.softmax(scores.masked_fill(~allowed, float("-inf")), dim=-1)
    return torch.nan_to_num(pattern, nan=0.0)
