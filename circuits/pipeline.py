"""``circuits.score``: task prompts -> per-head capture -> discrete SAE -> codes -> scores.

One config dataclass per stage (capture, SAE, scoring, evaluation), bundled in
``PipelineConfig``; the resolved config is stored with every result. Scoring methods live in
a registry (``register_method``) so baselines return the same ``ScoreResult``. Multi-trial
runs (``run_trials``) generate and capture the task data once, then rerun the method with
seeds ``seed, seed + 1, ...`` and report mean and std of every metric; a method registered
as deterministic (its scores do not depend on the seed) runs once.
"""

from __future__ import annotations

import importlib
import importlib.util
import time
from collections.abc import Callable, Mapping, Sequence
from dataclasses import asdict, dataclass, field, fields, replace
from typing import Any, Literal

import numpy as np
import pandas as pd
import torch
from tqdm.auto import tqdm

from circuits import tasks as task_registry
from circuits.calibration import expected_exclusive_codes
from circuits.evaluation import ThresholdRule, evaluate
from circuits.faithfulness import ABLATIONS, Ablation, CircuitAblator, faithfulness_curve
from circuits.ground_truth import GroundTruth
from circuits.scoring import DEFAULT_CHUNK_KEYS, edge_scores, heads_from_edges, node_scores
from circuits.tasks import Task, TaskData, UserTask
from circuits.timing import timed
from interp import HookedModel, capture_heads, load_model
from saes import SAETrainingConfig, code_stats, codes, train_discrete_sae

__all__ = [
    "CaptureConfig",
    "EvaluationConfig",
    "MethodContext",
    "MethodFn",
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
    "summarise",
]


@dataclass(frozen=True)
class CaptureConfig:
    """Which prompts are generated and how each head's output is captured."""

    n_prompts: int = 500
    """Prompts scored in total, half positive and half negative (seed paper: 250 + 250);
    a user task with fewer pairs uses all of them."""
    positions: Literal["mean", "last"] = "mean"
    """How a head's output is reduced over positions: mean over real tokens (seed paper) or
    the last real token."""
    include_bos: bool = True
    """Include the BOS position in the mean (the seed paper does)."""
    batch_size: int = 32
    """Prompts per forward pass."""
    filter_correct: bool = False
    """Drop prompt pairs whose positive the model answers wrongly before scoring."""

    def __post_init__(self) -> None:
        if self.n_prompts < 2 or self.n_prompts % 2:
            raise ValueError(
                f"n_prompts={self.n_prompts}; give an even number >= 2 (half positives)."
            )
        if self.positions not in ("mean", "last"):
            raise ValueError(f"positions={self.positions!r}; use 'mean' or 'last'.")
        if self.batch_size < 1:
            raise ValueError(f"batch_size={self.batch_size}; use a positive batch size.")


@dataclass(frozen=True)
class ScoringConfig:
    """How codes become node and edge scores."""

    normalise: bool = False
    """Divide each count by the number of distinct codes (or code pairs) seen at all."""
    edges: bool = True
    """Also score head pairs and rank heads from the top pairs (the paper's edge method)."""
    edge_top_pairs: int | None = None
    """Top unordered head pairs whose heads are counted; None: n_heads_per_layer**2 // 8,
    what the seed code's cut of n_heads_per_layer**2 // 2 ordered-pair entries amounts to."""
    dead_rows: Literal["preact", "zero"] = "preact"
    """Code of a (prompt, head) row with no active latent: argmax of the pre-activations, or
    code 0 as the seed code's argmax of a zero row."""
    chunk_keys: int = DEFAULT_CHUNK_KEYS
    """Edge counting sorts this many (pair, prompt) keys at a time; bounds peak memory."""
    n_permutations: int = 200
    """Shuffled labels behind the calibrated score's null distribution (sae-calibrated)."""

    def __post_init__(self) -> None:
        if self.edge_top_pairs is not None and self.edge_top_pairs < 1:
            raise ValueError(f"edge_top_pairs={self.edge_top_pairs}; use >= 1 or None.")
        if self.dead_rows not in ("preact", "zero"):
            raise ValueError(f"dead_rows={self.dead_rows!r}; use 'preact' or 'zero'.")
        if self.chunk_keys < 1:
            raise ValueError(f"chunk_keys={self.chunk_keys}; use a positive number.")
        if self.n_permutations < 2:
            raise ValueError(f"n_permutations={self.n_permutations}; use at least 2.")


