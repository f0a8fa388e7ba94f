"""Circuit discovery with discrete SAE codes: tasks, ground truths, scoring, evaluation, CLI.

```python
import circuits

result = circuits.score("organism-ioi", "ioi", method="sae", seed=0)
result.node            # one row per head: layer, head, label, score, rank, ...
result.edges           # one row per head pair (h1 < h2)
metrics = circuits.evaluate(result.node, circuits.tasks.get("ioi").ground_truth())
run = circuits.run_task("organism-ioi", "ioi", ["sae", "norm"], out="results")  # + files
```

Scoring methods and their registry: ``circuits.methods``.

The public names below load on first use: importing a light submodule such as
``circuits.ground_truth`` must not pull in TransformerLens and SAELens.
"""

from __future__ import annotations

from interp.lazy import lazy_exports

_EXPORTS = {
    "config": (
        "CaptureConfig",
        "EvaluationConfig",
        "PipelineConfig",
        "ScoringConfig",
        "default_config",
    ),
    "evaluation": ("Evaluation", "evaluate"),
    "faithfulness": ("CircuitAblator", "faithfulness_report"),
    "methods": ("MethodContext", "ScoreResult"),
    "pipeline": ("MethodTrials", "prepare", "run_trials", "score"),
    "runs": ("TaskRun", "resolve_ground_truth", "run_prepared", "run_task"),
    "scoring": ("edge_scores", "heads_from_edges", "node_scores"),
}
__all__, __getattr__, __dir__ = lazy_exports(__name__, _EXPORTS)
