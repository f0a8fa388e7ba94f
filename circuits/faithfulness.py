"""Faithfulness: ablate every head outside a circuit and measure how much task metric is kept.

Heads outside the circuit have their ``z`` (``blocks.{l}.attn.hook_z``, one vector per head
and position) replaced on the task's clean prompts (the positives) under one of the ablations
of ``circuits.ablation``: ``counterfactual`` (the paired corrupted prompt's z), ``mean`` (the
mean z over the corrupted prompts per position; positions no reference prompt reaches get
the head's mean over all positions) or ``resample`` (a random corrupted prompt of the same
token length, one draw per call, shared by every circuit compared).

The fraction kept is ``metric(circuit) / metric(full model)``; ``kept_normalised`` is
``(metric(circuit) - metric(empty)) / (metric(full) - metric(empty))``, where the empty circuit
ablates every head. ``faithfulness_report`` gathers named circuits, MIB's curves of rankings
(CPR, CMD) and random circuits under one ablator.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import torch
from tqdm.auto import tqdm

from circuits.ablation import Ablation, check_ablation
from circuits.evaluation import summarise
from circuits.tasks import Task, TaskData
from interp.capture import MeanZ, mean_z
from interp.heads import head_mask
from interp.models import HookedModel

__all__ = [
    "MIB_FRACTIONS",
    "CircuitAblator",
    "FaithfulnessCurve",
    "faithfulness_curve",
    "faithfulness_report",
    "top_k_mask",
]

_REPORT_KEYS = frozenset(
    {"ablation", "metric_name", "n_prompts", "full_metric", "empty_metric"}
    | {"cpr", "cmd", "curves", "random"}
)
"""Keys of ``faithfulness_report`` that a named circuit may not take."""

MIB_FRACTIONS: tuple[float, ...] = (0.001, 0.002, 0.005, 0.01, 0.02, 0.05, 0.1, 0.2, 0.5, 1.0)
"""Circuit sizes of MIB's faithfulness curves, as fractions of the scored components
(Mueller et al. 2025, "MIB: A Mechanistic Interpretability Benchmark", circuit track)."""


@dataclass(frozen=True)
class _Reference:
    """What replaces ablated heads: a per-position mean, or the z of donor prompts."""

    ablation: str
    mean: MeanZ | None
    """Mean z over the corrupted prompts (``mean`` only)."""
    donors: list[int] | None
    """For each clean prompt, the corrupted prompt whose z it receives (donor ablations)."""
    donor_z: dict[tuple[int, ...], torch.Tensor] = field(default_factory=dict)
    """The donors' z per batch of clean prompts, computed on first use: every circuit
    compared under this reference reuses them instead of rerunning the donors."""


def _z_of(model: HookedModel, prompts: Sequence[str]) -> torch.Tensor:
    """Every layer's z on some prompts, ``[layers, batch, seq, heads, d_head]``."""
    tokens_BS, mask_BS = model.to_tokens(list(prompts))
    return model.layer_z(tokens_BS, None if bool(mask_BS.all()) else mask_BS)


def _run(model: HookedModel, tokens_BS: torch.Tensor, mask_BS: torch.Tensor) -> torch.Tensor:
    # A batch without padding needs no mask (and keeps fused attention on its fast path).
    return model(tokens_BS, None if bool(mask_BS.all()) else mask_BS)


def _mean_reference(
    model: HookedModel, prompts: Sequence[str], batch_size: int, progress: bool
) -> _Reference:
    batches = (
        model.to_tokens(list(prompts[start : start + batch_size]))
        for start in range(0, len(prompts), batch_size)
    )
    return _Reference("mean", mean_z(model, batches, progress), None)


def _donor_reference(ablation: str, lengths: Sequence[int], seed: int) -> _Reference:
    if ablation == "counterfactual":
        return _Reference(ablation, None, list(range(len(lengths))))
    rng = np.random.default_rng(seed)
    by_length: dict[int, list[int]] = {}
    for i, length in enumerate(lengths):
        by_length.setdefault(length, []).append(i)
    # Donors share the clean prompt's token length, so positions line up exactly.
    donors = [int(rng.choice(by_length[length])) for length in lengths]
    return _Reference(ablation, None, donors)


def _replacement_LBSHd(
    model: HookedModel,
    reference: _Reference,
    data: TaskData,
    indices: list[int],
    width: int,
) -> torch.Tensor:
    if reference.donors is not None:
        key = tuple(indices)
        if key not in reference.donor_z:
            donors = [data.corrupted[reference.donors[i]] for i in indices]
            reference.donor_z[key] = _z_of(model, donors)
        return reference.donor_z[key][:, :, :width]
    assert reference.mean is not None  # a reference is either donors or a mean
    return reference.mean.at(width)[:, None]


