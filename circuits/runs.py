"""``run_task``: every method on one task, evaluated, with its result files written.

What the CLI's ``reproduce`` and ``score`` do for each task, as one call a notebook can make:
load the model and the task data, choose the ground truth, run the signal pre-check, run
each method's trials, and write ``results.json``, ``scores.csv`` and the figures
(``heads.png``, ``roc.png``, ``faithfulness.png``) atomically into
``<out>/<task>/<model>/``.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Literal

import numpy as np
import pandas as pd

from circuits import ground_truth as ground_truths
from circuits.config import PipelineConfig
from circuits.files import safe_name, versions, write_atomic, write_json
from circuits.ground_truth import GroundTruth
from circuits.methods import MethodContext, registry
from circuits.pipeline import MethodTrials, prepare, run_trials
from circuits.references import reference_path
from circuits.signal import SignalCheck, signal_check
from circuits.tasks import Task
from interp.models import ORGANISMS, ORGANISMS_DIR, HookedModel

__all__ = ["TaskRun", "own_ground_truth", "resolve_ground_truth", "run_prepared", "run_task"]

TableRows = list[dict[str, str]]

_STAGES = (
    "data",
    "capture",
    "sae",
    "codes",
    "node_scoring",
    "edge_scoring",
    "evaluation",
    "faithfulness",
)
"""Timing columns in pipeline order; a method's other stages follow."""


def own_ground_truth(task: Task, model: HookedModel) -> GroundTruth | None:
    """The organism's ground truth or the shipped reference of this task on this model."""
    if model.name in ORGANISMS:
        truth = ground_truths.load_file(ORGANISMS_DIR / model.name / "ground_truth.json")
        return truth if truth.task == task.name else None
    path = reference_path(task.name, model.name)
    return ground_truths.load_file(path) if path.is_file() else None


def resolve_ground_truth(
    task: Task,
    model: HookedModel,
    variant: str | None = None,
    file: str | Path | None = None,
) -> GroundTruth | None:
    """The circuit to evaluate against, checked to fit ``model``: ``file`` if given; else
    the model's own (an organism's, a shipped reference such as smollm2-135m's); else the
    task's published ``variant`` (GPT-2's; default ``acdc``); None for a task without one."""
    if file is not None:
        truth = ground_truths.load_file(file)
    elif (own := own_ground_truth(task, model)) is not None:
        if variant is not None:
            raise ValueError(
                f"ground truth {variant!r} is a published circuit of GPT-2 / attn-only-4l; "
                f"{model.name} has its own {task.name} circuit ({own.variant}), used by "
                "default. Drop the variant (--ground-truth), or give a file "
                "(--ground-truth-file FILE)."
            )
        truth = own
    else:
        try:
            truth = task.ground_truth(variant)
        except ValueError:
            if variant is not None:
                raise
            return None
    try:
        truth.head_mask(model.n_layers, model.n_heads)
    except ValueError as error:
        raise ValueError(
            f"{error} The ground truth ({truth.task}/{truth.variant}, for {truth.model}) does "
            f"not fit {model.name}; give one that does (--ground-truth-file FILE)."
        ) from error
    return truth


