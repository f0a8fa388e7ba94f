"""Verify an organism by exhaustive mean ablation; its ground truth from the causal graph.

Mean ablation is `circuits.faithfulness.CircuitAblator(ablation="mean")`: a head's `hook_z`
is replaced by its per-position mean over the task's corrupted prompts. The checks:
- accuracy: fraction of positives whose answer is strictly the top-1 token over the whole
  vocabulary (greater-than: the top-1 token is a two-digit year later than YY);
- every single head ablated alone (circuit and non-circuit), metric kept;
- every non-circuit head ablated together, metric kept (mean and resample ablation).
"""

from __future__ import annotations

from typing import Any

import numpy as np
import torch

from circuits import tasks
from circuits.faithfulness import CircuitAblator
from circuits.ground_truth import GroundTruth, Provenance
from circuits.organisms.causal import CausalGraph
from interp import HookedModel
from interp.heads import head_mask

VERIFY_SEED = 1_000_003
"""Seed of the verification prompts (distinct from any training seed used here)."""
VERIFY_PROMPTS = 400
"""Positive/negative/corrupted triples the verification generates."""

CIRCUIT_HEAD_MAX_KEPT = 0.5
"""A circuit head passes when ablating it alone keeps at most this fraction of the metric."""
NON_CIRCUIT_MIN_KEPT = 0.95
"""The circuit passes when ablating every non-circuit head keeps at least this fraction."""
MIN_ACCURACY = 0.95
"""Top-1 accuracy on positives an organism must reach."""


def vocab_accuracy(model: HookedModel, data: tasks.TaskData, batch_size: int = 100) -> float:
    """Fraction of positives whose best answer id is strictly above every other token."""
    logits_NV = tasks.model_answer_logits(
        model, data.positives, data.lengths, batch_size=batch_size
    )
    correct = 0
    for row, answers in zip(logits_NV, data.answer_ids, strict=True):
        others = row.clone()
        others[answers] = -torch.inf
        correct += int(row[answers].max() > others.max())
    return correct / len(data)


def verify(
    model: HookedModel,
    task_name: str,
    circuit: list[tuple[int, int]],
    *,
    n: int = VERIFY_PROMPTS,
    seed: int = VERIFY_SEED,
    batch_size: int = 100,
) -> dict[str, Any]:
    """Accuracy and exhaustive mean-ablation numbers of `circuit` in `model` on fresh prompts."""
    task = tasks.get(task_name)
    data = task.generate(model.tokenizer, n=n, seed=seed)
    labels = model.head_labels
    keep_circuit = head_mask(circuit, len(labels), model.n_heads)
    ablator = CircuitAblator(model, task, data, ablation="mean", batch_size=batch_size)
    full = ablator.full_metric
    single = {}
    for index, label in enumerate(labels):
        keep = np.ones(len(labels), dtype=bool)
        keep[index] = False
        metric = ablator.metric(keep)
        single[label] = {"metric": metric, "kept": metric / full}
    non_circuit = ablator.kept(keep_circuit)
    resample = CircuitAblator(
        model, task, data, ablation="resample", seed=seed, batch_size=batch_size
    ).kept(keep_circuit)
    circuit_labels = [labels[i] for i in np.flatnonzero(keep_circuit)]
    accuracy = vocab_accuracy(model, data, batch_size)
    worst_circuit_kept = max(single[label]["kept"] for label in circuit_labels)
    summary = {
        "accuracy": accuracy,
        "full_metric": full,
        "worst_circuit_head_kept": worst_circuit_kept,
        "best_non_circuit_head_kept_min": min(
            single[label]["kept"] for label in labels if label not in circuit_labels
        ),
        "non_circuit_ablated_kept": non_circuit["kept"],
        "non_circuit_resampled_kept": resample["kept"],
        "passed": bool(
            accuracy >= MIN_ACCURACY
            and worst_circuit_kept <= CIRCUIT_HEAD_MAX_KEPT
            and non_circuit["kept"] >= NON_CIRCUIT_MIN_KEPT
        ),
    }
    return {
        "task": task_name,
        "metric_name": task.metric_name,
        "ablation": "mean hook_z per position over the corrupted prompts (CircuitAblator)",
        "n_prompts": len(data),
        "data_seed": seed,
        "circuit": circuit_labels,
        "thresholds": {
            "min_accuracy": MIN_ACCURACY,
            "circuit_head_max_kept": CIRCUIT_HEAD_MAX_KEPT,
            "non_circuit_min_kept": NON_CIRCUIT_MIN_KEPT,
        },
        "accuracy": accuracy,
        "full_metric": full,
        "all_heads_ablated_metric": ablator.empty_metric,
        "single_head_ablation": single,
        "non_circuit_ablation": {"mean": non_circuit, "resample": resample},
        "summary": summary,
    }


def ground_truth(graph: CausalGraph, *, n_layers: int, n_heads: int, seed: int) -> GroundTruth:
    """The organism's ground truth: the heads the causal graph's nodes are mapped to."""
    classes: dict[str, set[tuple[int, int]]] = {}
    for node in graph.nodes:
        classes.setdefault(node.head_class, set()).add(node.head)
    nodes = "; ".join(
        f"{n.name} -> L{n.head[0]}H{n.head[1]} ({n.description})" for n in graph.nodes
    )
    return GroundTruth(
        task=graph.task,
        variant="organism",
        model=f"organism-{graph.task}",
        heads=frozenset(graph.heads),
        provenance=Provenance(
            source="circuits.organisms: strict interchange-intervention training (SIIT)",
            url="circuits/organisms/ (docs/organisms.md)",
            version=f"organism-{graph.task} v1, seed {seed}",
            notes=f"Causal graph nodes mapped to heads: {nodes}. Verified by exhaustive "
            "mean ablation (verification.json).",
        ),
        n_layers=n_layers,
        n_heads=n_heads,
        head_classes={name: frozenset(heads) for name, heads in classes.items()},
    )
