"""``circuits.score``: task prompts -> per-head capture -> a scoring method -> evaluation.

``prepare`` loads the model and generates the task data once; ``score`` runs one method
with one seed; ``run_trials`` reruns a method with seeds ``seed, seed + 1, ...`` on the same
data (a deterministic method runs once), evaluates every trial against a ground truth and
traces its faithfulness curves. Methods live in ``circuits.methods``.
"""

from __future__ import annotations

import time
from dataclasses import dataclass, field, replace
from typing import Any

import numpy as np
import pandas as pd
from tqdm.auto import tqdm

from circuits import methods
from circuits import tasks as task_registry
from circuits.config import PipelineConfig, default_config
from circuits.evaluation import evaluate, summarise
from circuits.faithfulness import faithfulness_report
from circuits.ground_truth import GroundTruth
from circuits.methods import MethodContext, ScoreResult
from circuits.tasks import Task, UserTask
from interp.heads import head_index
from interp.loading import load_model
from interp.models import HookedModel

__all__ = ["MethodTrials", "prepare", "run_trials", "score"]


def _resolve_model(model: HookedModel | str, device: str | None, attn_kernel: str) -> HookedModel:
    if isinstance(model, HookedModel):
        return model
    return load_model(model, attn_kernel=attn_kernel, device=device)


def _resolve_task(task: Task | str) -> Task:
    return task_registry.get(task) if isinstance(task, str) else task


def prepare(
    model: HookedModel | str,
    task: Task | str,
    config: PipelineConfig | None = None,
    *,
    seed: int = 0,
    device: str | None = None,
    attn_kernel: str = "sdpa",
    progress: bool = True,
) -> MethodContext:
    """Load the model, generate the task data with ``seed`` and wrap them for the methods."""
    hooked = _resolve_model(model, device, attn_kernel)
    resolved_task = _resolve_task(task)
    config = config or default_config(resolved_task)
    start = time.perf_counter()
    n_pairs: int | None = config.capture.n_prompts // 2
    if isinstance(resolved_task, UserTask) and n_pairs >= len(resolved_task.positives):
        n_pairs = None
    data = resolved_task.generate(hooked.tokenizer, n=n_pairs, seed=seed)
    if config.capture.filter_correct:
        data, _ = resolved_task.filter_correct(hooked, data, batch_size=config.capture.batch_size)
    seconds = {"data": time.perf_counter() - start}
    return MethodContext(hooked, resolved_task, data, config, progress=progress, seconds=seconds)


def _run_method(context: MethodContext, method: str, seed: int) -> ScoreResult:
    context.used_capture = False
    result = methods.get(method).run(context, seed)
    # Only the shared stages this method relied on count towards its time.
    shared = {k: v for k, v in context.seconds.items() if k != "capture" or context.used_capture}
    resolved = {
        "method": method,
        "seed": seed,
        "model": context.model.name,
        "task": context.task.name,
        "attn_kernel": context.model.attn_kernel,
        "n_positives": len(context.data.positives),
        "n_negatives": len(context.data.negatives),
        **context.config.to_dict(),
    }
    return replace(
        result,
        method=method,
        seed=seed,
        config=resolved,
        seconds={**shared, **result.seconds},
    )


def score(
    model: HookedModel | str,
    task: Task | str,
    method: str = "sae",
    config: PipelineConfig | None = None,
    *,
    seed: int = 0,
    device: str | None = None,
    attn_kernel: str = "sdpa",
    progress: bool = True,
) -> ScoreResult:
    """Score every head (and head pair) of ``model`` for ``task`` with one method and seed."""
    context = prepare(
        model, task, config, seed=seed, device=device, attn_kernel=attn_kernel, progress=progress
    )
    return _run_method(context, method, seed)


@dataclass
class MethodTrials:
    """Every trial of one method on one task, with metrics against a ground truth."""

    method: str
    results: list[ScoreResult]
    """One result per trial, seeds ``seed, seed + 1, ...``."""
    node_metrics: list[dict[str, Any]] = field(default_factory=list)
    """Per trial, ``circuits.evaluate`` of the node scores (empty without ground truth)."""
    edge_metrics: list[dict[str, Any]] = field(default_factory=list)
    """Per trial, ``circuits.evaluate`` of the edge-derived head scores."""
    edge_pair_metrics: list[dict[str, Any]] = field(default_factory=list)
    """Per trial, ``circuits.evaluate`` of the head-pair scores against the ground truth's
    head-to-head edges (only for ground truths that publish edges, e.g. docstring/acdc)."""
    faithfulness: dict[str, Any] | None = None
    """Faithfulness curves (CPR, CMD) of every trial's ranking; with a ground truth also the
    fraction of the metric kept by the found circuits, the ground truth and random ones."""

    def summary(self) -> dict[str, Any]:
        """Metrics as {"mean", "std"} over trials, mean seconds per stage and the config."""
        out: dict[str, Any] = {"n_trials": len(self.results)}
        for name, metrics in (
            ("node", self.node_metrics),
            ("edge", self.edge_metrics),
            ("edge_pairs", self.edge_pair_metrics),
        ):
            if metrics:
                numeric = [k for k, v in metrics[0].items() if isinstance(v, int | float)]
                out[name] = {
                    key: summarise([m[key] for m in metrics])
                    for key in numeric
                    if all(m[key] is not None for m in metrics)
                }
                out[name]["threshold_rule"] = metrics[0]["threshold_rule"]
        if self.faithfulness is not None:
            out["faithfulness"] = self.faithfulness
        stages = sorted({stage for r in self.results for stage in r.seconds})
        out["seconds"] = {
            stage: float(np.mean([r.seconds.get(stage, 0.0) for r in self.results]))
            for stage in stages
        }
        out["config"] = self.results[0].config
        return out


