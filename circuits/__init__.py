"""Circuit discovery with discrete SAE codes: tasks, ground truths, scoring, evaluation, CLI.

```python
import circuits

result = circuits.score("organism-ioi", "ioi", method="sae", seed=0)
result.node            # one row per head: layer, head, label, score, rank, ...
result.edges           # one row per head pair (h1 < h2)
metrics = circuits.evaluate(result.node, circuits.tasks.get("ioi").ground_truth())
```

The public names below load on first use: importing a light submodule such as
``circuits.ground_truth`` must not pull in TransformerLens and SAELens.
"""

from __future__ import annotations

import importlib
from typing import Any

_EXPORTS = {
    "evaluation": ("Evaluation", "evaluate"),
    "faithfulness": ("CircuitAblator", "faithfulness_report"),
    "pipeline": (
        "CaptureConfig",
        "EvaluationConfig",
        "MethodContext",
        "MethodTrials",
        "PipelineConfig",
        "ScoreResult",
        "ScoringConfig",
        "available_methods",
        "default_config",
        "get_method",
        "prepare",
        "register_method",
        "run_trials",
        "score",
    ),
    "scoring": ("edge_scores", "heads_from_edges", "node_scores"),
}
_MODULE_OF = {name: module for module, names in _EXPORTS.items() for name in names}

__all__ = sorted(_MODULE_OF)


def __getattr__(name: str) -> Any:
    if name in _MODULE_OF:
        return getattr(importlib.import_module(f"circuits.{_MODULE_OF[name]}"), name)
    raise AttributeError(f"module 'circuits' has no attribute {name!r}")


def __dir__() -> list[str]:
    return sorted(set(globals()) | set(__all__))
