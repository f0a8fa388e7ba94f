"""Attention mask presets (causal, sliding window, sinks + window), set per layer or per head.

Every preset is causal attention narrowed by two numbers: a local `window` (a query sees
itself and the `window - 1` positions before it) and `n_sink` leading positions that every
later query may also see. One formula, `_allowed`, turns them into a dense boolean mask
(eager and sdpa kernels) and into a flex_attention `mask_mod` (flex kernel), so the three
kernels cannot disagree about which keys a query sees.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass

import torch

# Stands in for "no window": larger than any query-key distance.
_UNLIMITED = torch.iinfo(torch.int64).max


@dataclass(frozen=True)
class MaskPreset:
    """Causal attention limited to a local window plus always-visible leading sink tokens."""

    window: int | None = None
    """Keys a query may see: itself and the `window - 1` positions before it; None = all."""
    n_sink: int = 0
    """The first `n_sink` positions stay visible to every later query (attention sinks)."""

    def __post_init__(self) -> None:
        if self.window is not None and self.window < 1:
            raise ValueError(f"window={self.window}: a window must be a positive token count")
        if self.n_sink < 0:
            raise ValueError(f"n_sink={self.n_sink}: the number of sink tokens must be >= 0")

    @property
    def name(self) -> str:
        """Readable name, e.g. `causal`, `sliding_window(64)`, `sink_window(4, 64)`."""
        if self.window is None:
            return "causal" if self.n_sink == 0 else f"sink_window({self.n_sink}, None)"
        if self.n_sink == 0:
            return f"sliding_window({self.window})"
        return f"sink_window({self.n_sink}, {self.window})"

    @property
    def is_causal(self) -> bool:
        """Whether this preset is plain causal attention."""
        return self.window is None


def causal() -> MaskPreset:
    """Plain causal attention: every query sees itself and all earlier positions."""
    return MaskPreset()


def sliding_window(window: int) -> MaskPreset:
    """Causal attention to the last `window` positions only (the query itself included)."""
    return MaskPreset(window=window)


def sink_window(n_sink: int, window: int) -> MaskPreset:
    """Causal attention to the first `n_sink` positions plus the last `window` positions."""
    return MaskPreset(window=window, n_sink=n_sink)


MaskSpec = MaskPreset | Mapping[int | tuple[int, int], MaskPreset] | None
"""One preset for every head, or `{layer: preset}` / `{(layer, head): preset}` (head entries
win over layer entries; heads not named stay causal), or None for causal everywhere."""


def _allowed(
    q_idx: torch.Tensor,
    kv_idx: torch.Tensor,
    window: torch.Tensor,
    n_sink: torch.Tensor,
    native_window: int,
) -> torch.Tensor:
    """Whether query position `q_idx` may attend to key position `kv_idx` (broadcasting)."""
    distance = q_idx - kv_idx
    visible = (distance < window) | (kv_idx < n_sink)
    return (distance >= 0) & (distance < native_window) & visible


@dataclass(frozen=True)
class LayerMask:
    """Which keys each head of one attention layer may see: one preset per head."""

    presets: tuple[MaskPreset, ...]
    """The preset of each head of the layer, in head order."""
    native_window: int | None = None
    """The model's own local-attention window for this layer (e.g. GPT-Neo), ANDed in."""

    @property
    def is_causal(self) -> bool:
        """Whether every head of the layer uses plain causal attention."""
        return self.native_window is None and all(p.is_causal for p in self.presets)

    @property
    def is_uniform(self) -> bool:
        """Whether all heads share one preset (so masks broadcast over heads)."""
        return len(set(self.presets)) == 1

    def head_params(self, device: torch.device) -> tuple[torch.Tensor, torch.Tensor]:
        """Per-head window and sink counts as int64 tensors of shape [n_heads]."""
        windows = [_UNLIMITED if p.window is None else p.window for p in self.presets]
        sinks = [p.n_sink for p in self.presets]
        return (
            torch.tensor(windows, dtype=torch.int64, device=device),
            torch.tensor(sinks, dtype=torch.int64, device=device),
        )

    def dense(self, q_len: int, k_len: int, device: torch.device) -> torch.Tensor:
        """Boolean mask [H, q_len, k_len] (H = 1 when uniform); queries are the last positions."""
        window_H, sink_H = self.head_params(device)
        if self.is_uniform:
            window_H, sink_H = window_H[:1], sink_H[:1]
        q_idx = torch.arange(k_len - q_len, k_len, device=device)[None, :, None]
        kv_idx = torch.arange(k_len, device=device)[None, None, :]
        native = _UNLIMITED if self.native_window is None else self.native_window
        return _allowed(q_idx, kv_idx, window_H[:, None, None], sink_H[:, None, None], native)

    def mask_mod(
        self, device: torch.device, key_mask_BK: torch.Tensor | None = None
    ) -> Callable[[torch.Tensor, torch.Tensor, torch.Tensor, torch.Tensor], torch.Tensor]:
        """A flex_attention mask_mod for this layer, optionally hiding padded keys."""
        window_H, sink_H = self.head_params(device)
        native = _UNLIMITED if self.native_window is None else self.native_window

        def mask_mod(
            b: torch.Tensor, h: torch.Tensor, q_idx: torch.Tensor, kv_idx: torch.Tensor
        ) -> torch.Tensor:
            allowed = _allowed(q_idx, kv_idx, window_H[h], sink_H[h], native)
            if key_mask_BK is not None:
                allowed = allowed & key_mask_BK[b, kv_idx]
            return allowed

        return mask_mod


def resolve_masks(
    spec: MaskSpec,
    n_layers: int,
    n_heads: int,
    native_windows: tuple[int | None, ...] | None = None,
) -> tuple[LayerMask, ...]:
    """Expand a mask spec into one `LayerMask` per layer, validating layer and head indices."""
    presets = [[causal()] * n_heads for _ in range(n_layers)]
    if isinstance(spec, MaskPreset):
        presets = [[spec] * n_heads for _ in range(n_layers)]
    elif spec is not None:
        if not isinstance(spec, Mapping):
            raise TypeError(
                f"masks={spec!r}: pass a MaskPreset, a dict {{layer: preset}} or "
                "{(layer, head): preset}, or None"
            )
        # Layer entries first so that (layer, head) entries override them.
        ordered = sorted(spec.items(), key=lambda item: isinstance(item[0], tuple))
        for key, preset in ordered:
            if not isinstance(preset, MaskPreset):
                raise TypeError(
                    f"masks[{key!r}]={preset!r}: values must be presets such as "
                    "interp.sliding_window(64)"
                )
            if isinstance(key, tuple):
                if len(key) != 2:
                    raise ValueError(f"masks key {key!r}: use an int layer or a (layer, head) pair")
                layer, head = key
                _check_index("layer", layer, n_layers, key)
                _check_index("head", head, n_heads, key)
                presets[layer][head] = preset
            else:
                _check_index("layer", key, n_layers, key)
                presets[key] = [preset] * n_heads
    windows = native_windows or (None,) * n_layers
    return tuple(
        LayerMask(tuple(layer_presets), windows[layer])
        for layer, layer_presets in enumerate(presets)
    )


def _check_index(kind: str, index: object, size: int, key: object) -> None:
    """Raise a ValueError naming the mask key when `index` is not in range(size)."""
    if not isinstance(index, int) or isinstance(index, bool) or not 0 <= index < size:
        raise ValueError(
            f"masks key {key!r}: {kind} {index!r} is out of range; the model has {size} "
            f"{kind}s (use 0..{size - 1}, as int layer or (layer, head) tuple)"
        )