def _faithfulness(
    context: MethodContext,
    trials: MethodTrials,
    ground_truth: GroundTruth | None,
    seed: int,
) -> dict[str, Any]:
    config = context.config.evaluation
    ablator = context.ablator(seed)
    rankings = [result.node["score"].to_numpy() for result in trials.results]
    if ground_truth is None:
        return faithfulness_report(ablator, rankings=rankings, cache=context.curve_cache)
    found = []
    for result, metrics in zip(trials.results, trials.node_metrics, strict=True):
        threshold = metrics["threshold"]
        keep = (
            result.node["score"].to_numpy() >= threshold
            if threshold is not None
            else np.zeros(len(result.node), dtype=bool)
        )
        found.append(ablator.kept(keep))
    report = faithfulness_report(
        ablator,
        {"ground_truth": ground_truth.heads},
        rankings=rankings,
        n_random=config.n_random_circuits,
        random_size=round(np.median([f["size"] for f in found])),
        seed=seed,
        progress=context.progress,
        cache=context.curve_cache,
    )
    # The found circuits (one per trial) go before the ground truth, as in every report.
    named = ("ground_truth", "random")
    ordered = {key: value for key, value in report.items() if key not in named}
    ordered["found"] = {key: summarise([f[key] for f in found]) for key in found[0]}
    return ordered | {key: report[key] for key in named if key in report}


def _pair_truth(
    edges: pd.DataFrame | None, ground_truth: GroundTruth, n_heads: int
) -> np.ndarray | None:
    """Per edge row, whether its unordered head pair is a ground-truth head-to-head edge."""
    if edges is None or not {"head1", "head2"} <= set(edges.columns) or not len(edges):
        return None
    pairs = {
        frozenset((head_index(sender, n_heads), head_index(receiver, n_heads)))
        for sender, receiver, _ in ground_truth.head_pairs
    }
    if not pairs:
        return None
    truth = np.array(
        [frozenset((a, b)) in pairs for a, b in zip(edges["head1"], edges["head2"], strict=True)]
    )
    return truth if truth.any() and not truth.all() else None


def run_trials(
    context: MethodContext,
    method: str = "sae",
    *,
    n_trials: int = 1,
    seed: int = 0,
    ground_truth: GroundTruth | None = None,
) -> MethodTrials:
    """Run a method ``n_trials`` times (seeds ``seed + t``; once if it is deterministic) on
    prepared data and evaluate it."""
    if n_trials < 1:
        raise ValueError(f"n_trials={n_trials}; run at least one trial.")
    if methods.get(method).deterministic:
        n_trials = 1
    trials = MethodTrials(method=method, results=[])
    rule = context.config.evaluation.threshold_rule
    n_heads = context.model.n_heads
    bar = context.progress and n_trials > 1
    for trial in tqdm(range(n_trials), desc=f"{method} trials", disable=not bar):
        result = _run_method(context, method, seed + trial)
        if ground_truth is not None:
            start = time.perf_counter()
            for frame, metrics in (
                (result.node, trials.node_metrics),
                (result.edge_node, trials.edge_metrics),
            ):
                if frame is not None:
                    evaluation = evaluate(
                        frame, ground_truth.heads, threshold_rule=rule, n_heads_per_layer=n_heads
                    )
                    metrics.append(evaluation.as_dict())
            truth_pairs = _pair_truth(result.edges, ground_truth, n_heads)
            if truth_pairs is not None and result.edges is not None:
                evaluation = evaluate(result.edges["score"], truth_pairs, threshold_rule=rule)
                trials.edge_pair_metrics.append(evaluation.as_dict())
            result.seconds["evaluation"] = time.perf_counter() - start
        trials.results.append(result)
    if context.config.evaluation.faithfulness:
        start = time.perf_counter()
        trials.faithfulness = _faithfulness(context, trials, ground_truth, seed)
        elapsed = time.perf_counter() - start
        for result in trials.results:
            result.seconds["faithfulness"] = elapsed
    return trials
