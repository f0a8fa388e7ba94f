"""``ScoreResult``: what every scoring method returns, and the frames it is built from."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

import numpy as np
import pandas as pd
import torch

from circuits.scoring import head_table, rank_scores
from interp.heads import head_labels

__all__ = ["ScoreResult", "head_frame", "head_pair_frame", "head_result"]


@dataclass
class ScoreResult:
    """Per-head scores of one method on one task, with timings and the resolved config."""

    method: str
    """Registered method name."""
    node: pd.DataFrame
    """One row per head: layer, head, label, score, rank (1 = most circuit-like), extras
    (e.g. a signed `effect` for the patching methods)."""
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
    """Method-specific diagnostics, JSON-ready (e.g. SAE code statistics, the method's own
    config under `method_config`)."""
    graph_edges: pd.DataFrame | None = None
    """Edge methods (eap, acdc): every graph edge, upstream and downstream labelled `embed`,
    `L{l}H{h}`, `MLP{l}` or `logits`, with score, rank and, where defined, a signed effect."""


def head_frame(
    scores_H: torch.Tensor | np.ndarray, n_heads: int, effects_H: torch.Tensor | None = None
) -> pd.DataFrame:
    """One row per head: layer, head, label, score, rank (1 = best), signed effect if given."""
    scores = torch.as_tensor(scores_H).detach().cpu().double().numpy()
    frame = head_table(scores.size // n_heads, n_heads)
    frame["score"] = scores
    frame["rank"] = rank_scores(frame["score"])
    if effects_H is not None:
        frame["effect"] = effects_H.detach().cpu().double().numpy()
    return frame


def head_pair_frame(graph_edges: pd.DataFrame, n_layers: int, n_heads: int) -> pd.DataFrame:
    """The head-to-head graph edges as `head1 < head2` rows (label1, label2, score, rank)."""
    position = {label: i for i, label in enumerate(head_labels(n_layers, n_heads))}
    pairs = graph_edges[
        graph_edges["upstream"].isin(position) & graph_edges["downstream"].isin(position)
    ]
    frame = pd.DataFrame(
        {
            "head1": pairs["upstream"].map(position).to_numpy(),
            "head2": pairs["downstream"].map(position).to_numpy(),
            "label1": pairs["upstream"].to_numpy(),
            "label2": pairs["downstream"].to_numpy(),
            "score": pairs["score"].to_numpy(dtype=np.float64),
        }
    )
    frame["rank"] = rank_scores(frame["score"])
    return frame


def head_result(
    method: str,
    scores_H: torch.Tensor,
    n_heads: int,
    seconds: dict[str, float],
    *,
    effects_H: torch.Tensor | None = None,
    graph_edges: pd.DataFrame | None = None,
    extra: dict[str, Any] | None = None,
) -> ScoreResult:
    """A result from one score per head (layer-major) and, for edge methods, graph edges."""
    n_layers = scores_H.numel() // n_heads
    return ScoreResult(
        method=method,
        node=head_frame(scores_H, n_heads, effects_H),
        edges=None if graph_edges is None else head_pair_frame(graph_edges, n_layers, n_heads),
        graph_edges=graph_edges,
        seconds=seconds,
        extra=dict(extra or {}),
    )