@dataclass
class TaskRun:
    """Every method's trials on one task and model, with what they were judged against."""

    task: Task
    model: HookedModel
    trials: dict[str, MethodTrials]
    """Method name -> its trials."""
    ground_truth: GroundTruth | None
    signal: SignalCheck
    """The signal pre-check of the scored prompts."""
    seed: int
    n_trials: int
    info: dict[str, Any] = field(default_factory=dict)
    """Extra entries for results.json (e.g. how the model was named on the command line)."""

    def signal_line(self) -> str:
        """One line: the task, the model and the signal pre-check's verdict."""
        return f"{self.task.name} / {self.model.name}: {self.signal.summary(self.truth_H)}"

    @property
    def truth_H(self) -> np.ndarray | None:
        """Ground-truth membership per head, or None."""
        if self.ground_truth is None:
            return None
        mask = self.ground_truth.head_mask(self.model.n_layers, self.model.n_heads)
        return np.asarray(mask, dtype=bool)

    def results(self) -> dict[str, Any]:
        """The content of results.json: summaries of every method, the ground truth, the
        signal pre-check, versions."""
        truth = self.ground_truth
        return {
            "task": self.task.name,
            "model": self.model.name,
            **self.info,
            "seed": self.seed,
            "n_trials": self.n_trials,
            "device": str(self.model.device),
            "attn_kernel": self.model.attn_kernel,
            "ground_truth": None
            if truth is None
            else {
                "task": truth.task,
                "variant": truth.variant,
                "model": truth.model,
                "heads": truth.labels,
                "source": truth.provenance.source,
            },
            "signal_check": self.signal.as_dict(),
            "methods": {method: trials.summary() for method, trials in self.trials.items()},
            "versions": versions(),
        }

    def scores(self) -> pd.DataFrame:
        """The content of scores.csv: one row per method, kind (node/edge), seed and head."""
        truth_H = self.truth_H
        rows = []
        for method, trials in self.trials.items():
            for result in trials.results:
                for kind, frame in (("node", result.node), ("edge", result.edge_node)):
                    if frame is None:
                        continue
                    part = frame[["layer", "head", "label", "score", "rank"]].reset_index()
                    part.insert(0, "seed", result.seed)
                    part.insert(0, "kind", kind)
                    part.insert(0, "method", method)
                    if truth_H is not None:
                        part["in_ground_truth"] = truth_H
                    rows.append(part)
        return pd.concat(rows, ignore_index=True)

    def write(self, out: str | Path) -> Path:
        """Write results.json, scores.csv and the figures into ``<out>/<task>/<model>/``."""
        from circuits.plots import faithfulness_figure, heads_figure, roc_figure

        out_dir = Path(out) / safe_name(self.task.name) / safe_name(self.model.name)
        scores = self.scores()
        write_json(out_dir / "results.json", self.results())
        write_atomic(out_dir / "scores.csv", lambda p: scores.to_csv(p, index=False))
        title = f"{self.task.name} / {self.model.name}"
        truth_H = self.truth_H
        groups = scores.groupby(["method", "kind"], sort=False)
        panel = {"node": "{}", "edge": "{} (heads from top pairs)"}
        mean_scores = {
            panel[kind].format(method): group.groupby("head_index")["score"].mean().to_numpy()
            for (method, kind), group in groups
        }
        figures = {
            "heads.png": heads_figure(
                mean_scores, self.model.n_layers, self.model.n_heads, truth_H=truth_H, title=title
            )
        }
        if truth_H is not None and truth_H.any() and not truth_H.all():
            per_trial = {
                panel[kind].format(method): [
                    g["score"].to_numpy() for _, g in group.groupby("seed")
                ]
                for (method, kind), group in groups
            }
            figures["roc.png"] = roc_figure(per_trial, truth_H, title=title)
        curves = {
            method: trials.faithfulness["curves"]
            for method, trials in self.trials.items()
            if trials.faithfulness is not None
        }
        if curves:
            figures["faithfulness.png"] = faithfulness_figure(curves, title=title)
        for name, figure in figures.items():
            write_atomic(out_dir / name, lambda p, figure=figure: figure.savefig(p, dpi=120))
        return out_dir

    def table_rows(self) -> tuple[TableRows, TableRows]:
        """Metric rows (one per method and node/edge/edge_pairs) and timing rows (one per
        method), as printed by the CLI."""
        metric_rows, timing_rows = [], []
        for method, trials in self.trials.items():
            summary = trials.summary()
            for kind in ("node", "edge", "edge_pairs"):
                if kind in summary or kind == "node":
                    metric_rows.append(self._metric_row(method, kind, summary))
            seconds = summary["seconds"]
            timing = {"task": self.task.name, "model": self.model.name, "method": method}
            timing.update({s: f"{seconds[s]:.2f}" for s in _STAGES if s in seconds})
            timing.update({k: f"{v:.2f}" for k, v in seconds.items() if k not in _STAGES})
            timing_rows.append(timing)
        return metric_rows, timing_rows

    def top_heads(self, k: int = 10) -> dict[str, list[str]]:
        """Per method, the labels of the ``k`` heads with the highest mean node score."""
        tops = {}
        for method, trials in self.trials.items():
            scores = pd.concat([result.node["score"] for result in trials.results], axis=1)
            order = scores.mean(axis=1).sort_values(ascending=False, kind="stable").index
            tops[method] = list(trials.results[0].node["label"][order[:k]])
        return tops

    def _metric_row(self, method: str, kind: str, summary: dict[str, Any]) -> dict[str, str]:
        n = summary["n_trials"]
        metrics = summary.get(kind) or {}
        row = {
            "task": self.task.name,
            "model": self.model.name,
            "method": method,
            "kind": kind,
            **{
                key: _cell(metrics, key, n)
                for key in ("roc_auc", "pr_auc", "precision", "recall", "f1")
            },
            "rule": metrics.get("threshold_rule", "-"),
            "n_selected": _cell(metrics, "n_selected", n),
            "paper_f1_leaky": _cell(metrics, "paper_f1_leaky", n),
            "cpr": "-",
            "cmd": "-",
            "kept found/gt/random": "-",
        }
        faith = summary.get("faithfulness")
        if kind != "node" or faith is None:
            return row
        row["cpr"] = _cell(faith, "cpr", n)
        row["cmd"] = _cell(faith, "cmd", n)
        if "found" in faith:
            random_kept = f"{faith['random']['kept']['mean']:.2f}" if "random" in faith else "-"
            row["kept found/gt/random"] = (
                f"{faith['found']['kept']['mean']:.2f}/"
                f"{faith['ground_truth']['kept']:.2f}/{random_kept}"
            )
        return row


