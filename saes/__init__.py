"""Discrete SAE over per-head activations: SAELens architecture, training, integer codes.

Importing this package registers the `discrete` architecture with SAELens, so
`sae_lens.SAE.load_from_disk` can load saved discrete SAEs afterwards.
"""

from saes.codes import CodeStats, code_stats, codes, codes_from_hook_z, codes_with_stats
from saes.discrete_sae import (
    ARCHITECTURE,
    DiscreteSAE,
    DiscreteSAEConfig,
    DiscreteTrainingSAE,
    DiscreteTrainingSAEConfig,
    load_discrete_sae,
)
from saes.training import SAETrainingConfig, train_discrete_sae

__all__ = [
    "ARCHITECTURE",
    "CodeStats",
    "DiscreteSAE",
    "DiscreteSAEConfig",
    "DiscreteTrainingSAE",
    "DiscreteTrainingSAEConfig",
    "SAETrainingConfig",
    "code_stats",
    "codes",
    "codes_from_hook_z",
    "codes_with_stats",
    "load_discrete_sae",
    "train_discrete_sae",
]