@dataclass(frozen=True)
class EvaluationConfig:
    """How scores are judged against a ground truth."""

    threshold_rule: ThresholdRule = "otsu"
    """Ground-truth-free rule that cuts the scores into circuit / not circuit: `otsu`
    (maximal between-class variance) or `largest_gap`."""
    faithfulness: bool = True
    """Ablate the heads outside the found circuit, the ground truth and random circuits, and
    trace each method's faithfulness curve over MIB's circuit sizes (CPR, CMD)."""
    ablation: Ablation = "counterfactual"
    """Faithfulness ablation of the heads outside a circuit: `counterfactual` z from the
    paired corrupted prompt (MIB's and ACDC's default; stable on deep models), `mean` z over
    the corrupted prompts, or `resample` z from a random corrupted prompt of the same
    length."""
    n_random_circuits: int = 5
    """Random circuits (of the found circuit's size) ablated for comparison."""
    faithfulness_prompts: int = 100
    """Clean prompts used for faithfulness (the first ones of the task data)."""

    def __post_init__(self) -> None:
        if self.threshold_rule not in ("otsu", "largest_gap"):
            raise ValueError(
                f"threshold_rule={self.threshold_rule!r}; use 'otsu' or 'largest_gap'."
            )
        if self.ablation not in ABLATIONS:
            raise ValueError(f"ablation={self.ablation!r}; use one of {', '.join(ABLATIONS)}.")
        if self.n_random_circuits < 0 or self.faithfulness_prompts < 1:
            raise ValueError(
                f"n_random_circuits={self.n_random_circuits} must be >= 0 and "
                f"faithfulness_prompts={self.faithfulness_prompts} >= 1."
            )


@dataclass(frozen=True)
class PipelineConfig:
    """Every stage's configuration; saved next to every result."""

    capture: CaptureConfig = field(default_factory=CaptureConfig)
    """Prompt generation and per-head capture."""
    sae: SAETrainingConfig = field(default_factory=SAETrainingConfig)
    """Discrete SAE training (saes.SAETrainingConfig)."""
    scoring: ScoringConfig = field(default_factory=ScoringConfig)
    """Node and edge scoring."""
    evaluation: EvaluationConfig = field(default_factory=EvaluationConfig)
    """Metrics and faithfulness."""

    def to_dict(self) -> dict[str, Any]:
        """Plain nested dict, ready for JSON."""
        return asdict(self)

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> PipelineConfig:
        """Inverse of ``to_dict``; unknown sections or fields are errors."""
        sections = {f.name: f for f in fields(cls)}
        unknown = set(data) - set(sections)
        if unknown:
            raise ValueError(f"unknown config section(s) {sorted(unknown)}; use {list(sections)}.")
        types = {
            "capture": CaptureConfig,
            "sae": SAETrainingConfig,
            "scoring": ScoringConfig,
            "evaluation": EvaluationConfig,
        }
        built = {}
        for name, values in data.items():
            allowed = {f.name for f in fields(types[name])}
            stray = set(values) - allowed
            if stray:
                raise ValueError(
                    f"unknown {name} option(s) {sorted(stray)}; use {sorted(allowed)}."
                )
            built[name] = types[name](**values)
        return cls(**built)


def default_config(task: str | Task) -> PipelineConfig:
    """The seed paper's settings for a task (L1 coefficient 0.05 for docstring, else 0.02)."""
    name = task if isinstance(task, str) else task.name
    l1 = 0.05 if name == "docstring" else 0.02
    return PipelineConfig(sae=SAETrainingConfig(l1_coefficient=l1))


@dataclass
class ScoreResult:
    """Per-head scores of one method on one task, with timings and the resolved config."""

    method: str
    """Registered method name."""
    node: pd.DataFrame
    """One row per head: layer, head, label, score, rank (1 = most circuit-like), extras."""
    edges: pd.DataFrame | None = None
    """One row per unordered head pair (head1 < head2): score, rank, extras; or None."""
    edge_node: pd.DataFrame | None = None
    """Head scores derived from the top-ranked pairs (the paper's edge method); or None."""
    seconds: dict[str, float] = field(default_factory=dict)
    """Wall-clock seconds per stage (capture is shared by the trials of one run)."""
    config: dict[str, Any] = field(default_factory=dict)
    """Resolved config, model, task and seed: enough to reproduce the result."""
    seed: int = 0
    """Seed of this run."""
    extra: dict[str, Any] = field(default_factory=dict)
    """Method-specific diagnostics (e.g. SAE code statistics)."""