def _cell(summary: dict[str, Any], key: str, n_trials: int) -> str:
    """`mean±std` over trials; a single trial has no spread to show."""
    if key not in summary:
        return "-"
    if n_trials == 1:
        return f"{summary[key]['mean']:.3f}"
    return f"{summary[key]['mean']:.3f}±{summary[key]['std']:.3f}"


def run_task(
    model: HookedModel | str,
    task: Task | str,
    methods: Sequence[str] = ("sae",),
    config: PipelineConfig | None = None,
    *,
    n_trials: int = 1,
    seed: int = 0,
    ground_truth: GroundTruth | Literal["auto"] | None = "auto",
    out: str | Path | None = None,
    device: str | None = None,
    attn_kernel: str = "sdpa",
    progress: bool = True,
) -> TaskRun:
    """Score ``task`` on ``model`` with every method (``n_trials`` each), evaluate against
    ``ground_truth`` (``"auto"``: ``resolve_ground_truth``'s choice; None: no evaluation)
    and, with ``out``, write the result files."""
    _check_methods(methods)
    context = prepare(
        model, task, config, seed=seed, device=device, attn_kernel=attn_kernel, progress=progress
    )
    return run_prepared(
        context, methods, n_trials=n_trials, seed=seed, ground_truth=ground_truth, out=out
    )


def run_prepared(
    context: MethodContext,
    methods: Sequence[str],
    *,
    n_trials: int = 1,
    seed: int = 0,
    ground_truth: GroundTruth | Literal["auto"] | None = "auto",
    out: str | Path | None = None,
) -> TaskRun:
    """``run_task`` on data already prepared (``circuits.prepare``): the signal pre-check,
    then every method's trials; with ``out``, the result files."""
    _check_methods(methods)
    if ground_truth == "auto":
        ground_truth = resolve_ground_truth(context.task, context.model)
    run = TaskRun(
        task=context.task,
        model=context.model,
        trials={},
        ground_truth=ground_truth,
        signal=signal_check(*context.head_acts(), seed=seed),
        seed=seed,
        n_trials=n_trials,
    )
    if context.progress:
        print(run.signal_line(), flush=True)
    for method in methods:
        run.trials[method] = run_trials(
            context, method, n_trials=n_trials, seed=seed, ground_truth=ground_truth
        )
    if out is not None:
        run.write(out)
    return run


def _check_methods(names: Sequence[str]) -> None:
    if not names:
        raise ValueError("no methods given; name at least one (circuits.methods.names()).")
    for name in names:
        registry.get(name)
