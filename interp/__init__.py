"""Hooked models, attention kernels (eager | sdpa | flex) and per-head capture."""

from interp.capture import HeadCapture, capture_heads
from interp.kernels import KERNELS
from interp.masks import (
    LayerMask,
    MaskPreset,
    MaskSpec,
    causal,
    resolve_masks,
    sink_window,
    sliding_window,
)
from interp.models import ORGANISMS, HookedModel, ModelNotAvailableError, load_model

__all__ = [
    "KERNELS",
    "ORGANISMS",
    "HeadCapture",
    "HookedModel",
    "LayerMask",
    "MaskPreset",
    "MaskSpec",
    "ModelNotAvailableError",
    "capture_heads",
    "causal",
    "load_model",
    "resolve_masks",
    "sink_window",
    "sliding_window",
]
