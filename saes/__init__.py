"""Discrete SAE over per-head activations: SAELens architecture, training, integer codes.

The public names load on first use (``saes.SAETrainingConfig`` without torch or SAELens).
Loading ``saes.discrete_sae`` (any of its names, ``train_discrete_sae``, ``codes``, ...)
registers the `discrete` architecture with SAELens, so ``sae_lens.SAE.load_from_disk`` can
load saved discrete SAEs afterwards; ``import saes.discrete_sae`` does it explicitly.
"""

from __future__ import annotations

from interp.lazy import lazy_exports

_EXPORTS = {
    "coding": (
        "CodeStats",
        "code_stats",
        "codes",
        "codes_from_hook_z",
        "codes_with_stats",
        "top_codes",
    ),
    "config": ("SAETrainingConfig",),
    "discrete_sae": (
        "ARCHITECTURE",
        "DiscreteSAE",
        "DiscreteSAEConfig",
        "DiscreteTrainingSAE",
        "DiscreteTrainingSAEConfig",
        "load_discrete_sae",
    ),
    "training": ("TrainingDivergedError", "train_discrete_sae"),
}
__all__, __getattr__, __dir__ = lazy_exports(__name__, _EXPORTS)
