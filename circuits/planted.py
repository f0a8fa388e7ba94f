"""Planted signals: real head activations with a known positive/negative difference.

A representation-based method can only find heads whose outputs differ between positives
and negatives. To test that it finds them when they do, take real captured activations,
draw random labels (so the real task leaves no trace), and add to the positives of chosen
heads a shift of a chosen size along a random direction, measured in that head's own
standard deviation along the direction (Cohen's d). The planted heads are then the ground
truth.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import torch

__all__ = ["PlantedSignal", "plant_shift"]


@dataclass(frozen=True)
class PlantedSignal:
    """Activations with a planted shift, their labels and the planted heads."""

    acts_PHD: torch.Tensor
    """The activations, positives shifted in the planted heads."""
    is_positive_P: torch.Tensor
    """Random labels, half positive."""
    truth_H: torch.Tensor
    """True at the planted heads."""


def plant_shift(
    acts_PHD: torch.Tensor, heads: Sequence[int], shift: float, seed: int = 0
) -> PlantedSignal:
    """Shift the positives of `heads` by `shift` standard deviations along random directions."""
    n_prompts, n_heads, d_model = acts_PHD.shape
    if not heads or not all(0 <= h < n_heads for h in heads):
        raise ValueError(f"heads={list(heads)}: give indices in 0..{n_heads - 1}.")
    if n_prompts < 4:
        raise ValueError(f"{n_prompts} prompts; plant into at least 4.")
    generator = torch.Generator().manual_seed(seed)
    is_positive_P = torch.zeros(n_prompts, dtype=torch.bool)
    is_positive_P[torch.randperm(n_prompts, generator=generator)[: n_prompts // 2]] = True
    acts = acts_PHD.float().clone()
    truth_H = torch.zeros(n_heads, dtype=torch.bool)
    for head in heads:
        direction_D = torch.randn(d_model, generator=generator)
        direction_D /= direction_D.norm()
        along_P = acts[:, head] @ direction_D
        acts[is_positive_P, head] += shift * along_P.std() * direction_D
        truth_H[head] = True
    return PlantedSignal(acts, is_positive_P, truth_H)