class MethodContext:
    """What a method sees: model, task, data and config, with the head capture cached."""

    def __init__(
        self,
        model: HookedModel,
        task: Task,
        data: TaskData,
        config: PipelineConfig,
        *,
        progress: bool = False,
        seconds: Mapping[str, float] | None = None,
    ) -> None:
        self.model = model
        self.task = task
        self.data = data
        self.config = config
        self.progress = progress
        self.seconds: dict[str, float] = dict(seconds or {})
        """Seconds of the shared stages (data generation, capture)."""
        self.used_capture = False
        """Whether ``head_acts`` was called since the flag was last cleared."""
        self._acts: tuple[torch.Tensor, torch.Tensor] | None = None
        self._ablator: CircuitAblator | None = None
        self.curve_cache: dict[bytes, float] = {}
        """f(k) of every circuit evaluated under ``ablator()``, shared by the methods."""

    def ablator(self, seed: int = 0) -> CircuitAblator:
        """The faithfulness ablator over the first ``faithfulness_prompts`` pairs (cached:
        every method is judged under the same ablation and prompts)."""
        if self._ablator is None:
            config = self.config.evaluation
            n = min(config.faithfulness_prompts, len(self.data))
            self._ablator = CircuitAblator(
                self.model,
                self.task,
                self.data.subset(list(range(n))),
                ablation=config.ablation,
                seed=seed,
                batch_size=self.config.capture.batch_size,
                progress=self.progress,
            )
        return self._ablator

    def head_acts(self) -> tuple[torch.Tensor, torch.Tensor]:
        """``acts_PHD`` (on the model's device) of the positives then the negatives, and
        ``is_positive_P`` (cached)."""
        self.used_capture = True
        if self._acts is None:
            prompts = list(self.data.positives) + list(self.data.negatives)
            with timed(self.seconds, "capture", self.model.device):
                capture = capture_heads(
                    self.model,
                    prompts,
                    positions=self.config.capture.positions,
                    include_bos=self.config.capture.include_bos,
                    batch_size=self.config.capture.batch_size,
                    progress=self.progress,
                    device=self.model.device,
                )
            is_positive_P = torch.zeros(len(prompts), dtype=torch.bool)
            is_positive_P[: len(self.data.positives)] = True
            self._acts = (capture.results, is_positive_P)
        return self._acts


MethodFn = Callable[[MethodContext, int], ScoreResult]
"""A scoring method: (context, seed) -> ScoreResult with node (and optional edge) scores."""

_METHODS: dict[str, MethodFn] = {}
_DETERMINISTIC: set[str] = set()


def register_method(name: str, *, deterministic: bool = False) -> Callable[[MethodFn], MethodFn]:
    """Decorator registering a scoring method under ``name`` (used by circuits.baselines).

    ``deterministic``: the method's scores do not depend on the seed (given the data), so
    ``run_trials`` runs it once however many trials are asked for.
    """

    def decorator(fn: MethodFn) -> MethodFn:
        if name in _METHODS and _METHODS[name] is not fn:
            raise ValueError(f"method {name!r} is already registered; pick another name.")
        _METHODS[name] = fn
        if deterministic:
            _DETERMINISTIC.add(name)
        return fn

    return decorator


def _load_plugins() -> None:
    # Methods outside this module register themselves on import.
    for module in ("circuits.baselines", "circuits.calibrated"):
        if importlib.util.find_spec(module) is not None:
            importlib.import_module(module)


def available_methods() -> list[str]:
    """Names of the registered scoring methods."""
    _load_plugins()
    return sorted(_METHODS)


def get_method(name: str) -> MethodFn:
    """The registered method called ``name``."""
    if name not in _METHODS:
        _load_plugins()
    if name not in _METHODS:
        raise ValueError(f"unknown method {name!r}; registered: {', '.join(sorted(_METHODS))}.")
    return _METHODS[name]


