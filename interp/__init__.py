"""Hooked models, attention kernels (eager | sdpa | flex), per-head capture, head indexing.

The public names below load on first use, so that a light module (``interp.heads``, the
ground truths) does not pull in TransformerLens.
"""

from __future__ import annotations

from interp.lazy import lazy_exports

_EXPORTS = {
    "capture": ("HeadCapture", "MeanZ", "capture_heads", "mean_z"),
    "heads": ("head_index", "head_label", "head_labels", "head_mask", "parse_head_label"),
    "devices": ("check_device",),
    "loading": ("load_model",),
    "masks": (
        "LayerMask",
        "MaskPreset",
        "MaskSpec",
        "causal",
        "resolve_masks",
        "sink_window",
        "sliding_window",
    ),
    "models": ("ORGANISMS", "ORGANISMS_DIR", "HookedModel", "ModelNotAvailableError"),
}
_LAZY, __getattr__, __dir__ = lazy_exports(__name__, _EXPORTS)

KERNELS: tuple[str, ...] = ("eager", "sdpa", "flex")
"""Names accepted by `attn_kernel` (implemented in `interp.kernels`)."""

__all__ = sorted([*_LAZY, "KERNELS"])
