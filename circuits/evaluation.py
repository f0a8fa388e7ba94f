"""Head scores against a ground-truth head set: AUCs, and precision/recall/F1 at a cut
chosen without the ground truth.

Everything is numpy; tied scores are one threshold (same convention as scikit-learn), so a
block of tied heads moves the ROC curve diagonally and counts half in the ROC AUC.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import asdict, dataclass

import numpy as np
import pandas as pd

from circuits.config import THRESHOLD_RULES, ThresholdRule
from interp.heads import head_mask

__all__ = [
    "THRESHOLD_RULES",
    "Evaluation",
    "average_precision",
    "choose_threshold",
    "evaluate",
    "ground_truth_mask",
    "paper_f1_leaky",
    "roc_auc",
    "roc_curve",
    "summarise",
]


@dataclass(frozen=True)
class Evaluation:
    """Metrics of one score vector against one ground truth."""

    roc_auc: float
    """Area under the ROC curve (ties count half)."""
    pr_auc: float
    """Average precision: sum over thresholds of precision times the recall increment."""
    precision: float
    """Precision of the heads at or above ``threshold`` (0 when none is selected)."""
    recall: float
    """Recall of the heads at or above ``threshold``."""
    f1: float
    """Harmonic mean of ``precision`` and ``recall`` (0 when both are 0)."""
    threshold: float | None
    """Score cut chosen by ``threshold_rule`` without the ground truth; None if scores are flat."""
    threshold_rule: str
    """Name of the ground-truth-free rule that chose ``threshold``."""
    n_selected: int
    """Number of heads with score >= ``threshold`` (the found circuit's size)."""
    n_ground_truth: int
    """Number of ground-truth heads."""
    n_heads: int
    """Number of scored heads."""
    paper_f1_leaky: float
    """Seed paper's "F1": max over thresholds of the harmonic mean of TPR and 1-FPR.
    The threshold is chosen WITH the ground truth, so this number is optimistic (leaky)."""
    paper_f1_leaky_threshold: float
    """Score threshold at which ``paper_f1_leaky`` is attained (uses the ground truth)."""

    def as_dict(self) -> dict[str, float | int | str | None]:
        """Plain dict, ready for JSON."""
        return asdict(self)


def _scores_array(scores: pd.DataFrame | pd.Series | np.ndarray | Iterable[float]) -> np.ndarray:
    if isinstance(scores, pd.DataFrame):
        if "score" not in scores.columns:
            raise ValueError(
                "scores DataFrame needs a 'score' column (as returned by circuits.score); "
                f"got columns {list(scores.columns)}."
            )
        scores = scores["score"]
    values = np.asarray(scores, dtype=np.float64)
    if values.ndim != 1 or values.size == 0:
        raise ValueError(f"scores must be a non-empty 1-D vector, got shape {values.shape}.")
    if not np.isfinite(values).all():
        raise ValueError("scores contain NaN or infinite values; fix the scoring method.")
    return values


def summarise(values: Iterable[float]) -> dict[str, float]:
    """Mean and population std (ddof=0, as the seed paper's numbers) of trial values."""
    array = np.asarray(list(values), dtype=np.float64)
    return {"mean": float(array.mean()), "std": float(array.std())}


def ground_truth_mask(
    ground_truth: object,
    n_heads: int,
    n_heads_per_layer: int | None = None,
) -> np.ndarray:
    """Boolean vector over flat heads from labels, (layer, head) pairs, indices or a mask."""
    return head_mask(getattr(ground_truth, "heads", ground_truth), n_heads, n_heads_per_layer)


def _check_labels(labels: np.ndarray, n: int) -> np.ndarray:
    labels = np.asarray(labels).astype(bool)
    if labels.shape != (n,):
        raise ValueError(f"labels must have shape ({n},) to match scores, got {labels.shape}.")
    if labels.all() or not labels.any():
        raise ValueError(
            "ground truth must contain at least one head in and one head out of the circuit; "
            f"got {int(labels.sum())} of {n}."
        )
    return labels


def _threshold_counts(
    scores: np.ndarray, labels: np.ndarray
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Distinct thresholds (descending) with true/false positives at score >= threshold."""
    order = np.argsort(-scores, kind="stable")
    sorted_scores = scores[order]
    sorted_labels = labels[order]
    # The last index of each block of tied scores closes one threshold.
    ends = np.flatnonzero(np.diff(sorted_scores) != 0)
    ends = np.append(ends, sorted_scores.size - 1)
    true_pos = np.cumsum(sorted_labels)[ends]
    false_pos = (ends + 1) - true_pos
    return sorted_scores[ends], true_pos, false_pos


def roc_curve(
    scores: pd.DataFrame | pd.Series | np.ndarray, labels: np.ndarray
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """ROC points (fpr, tpr, thresholds), starting at (0, 0) with threshold +inf."""
    values = _scores_array(scores)
    truth = _check_labels(labels, values.size)
    thresholds, true_pos, false_pos = _threshold_counts(values, truth)
    tpr = np.concatenate([[0.0], true_pos / truth.sum()])
    fpr = np.concatenate([[0.0], false_pos / (~truth).sum()])
    return fpr, tpr, np.concatenate([[np.inf], thresholds])


def roc_auc(scores: pd.DataFrame | pd.Series | np.ndarray, labels: np.ndarray) -> float:
    """Area under the ROC curve by the trapezoid rule (tied scores count half)."""
    fpr, tpr, _ = roc_curve(scores, labels)
    return float(np.sum(np.diff(fpr) * (tpr[1:] + tpr[:-1]) / 2.0))


def average_precision(scores: pd.DataFrame | pd.Series | np.ndarray, labels: np.ndarray) -> float:
    """Average precision: sum of precision times recall increments over distinct thresholds."""
    values = _scores_array(scores)
    truth = _check_labels(labels, values.size)
    _, true_pos, false_pos = _threshold_counts(values, truth)
    precision = true_pos / (true_pos + false_pos)
    recall_step = np.diff(np.concatenate([[0], true_pos])) / truth.sum()
    return float(np.sum(recall_step * precision))


def paper_f1_leaky(
    scores: pd.DataFrame | pd.Series | np.ndarray, labels: np.ndarray
) -> tuple[float, float]:
    """The seed paper's "F1" (harmonic mean of TPR and 1-FPR, best threshold), and that threshold.

    The threshold is chosen with the ground truth, so it overstates what a user would get.
    """
    fpr, tpr, thresholds = roc_curve(scores, labels)
    specificity = 1.0 - fpr
    total = tpr + specificity
    harmonic = np.divide(2 * tpr * specificity, total, out=np.zeros_like(total), where=total > 0)
    # Skip the (0, 0) start: its threshold (+inf) selects no head.
    best = 1 + int(np.argmax(harmonic[1:]))
    return float(harmonic[best]), float(thresholds[best])


def choose_threshold(scores: np.ndarray, rule: ThresholdRule = "otsu") -> float | None:
    """A score cut from the scores alone; heads with score >= cut form the circuit.

    ``otsu``: the two-cluster split of the sorted scores with maximal between-class
    variance (Otsu's method on the exact values). ``largest_gap``: the cut at the widest gap
    between consecutive distinct scores (ties go to the higher cut, the smaller circuit).
    Returns None when all scores are equal, i.e. no split exists.
    """
    values = _scores_array(scores)
    distinct, counts = np.unique(values, return_counts=True)
    if distinct.size < 2:
        return None
    if rule == "largest_gap":
        gaps = np.diff(distinct)
        # Scan from the top so equal gaps resolve to the higher cut.
        upper = distinct.size - 1 - int(np.argmax(gaps[::-1]))
        return float(distinct[upper])
    if rule == "otsu":
        weight_low = np.cumsum(counts)[:-1].astype(np.float64)
        sum_low = np.cumsum(distinct * counts)[:-1]
        total_weight = counts.sum()
        total_sum = float((distinct * counts).sum())
        weight_high = total_weight - weight_low
        mean_low = sum_low / weight_low
        mean_high = (total_sum - sum_low) / weight_high
        between = weight_low * weight_high * (mean_high - mean_low) ** 2
        return float(distinct[int(np.argmax(between)) + 1])
    raise ValueError(
        f"Unknown threshold rule {rule!r}; choose one of {', '.join(THRESHOLD_RULES)}."
    )


def evaluate(
    scores: pd.DataFrame | pd.Series | np.ndarray,
    ground_truth: object,
    *,
    threshold_rule: ThresholdRule = "otsu",
    n_heads_per_layer: int | None = None,
) -> Evaluation:
    """ROC AUC, PR AUC and precision/recall/F1 at a ground-truth-free threshold."""
    values = _scores_array(scores)
    if n_heads_per_layer is None and isinstance(scores, pd.DataFrame) and "head" in scores:
        n_heads_per_layer = int(scores["head"].max()) + 1
    truth = _check_labels(
        ground_truth_mask(ground_truth, values.size, n_heads_per_layer), values.size
    )
    threshold = choose_threshold(values, threshold_rule)
    selected = values >= threshold if threshold is not None else np.zeros(values.size, dtype=bool)
    true_pos = int((selected & truth).sum())
    precision = true_pos / selected.sum() if selected.any() else 0.0
    recall = true_pos / truth.sum()
    f1 = 2 * precision * recall / (precision + recall) if precision + recall > 0 else 0.0
    leaky, leaky_threshold = paper_f1_leaky(values, truth)
    return Evaluation(
        roc_auc=roc_auc(values, truth),
        pr_auc=average_precision(values, truth),
        precision=float(precision),
        recall=float(recall),
        f1=float(f1),
        threshold=threshold,
        threshold_rule=threshold_rule,
        n_selected=int(selected.sum()),
        n_ground_truth=int(truth.sum()),
        n_heads=int(values.size),
        paper_f1_leaky=leaky,
        paper_f1_leaky_threshold=leaky_threshold,
    )
