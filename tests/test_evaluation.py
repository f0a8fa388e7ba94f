"""Evaluation metrics against scikit-learn (a dev-only reference), ties included."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from hypothesis.extra.numpy import arrays
from sklearn import metrics

from circuits.evaluation import (
    average_precision,
    choose_threshold,
    evaluate,
    ground_truth_mask,
    paper_f1_leaky,
    roc_auc,
    roc_curve,
)

scores_and_labels = st.integers(2, 40).flatmap(
    lambda n: st.tuples(
        # Few distinct values so ties are common.
        arrays(np.float64, (n,), elements=st.integers(0, 4).map(float)),
        arrays(np.bool_, (n,)).filter(lambda y: y.any() and not y.all()),
    )
)


@settings(max_examples=200, deadline=None)
@given(scores_and_labels)
def test_roc_auc_and_average_precision_match_sklearn(data) -> None:
    scores, labels = data
    assert roc_auc(scores, labels) == pytest.approx(metrics.roc_auc_score(labels, scores))
    assert average_precision(scores, labels) == pytest.approx(
        metrics.average_precision_score(labels, scores)
    )


@settings(max_examples=100, deadline=None)
@given(scores_and_labels)
def test_roc_curve_matches_sklearn_without_dropping(data) -> None:
    scores, labels = data
    fpr, tpr, _ = roc_curve(scores, labels)
    ref_fpr, ref_tpr, _ = metrics.roc_curve(labels, scores, drop_intermediate=False)
    np.testing.assert_allclose(fpr, ref_fpr)
    np.testing.assert_allclose(tpr, ref_tpr)


def test_all_tied_scores_give_half_auc() -> None:
    labels = np.array([1, 0, 0, 1, 0], dtype=bool)
    assert roc_auc(np.ones(5), labels) == 0.5
    assert average_precision(np.ones(5), labels) == pytest.approx(0.4)


def test_paper_f1_leaky_is_best_harmonic_mean_of_tpr_and_specificity() -> None:
    scores = np.array([0.9, 0.8, 0.7, 0.3, 0.1])
    labels = np.array([True, False, True, False, False])
    fpr, tpr, _ = metrics.roc_curve(labels, scores, drop_intermediate=False)
    reference = np.nanmax(2 * tpr * (1 - fpr) / (tpr + 1 - fpr))
    value, threshold = paper_f1_leaky(scores, labels)
    assert value == pytest.approx(reference)
    assert threshold == pytest.approx(0.7)


def test_otsu_splits_two_clusters() -> None:
    scores = np.array([0, 1, 0, 1, 9, 10, 11, 0])
    assert choose_threshold(scores, "otsu") == 9
    assert choose_threshold(scores, "largest_gap") == 9
    assert choose_threshold(np.ones(3), "otsu") is None
    with pytest.raises(ValueError, match="threshold rule"):
        choose_threshold(scores, "median")  # type: ignore[arg-type]


def test_evaluate_reports_threshold_rule_and_counts() -> None:
    frame = pd.DataFrame(
        {"layer": [0, 0, 1, 1], "head": [0, 1, 0, 1], "score": [10.0, 0.0, 9.0, 1.0]}
    )
    result = evaluate(frame, ["L0H0", "L1H1"])
    assert result.threshold_rule == "otsu"
    assert result.threshold == 9.0
    assert result.n_selected == 2
    assert result.precision == 0.5
    assert result.recall == 0.5
    assert result.f1 == 0.5
    assert result.roc_auc == pytest.approx(metrics.roc_auc_score([1, 0, 0, 1], frame["score"]))
    assert set(result.as_dict()) >= {"roc_auc", "pr_auc", "precision", "paper_f1_leaky"}
    assert evaluate(frame, [(0, 0), (1, 1)]) == result
    assert evaluate(frame, np.array([True, False, False, True])) == result


def test_flat_scores_select_nothing() -> None:
    result = evaluate(np.zeros(4), np.array([True, False, False, False]))
    assert result.threshold is None
    assert result.n_selected == 0
    assert result.precision == result.recall == result.f1 == 0.0


@pytest.mark.parametrize(
    ("truth", "match"),
    [
        (["L5H0"], "outside"),
        ([(0, 7)], "head index"),
        (["head9"], "label"),
        ([1.5], "neither"),
        (np.ones(3, dtype=bool), "shape"),
    ],
)
def test_bad_ground_truth_names_the_input(truth: object, match: str) -> None:
    with pytest.raises(ValueError, match=match):
        ground_truth_mask(truth, n_heads=4, n_heads_per_layer=2)


def test_ground_truth_must_split_heads() -> None:
    with pytest.raises(ValueError, match="at least one head"):
        evaluate(np.arange(3.0), [0, 1, 2])