@register_method("sae")
def _sae_method(context: MethodContext, seed: int) -> ScoreResult:
    """O'Neill & Bui 2024: one discrete SAE over all heads, codes, exclusive-code counts."""
    acts_PHD, is_positive_P = context.head_acts()
    config = context.config
    n_heads = context.model.n_heads
    device = acts_PHD.device
    seconds: dict[str, float] = {}
    with timed(seconds, "sae", device):
        sae = train_discrete_sae(acts_PHD, config.sae, seed, quiet=not context.progress)
    with timed(seconds, "codes", device):
        codes_PH = codes(sae, acts_PHD, dead_rows=config.scoring.dead_rows)
    with timed(seconds, "node_scoring", device):
        node = node_scores(codes_PH, is_positive_P, n_heads, normalise=config.scoring.normalise)
        # The chance level of the unnormalised count (labels shuffled) and the excess over it.
        node["e0"] = expected_exclusive_codes(codes_PH.cpu(), is_positive_P)
        node["excess"] = node["n_pos_only"] - node["e0"]
    edges = edge_node = None
    if config.scoring.edges:
        with timed(seconds, "edge_scoring", device):
            edges = edge_scores(
                codes_PH,
                is_positive_P,
                n_heads,
                normalise=config.scoring.normalise,
                chunk_keys=config.scoring.chunk_keys,
                progress=context.progress,
            )
            edge_node = heads_from_edges(
                edges, n_heads, codes_PH.shape[1], top_pairs=config.scoring.edge_top_pairs
            )
    stats = code_stats(sae, acts_PHD, dead_rows=config.scoring.dead_rows).to_dict()
    stats.pop("code_counts")
    return ScoreResult(
        method="sae", node=node, edges=edges, edge_node=edge_node, seconds=seconds, extra=stats
    )


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
    result = get_method(method)(context, seed)
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


def summarise(values: Sequence[float]) -> dict[str, float]:
    """Mean and population std (ddof=0, as the seed paper's numbers) of trial values."""
    array = np.asarray(values, dtype=np.float64)
    return {"mean": float(array.mean()), "std": float(array.std())}


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
    curves = [
        faithfulness_curve(ablator, result.node["score"].to_numpy(), cache=context.curve_cache)
        for result in trials.results
    ]
    report: dict[str, Any] = {
        "ablation": config.ablation,
        "metric_name": context.task.metric_name,
        "n_prompts": len(ablator.data),
        "full_metric": ablator.full_metric,
        "empty_metric": ablator.empty_metric,
        "cpr": summarise([curve.cpr for curve in curves]),
        "cmd": summarise([curve.cmd for curve in curves]),
        "curves": [curve.as_dict() for curve in curves],
    }
    if ground_truth is None:
        return report
    found = []
    for result, metrics in zip(trials.results, trials.node_metrics, strict=True):
        threshold = metrics["threshold"]
        keep = (
            result.node["score"].to_numpy() >= threshold
            if threshold is not None
            else np.zeros(len(result.node), dtype=bool)
        )
        found.append(ablator.kept(keep))
    report["found"] = {key: summarise([f[key] for f in found]) for key in found[0]}
    report["ground_truth"] = ablator.kept(ground_truth.heads)
    if config.n_random_circuits:
        size = round(np.median([f["size"] for f in found]))
        report["random"] = ablator.random(size, config.n_random_circuits, seed, context.progress)
    return report


def _pair_truth(
    edges: pd.DataFrame | None, ground_truth: GroundTruth, n_heads: int
) -> np.ndarray | None:
    """Per edge row, whether its unordered head pair is a ground-truth head-to-head edge."""
    if edges is None or not {"head1", "head2"} <= set(edges.columns) or not len(edges):
        return None
    pairs = {
        frozenset((s[0] * n_heads + s[1], r[0] * n_heads + r[1]))
        for s, r, _ in ground_truth.head_pairs
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
    get_method(method)  # registers the plugins before the deterministic check
    if method in _DETERMINISTIC:
        n_trials = 1
    trials = MethodTrials(method=method, results=[])
    rule = context.config.evaluation.threshold_rule
    n_heads = context.model.n_heads
    quiet = not context.progress or n_trials == 1
    for trial in tqdm(range(n_trials), desc=f"{method} trials", disable=quiet):
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
