"""Figures of head scores: ROC curves and faithfulness curves per method, and layer x head
score heatmaps.

Figures are built as ``matplotlib.figure.Figure`` objects, which render with the Agg canvas
when saved, so no pyplot backend (global state) is touched: safe on headless machines and
in notebooks alike. Callers save them.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence

import matplotlib as mpl
import numpy as np
from matplotlib.figure import Figure
from matplotlib.patches import Rectangle
from matplotlib.ticker import MaxNLocator

from circuits.evaluation import roc_auc, roc_curve

__all__ = ["faithfulness_figure", "heads_figure", "roc_figure"]

_LINE_STYLES = ("-", "--", "-.", ":")


def roc_figure(
    trial_scores: Mapping[str, Sequence[np.ndarray]],
    truth_H: np.ndarray,
    *,
    title: str = "",
) -> Figure:
    """ROC curves per named score set, one line per trial, AUC mean +- std in the legend.

    Each set has its own colour, line style and width (the first widest), so identical
    curves (a method's node and edge-derived scores often are) stay visible on top of each
    other.
    """
    fig = Figure(figsize=(5.5, 5))
    ax = fig.subplots()
    colours = mpl.rcParams["axes.prop_cycle"].by_key()["color"]
    n_sets = len(trial_scores)
    for i, (name, trials) in enumerate(trial_scores.items()):
        style = {
            "color": colours[i % len(colours)],
            "linestyle": _LINE_STYLES[i % len(_LINE_STYLES)],
            "linewidth": 1.2 + 2.0 * (n_sets - 1 - i) / max(n_sets - 1, 1),
            "alpha": 0.85 if len(trials) == 1 else 0.5,
        }
        aucs = [roc_auc(scores, truth_H) for scores in trials]
        for t, scores in enumerate(trials):
            fpr, tpr, _ = roc_curve(scores, truth_H)
            label = _legend(name, "AUC", aucs) if t == 0 else None
            ax.plot(fpr, tpr, label=label, **style)
    ax.plot([0, 1], [0, 1], color="grey", linestyle=":", linewidth=1, label="chance")
    ax.set_xlabel("false positive rate")
    ax.set_ylabel("true positive rate")
    ax.set_xlim(0, 1)
    ax.set_ylim(0, 1.01)
    ax.set_title(title)
    ax.legend(loc="lower right", fontsize="small")
    fig.tight_layout()
    return fig


def _legend(name: str, what: str, values: Sequence[float]) -> str:
    """`name (AUC 0.877)` for one trial, `name (AUC 0.877 ± 0.012, n=10)` for several."""
    if len(values) == 1:
        return f"{name} ({what} {values[0]:.3f})"
    return f"{name} ({what} {np.mean(values):.3f} ± {np.std(values):.3f}, n={len(values)})"


def faithfulness_figure(
    curves: Mapping[str, Sequence[Mapping[str, Sequence[float]]]], *, title: str = ""
) -> Figure:
    """Normalised metric f(k) against circuit size (fraction of heads kept, log axis), one
    line per method and trial, CPR in the legend; f = 1 is the full model, 0 the empty one."""
    fig = Figure(figsize=(6.5, 4.5))
    ax = fig.subplots()
    colours = mpl.rcParams["axes.prop_cycle"].by_key()["color"]
    for i, (name, trials) in enumerate(curves.items()):
        colour = colours[i % len(colours)]
        cprs = [curve["cpr"] for curve in trials]
        for t, curve in enumerate(trials):
            ax.plot(
                curve["fractions"],
                curve["faithfulness"],
                marker="o",
                markersize=3,
                color=colour,
                alpha=0.8 if len(trials) == 1 else 0.4,
                label=_legend(name, "CPR", cprs) if t == 0 else None,
            )
    ax.axhline(1.0, color="grey", linestyle=":", linewidth=1)
    ax.axhline(0.0, color="grey", linestyle=":", linewidth=1)
    ax.set_xscale("log")
    ax.set_xlabel("fraction of heads kept (top-k of the ranking; the rest ablated)")
    ax.set_ylabel("normalised metric f(k)")
    ax.set_title(title)
    ax.legend(loc="best", fontsize="small")
    fig.tight_layout()
    return fig


def heads_figure(
    scores: Mapping[str, np.ndarray],
    n_layers: int,
    n_heads: int,
    *,
    truth_H: np.ndarray | None = None,
    title: str = "",
) -> Figure:
    """One layer x head heatmap per named score vector; ground-truth heads boxed.

    Each panel has its own colour scale (methods score in different units), labelled on its
    colour bar; integer-valued scores (code counts) get integer ticks.
    """
    panels = list(scores.items())
    width = max(3.0, 0.35 * n_heads + 1.5)
    height = max(2.5, 0.3 * n_layers + 1.2)
    fig = Figure(figsize=(width * len(panels), height))
    axes = fig.subplots(1, len(panels), squeeze=False)
    for ax, (name, values) in zip(axes[0], panels, strict=True):
        grid = np.asarray(values, dtype=np.float64).reshape(n_layers, n_heads)
        image = ax.imshow(grid, cmap="viridis", aspect="auto", origin="upper")
        bar = fig.colorbar(image, ax=ax, fraction=0.046, pad=0.04)
        bar.set_label(f"score ({name})", fontsize="x-small")
        bar.ax.tick_params(labelsize="x-small")
        if np.array_equal(grid, np.round(grid)):
            bar.locator = MaxNLocator(integer=True)
            bar.update_ticks()
        if truth_H is not None:
            layers, heads = np.nonzero(np.asarray(truth_H, dtype=bool).reshape(n_layers, n_heads))
            for layer, head in zip(layers, heads, strict=True):
                ax.add_patch(
                    Rectangle(
                        (head - 0.5, layer - 0.5), 1, 1, fill=False, edgecolor="red", linewidth=1.5
                    )
                )
        ax.set_xlabel("head")
        ax.set_ylabel("layer")
        ax.set_xticks(range(n_heads))
        ax.set_yticks(range(n_layers))
        ax.tick_params(labelsize="x-small")
        ax.set_title(name, fontsize="small")
    caption = f"{title}; each panel on its own scale"
    caption += " (red boxes: ground truth)" if truth_H is not None else ""
    fig.suptitle(caption, fontsize="medium")
    fig.tight_layout()
    return fig