def _metric_values(
    model: HookedModel,
    task: Task,
    data: TaskData,
    keep_H: np.ndarray,
    reference: _Reference,
    batch_size: int,
) -> torch.Tensor:
    ablate_LH = torch.as_tensor(~keep_H).view(model.n_layers, model.n_heads).to(model.device)
    values = []
    for start in range(0, len(data), batch_size):
        indices = list(range(start, min(start + batch_size, len(data))))
        tokens_BS, mask_BS = model.to_tokens([data.positives[i] for i in indices])
        hooks = []
        if bool(ablate_LH.any()):
            replacement = _replacement_LBSHd(model, reference, data, indices, tokens_BS.shape[1])

            def patch(z_BSHd: torch.Tensor, hook: Any, replacement=replacement) -> torch.Tensor:
                layer = hook.layer()
                heads = ablate_LH[layer]
                new = replacement[layer].to(z_BSHd.dtype).expand_as(z_BSHd)
                return torch.where(heads[None, None, :, None], new, z_BSHd)

            hooks = [
                (f"blocks.{layer}.attn.hook_z", patch)
                for layer in range(model.n_layers)
                if bool(ablate_LH[layer].any())
            ]
        with torch.inference_mode(), model.hooks(hooks):
            logits = _run(model, tokens_BS, mask_BS)
        batch_data = data.subset(indices)
        values.append(task.metric(logits, batch_data, mask=mask_BS, reduce=False).float().cpu())
    return torch.cat(values)


def _keep_mask(circuit: object, model: HookedModel) -> np.ndarray:
    # A GroundTruth (or anything with `heads`) counts as its heads.
    heads = getattr(circuit, "heads", circuit)
    return head_mask(heads, model.n_layers * model.n_heads, model.n_heads)


class CircuitAblator:
    """Task metric on the clean prompts with every head outside a circuit ablated.

    The ablation reference (mean z, or the resampled donors) is computed once, so many
    circuits can be compared under the same ablation.
    """

    def __init__(
        self,
        model: HookedModel,
        task: Task,
        data: TaskData,
        *,
        ablation: Ablation = "mean",
        seed: int = 0,
        batch_size: int = 32,
        progress: bool = False,
    ) -> None:
        check_ablation(ablation)
        if batch_size < 1:
            raise ValueError(f"batch_size={batch_size}; use a positive batch size.")
        if len(data) == 0:
            raise ValueError("task data has no prompts; generate at least one.")
        self.model = model
        self.task = task
        self.data = data
        self.ablation = ablation
        self.batch_size = batch_size
        self.n_heads = model.n_layers * model.n_heads
        self._reference = (
            _mean_reference(model, data.corrupted, batch_size, progress)
            if ablation == "mean"
            else _donor_reference(ablation, data.lengths, seed)
        )
        self.full_metric = self.metric(np.ones(self.n_heads, dtype=bool))
        self.empty_metric = self.metric(np.zeros(self.n_heads, dtype=bool))

    def metric(self, circuit: object) -> float:
        """Mean task metric with the heads outside ``circuit`` ablated."""
        keep = _keep_mask(circuit, self.model)
        values = _metric_values(
            self.model, self.task, self.data, keep, self._reference, self.batch_size
        )
        return float(values.mean())

    def kept(self, circuit: object) -> dict[str, float]:
        """Circuit size, its metric, and the fraction of the full model's metric it keeps."""
        keep = _keep_mask(circuit, self.model)
        metric = self.metric(keep)
        full, empty = self.full_metric, self.empty_metric
        # A zero denominator means the metric does not depend on the heads at all.
        kept = metric / full if full != 0 else 0.0
        spread = full - empty
        normalised = (metric - empty) / spread if spread != 0 else 0.0
        return {
            "size": int(keep.sum()),
            "metric": metric,
            "kept": kept,
            "kept_normalised": normalised,
        }

    def random(self, size: int, n: int, seed: int, progress: bool = False) -> dict[str, Any]:
        """Mean and std of ``kept`` over ``n`` random circuits of ``size`` heads."""
        if not 0 <= size <= self.n_heads:
            raise ValueError(f"random circuit size={size} must be within 0..{self.n_heads}.")
        if n < 1:
            raise ValueError(f"n={n}; draw at least one random circuit.")
        rng = np.random.default_rng(seed)
        draws = []
        for _ in tqdm(range(n), desc="random circuits", disable=not progress, leave=False):
            keep = np.zeros(self.n_heads, dtype=bool)
            keep[rng.choice(self.n_heads, size=size, replace=False)] = True
            draws.append(self.kept(keep))
        return {
            "size": size,
            "n": n,
            **{
                key: summarise([d[key] for d in draws])
                for key in ("metric", "kept", "kept_normalised")
            },
        }


