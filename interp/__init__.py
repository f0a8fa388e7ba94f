"""Hooked models, attention kernels (eager | sdpa | flex) and per-head capture."""

from interp.capture import HeadCapture, capture_heads
from interp.kernels import KERNELS
from interp.loading import load_model
from interp.masks import (
    LayerMask,
    MaskPreset,
    MaskSpec,
    causal,
    resolve_masks,
    sink_window,
    sliding_window,
)
from interp.models import ORGANISMS, ORGANISMS_DIR, HookedModel, ModelNotAvailableError

__all__ = [
    "KERNELS",
    "ORGANISMS",
    "ORGANISMS_DIR",
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
