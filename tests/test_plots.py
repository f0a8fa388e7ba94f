"""Figures that do not mislead: visible overlapping curves, labelled and integer colour scales."""

from __future__ import annotations

import numpy as np

from circuits.plots import heads_figure, roc_figure

TRUTH_H = np.array([True, False, True, False, False, False])


def test_identical_roc_curves_stay_distinguishable() -> None:
    scores = np.array([5.0, 1.0, 3.0, 2.0, 0.0, 4.0])
    fig = roc_figure({"sae": [scores], "sae (heads from top pairs)": [scores.copy()]}, TRUTH_H)
    first, second = fig.axes[0].lines[:2]
    assert np.array_equal(first.get_xydata(), second.get_xydata())  # the same curve twice
    assert first.get_linestyle() != second.get_linestyle()
    assert first.get_linewidth() > second.get_linewidth()  # the one below is wider
    labels = [text.get_text() for text in fig.axes[0].get_legend().get_texts()]
    assert labels[:2] == ["sae (AUC 0.875)", "sae (heads from top pairs) (AUC 0.875)"]


def test_heads_panels_have_labelled_scales_and_integer_ticks_for_counts() -> None:
    counts = np.array([0.0, 3.0, 1.0, 2.0, 0.0, 1.0])
    shifts = np.array([0.1, 0.25, 0.05, 0.3, 0.0, 0.12])
    fig = heads_figure({"sae": counts, "norm": shifts}, 2, 3, truth_H=TRUTH_H, title="t")
    bars = [ax for ax in fig.axes if ax.get_ylabel().startswith("score")]
    assert [bar.get_ylabel() for bar in bars] == ["score (sae)", "score (norm)"]
    count_ticks = bars[0].get_yticks()
    assert np.array_equal(count_ticks, np.round(count_ticks))
    assert not np.array_equal(bars[1].get_yticks(), np.round(bars[1].get_yticks()))
    assert "each panel on its own scale" in fig._suptitle.get_text()
