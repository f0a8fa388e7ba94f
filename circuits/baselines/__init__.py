"""Patching baselines at head granularity, registered as `circuits.score` methods.

| method | module | follows |
|---|---|---|
| `activation-patching` | `activation_patching.py` | per-head z ablation, exhaustive |
| `attribution-patching` | `attribution_patching.py` | Nanda 2023 / Syed et al. 2023, node level |
| `eap` | `eap.py` | Syed, Rager & Conmy 2023, edges between heads |
| `acdc` | `acdc.py` | Conmy et al. 2023, threshold sweep |
| `hisp` | `hisp.py` | Michel et al. 2019 head importance |
| `random`, `norm` | `controls.py` | control rankings: chance, and label-free output norm |

```python
from circuits import baselines

result = baselines.acdc(model, task, data, baselines.ACDCConfig(thresholds=(0.01, 0.1)))
result.node_frame()   # layer, head, label, score, rank (+ signed effect where defined)
result.edges          # upstream, downstream, score (+ effect) for eap and acdc
result.seconds        # wall time per stage
```

Through `circuits.score(..., method="acdc")` / the CLI, each method runs with its default
config, the pipeline's `capture.batch_size` and progress flag. The methods are deterministic
(the trial seed does not change their scores), so they are registered as such and
`run_trials` / `--trials N` runs them once. See docs/baselines.md.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from circuits.baselines.acdc import ACDCConfig, acdc, prune
from circuits.baselines.activation_patching import (
    ActivationPatchingConfig,
    activation_patching,
)
from circuits.baselines.attribution_patching import (
    AttributionPatchingConfig,
    attribution_patching,
)
from circuits.baselines.common import BaselineConfig, BaselineResult, make_batches
from circuits.baselines.eap import EAPConfig, eap
from circuits.baselines.graph import EdgePatcher, HeadGraph
from circuits.baselines.hisp import HISPConfig, hisp
from circuits.pipeline import MethodContext, ScoreResult, register_method
from circuits.tasks import Task, TaskData
from interp import HookedModel

__all__ = [
    "METHODS",
    "ACDCConfig",
    "ActivationPatchingConfig",
    "AttributionPatchingConfig",
    "BaselineConfig",
    "BaselineResult",
    "EAPConfig",
    "EdgePatcher",
    "HISPConfig",
    "HeadGraph",
    "acdc",
    "activation_patching",
    "attribution_patching",
    "eap",
    "hisp",
    "make_batches",
    "prune",
    "to_score_result",
]

BaselineFn = Callable[[HookedModel, Task, TaskData, Any], BaselineResult]

METHODS: dict[str, tuple[BaselineFn, type[BaselineConfig]]] = {
    "activation-patching": (activation_patching, ActivationPatchingConfig),
    "attribution-patching": (attribution_patching, AttributionPatchingConfig),
    "eap": (eap, EAPConfig),
    "acdc": (acdc, ACDCConfig),
    "hisp": (hisp, HISPConfig),
}
"""Method name -> (function, config class)."""


def to_score_result(result: BaselineResult) -> ScoreResult:
    """The pipeline's result type: node frame, head-pair edges, seconds, JSON-ready extras."""
    return ScoreResult(
        method=result.method,
        node=result.node_frame(),
        edges=result.head_pair_frame(),
        seconds=dict(result.seconds),
        extra={"baseline_config": result.config, **result.extra},
    )


def _register(name: str, fn: BaselineFn, config_type: type[BaselineConfig]) -> None:
    def method(context: MethodContext, seed: int) -> ScoreResult:
        # Deterministic methods: the seed only fixed the task data, generated upstream.
        config = config_type(
            batch_size=context.config.capture.batch_size, quiet=not context.progress
        )
        return to_score_result(fn(context.model, context.task, context.data, config))

    method.__doc__ = fn.__doc__
    register_method(name, deterministic=True)(method)


for _name, (_fn, _config_type) in METHODS.items():
    _register(_name, _fn, _config_type)

# Registers the `random` and `norm` control rankings.
from circuits.baselines import controls  # noqa: E402, F401
