"""Control rankings: what a method must beat to be informative.

- `random`: heads in a random order (seeded per trial); its expected ROC AUC is 0.5.
- `norm`: each head's mean output norm over the scored prompts (positives and negatives),
  no labels, no task metric. Circuit heads of real models tend to write large outputs, so a
  method earns credit only above this label-free ranking (on SmolLM2 it reaches 0.66-0.89
  against causal references, docs/evaluation.md).

Both are registered scoring methods, so they appear in every comparison beside the others.
"""

from __future__ import annotations

import time

import torch

from circuits.methods.context import MethodContext
from circuits.methods.registry import register
from circuits.methods.result import ScoreResult, head_result

__all__ = ["norm_control", "random_control"]


@register("random")
def random_control(context: MethodContext, seed: int) -> ScoreResult:
    """Uniformly random head scores from `seed` (the chance level of every metric)."""
    start = time.perf_counter()
    n_heads = context.model.n_layers * context.model.n_heads
    generator = torch.Generator().manual_seed(seed)
    scores_H = torch.rand(n_heads, generator=generator, dtype=torch.float64)
    seconds = {"random": time.perf_counter() - start}
    return head_result("random", scores_H, context.model.n_heads, seconds)


@register("norm", deterministic=True)
def norm_control(context: MethodContext, seed: int) -> ScoreResult:
    """Each head's mean output norm ||z_h W_O[h]|| over the scored prompts (label-free)."""
    acts_PHD, _ = context.head_acts()
    start = time.perf_counter()
    scores_H = acts_PHD.float().norm(dim=-1).mean(dim=0).double().cpu()
    seconds = {"norm": time.perf_counter() - start}
    return head_result("norm", scores_H, context.model.n_heads, seconds)