def faithfulness_report(
    ablator: CircuitAblator,
    circuits: Mapping[str, object] | None = None,
    *,
    rankings: Sequence[np.ndarray] = (),
    n_random: int = 0,
    random_size: int | None = None,
    seed: int = 0,
    progress: bool = False,
    cache: dict[bytes, float] | None = None,
) -> dict[str, Any]:
    """Faithfulness of named circuits, of rankings and of random circuits under one ablator.

    ``circuits`` maps a name (e.g. ``found``, ``ground_truth``) to heads in any form
    ``interp.heads.head_mask`` accepts; each name becomes a key with the circuit's ``kept``
    dict. ``rankings`` (per-head scores, e.g. one per trial) add MIB's curves, CPR and CMD
    (mean and std over the rankings). Random circuits draw ``random_size`` heads (default:
    the first circuit's size) uniformly without replacement, ``n_random`` times from ``seed``.
    """
    report: dict[str, Any] = {
        "ablation": ablator.ablation,
        "metric_name": ablator.task.metric_name,
        "n_prompts": len(ablator.data),
        "full_metric": ablator.full_metric,
        "empty_metric": ablator.empty_metric,
    }
    if rankings:
        curves = [faithfulness_curve(ablator, scores_H, cache=cache) for scores_H in rankings]
        report["cpr"] = summarise([curve.cpr for curve in curves])
        report["cmd"] = summarise([curve.cmd for curve in curves])
        report["curves"] = [curve.as_dict() for curve in curves]
    for name, circuit in (circuits or {}).items():
        if name in _REPORT_KEYS:
            raise ValueError(f"circuit name {name!r} is a report key; rename the circuit.")
        report[name] = ablator.kept(circuit)
    if random_size is None and circuits:
        random_size = report[next(iter(circuits))]["size"]
    if n_random > 0 and random_size is not None:
        report["random"] = ablator.random(random_size, n_random, seed, progress)
    return report


@dataclass(frozen=True)
class FaithfulnessCurve:
    """Normalised metric of the top-k circuits of one ranking, with MIB's CPR and CMD."""

    fractions: tuple[float, ...]
    """Circuit sizes as fractions of the heads (x axis)."""
    sizes: tuple[int, ...]
    """Heads kept at each fraction: `int(fraction * n_heads)`, as MIB."""
    faithfulness: tuple[float, ...]
    """f(k) = (m(top-k) - m(empty)) / (m(full) - m(empty)) at each size."""
    cpr: float
    """Circuit performance ratio: trapezoidal area under f over the fractions (higher is
    better; above 1 where small circuits beat the full model)."""
    cmd: float
    """Circuit-model distance: trapezoidal area of |1 - f| over the fractions (lower is
    better)."""

    def as_dict(self) -> dict[str, Any]:
        """Plain dict, ready for JSON."""
        return {
            "fractions": list(self.fractions),
            "sizes": list(self.sizes),
            "faithfulness": list(self.faithfulness),
            "cpr": self.cpr,
            "cmd": self.cmd,
        }


def faithfulness_curve(
    ablator: CircuitAblator,
    scores_H: np.ndarray,
    fractions: Sequence[float] = MIB_FRACTIONS,
    cache: dict[bytes, float] | None = None,
) -> FaithfulnessCurve:
    """Keep the top-k heads of a ranking (highest scores; ties broken by head index) for
    each size, ablate the rest, and integrate as MIB does (linear fractions, trapezoids).

    `cache` maps a kept-head mask to its f(k), so rankings compared under one ablator share
    the forward passes of identical circuits (the empty and full circuits always are).
    """
    scores_H = np.asarray(scores_H, dtype=np.float64)
    if scores_H.shape != (ablator.n_heads,):
        raise ValueError(
            f"scores have shape {scores_H.shape}; expected ({ablator.n_heads},) heads."
        )
    cache = {} if cache is None else cache
    sizes, values = [], []
    for fraction in fractions:
        size = int(fraction * ablator.n_heads)
        keep_H = top_k_mask(scores_H, size)
        key = np.packbits(keep_H).tobytes()
        if key not in cache:
            cache[key] = _normalised(ablator, keep_H)
        sizes.append(size)
        values.append(cache[key])
    cpr = cmd = 0.0
    for i in range(len(fractions) - 1):
        width = fractions[i + 1] - fractions[i]
        cpr += width * (values[i] + values[i + 1]) / 2
        cmd += width * (abs(1 - values[i]) + abs(1 - values[i + 1])) / 2
    return FaithfulnessCurve(tuple(fractions), tuple(sizes), tuple(values), cpr, cmd)


def top_k_mask(scores_H: np.ndarray, k: int) -> np.ndarray:
    """Boolean mask of the `k` highest-scoring heads; ties go to the lower head index and
    NaN scores (a head a method could not score) rank last."""
    scores_H = np.asarray(scores_H, dtype=np.float64)
    order_H = np.lexsort((np.arange(len(scores_H)), -np.nan_to_num(scores_H, nan=-np.inf)))
    keep_H = np.zeros(len(scores_H), dtype=bool)
    keep_H[order_H[:k]] = True
    return keep_H


def _normalised(ablator: CircuitAblator, keep_H: np.ndarray) -> float:
    """f of one circuit, without a forward pass for the empty and the full circuit."""
    if not keep_H.any():
        return 0.0
    if keep_H.all():
        return 1.0
    return ablator.kept(keep_H)["kept_normalised"]
