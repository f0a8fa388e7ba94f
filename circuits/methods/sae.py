"""`sae`: O'Neill & Bui (2024), the paper's method.

One discrete SAE is trained on every head's output (mean over positions) on the positives
and negatives; each (prompt, head) becomes the integer code of its argmax latent; a head's
score is the number of its codes seen on positives and never on negatives (normalised by
the codes it uses, optionally). The edge variant counts code pairs of two heads the same
way and ranks heads by the top-scoring pairs. The node frame also carries the count's
chance level E0 (labels shuffled) and the excess over it (see docs/calibrated.md).
"""

from __future__ import annotations

from dataclasses import replace

import torch

from circuits.calibration import expected_exclusive_codes
from circuits.methods.context import MethodContext
from circuits.methods.registry import register
from circuits.methods.result import ScoreResult
from circuits.scoring import edge_scores, heads_from_edges, node_scores
from circuits.timing import timed
from saes import DiscreteSAE, SAETrainingConfig, codes_with_stats, train_discrete_sae

__all__ = ["fit_sae", "sae"]


def fit_sae(
    acts_PHD: torch.Tensor, config: SAETrainingConfig, seed: int, progress: bool
) -> DiscreteSAE:
    """The shared discrete SAE of a method; a task with fewer scored prompts than
    ``n_train_prompts`` (a small user task) trains on all of them."""
    if config.n_train_prompts is not None and config.n_train_prompts > len(acts_PHD):
        config = replace(config, n_train_prompts=None)
    return train_discrete_sae(acts_PHD, config, seed, progress=progress)


@register("sae")
def sae(context: MethodContext, seed: int) -> ScoreResult:
    """O'Neill & Bui 2024: one discrete SAE over all heads, codes, exclusive-code counts."""
    acts_PHD, is_positive_P = context.head_acts()
    config = context.config
    n_heads = context.model.n_heads
    device = acts_PHD.device
    seconds: dict[str, float] = {}
    with timed(seconds, "sae", device):
        trained = fit_sae(acts_PHD, config.sae, seed, context.progress)
    with timed(seconds, "codes", device):
        codes_PH, stats = codes_with_stats(trained, acts_PHD, dead_rows=config.scoring.dead_rows)
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
    extra = stats.to_dict()
    extra.pop("code_counts")
    return ScoreResult(
        method="sae", node=node, edges=edges, edge_node=edge_node, seconds=seconds, extra=extra
    )
