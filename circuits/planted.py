"""Planted signals: real head activations with a known positive/negative difference.

A representation-based method can only find heads whose outputs differ between positives
and negatives. To test that it finds them when they do, take real captured activations,
draw random labels (so the real task leaves no trace), and add to the positives of chosen
heads a shift of a chosen size along a random direction, measured in that head's own
standard deviation along the direction (Cohen's d). The planted heads are then the ground
truth.

The direction is drawn uniformly among the directions the head's outputs span (the head's
`z @ W_O` lives in the row space of its `W_O`, at most `d_head` of `d_model` dimensions): a
shift outside that span is a change no head can make, and one that any test sees at once,
since the head never varies there.
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
    n_prompts, n_heads, _ = acts_PHD.shape
    if not heads or not all(0 <= h < n_heads for h in heads):
        raise ValueError(f"heads={list(heads)}: give indices in 0..{n_heads - 1}.")
    if n_prompts < 4:
        raise ValueError(f"{n_prompts} prompts; plant into at least 4.")
    if any(float(acts_PHD[:, head].float().std(dim=0).amax()) == 0 for head in heads):
        raise ValueError(f"heads={list(heads)}: a planted head must vary across prompts.")
    generator = torch.Generator().manual_seed(seed)
    is_positive_P = torch.zeros(n_prompts, dtype=torch.bool)
    is_positive_P[torch.randperm(n_prompts, generator=generator)[: n_prompts // 2]] = True
    acts = acts_PHD.float().clone()
    truth_H = torch.zeros(n_heads, dtype=torch.bool)
    for head in heads:
        direction_D = _random_direction_in_span(acts[:, head], generator)
        along_P = acts[:, head] @ direction_D
        acts[is_positive_P, head] += shift * along_P.std() * direction_D
        truth_H[head] = True
    return PlantedSignal(acts, is_positive_P, truth_H)


def _random_direction_in_span(acts_PD: torch.Tensor, generator: torch.Generator) -> torch.Tensor:
    """A unit vector drawn uniformly from the span of a head's centred outputs."""
    centred_PD = acts_PD - acts_PD.mean(dim=0, keepdim=True)
    _, singular_K, basis_KD = torch.linalg.svd(centred_PD, full_matrices=False)
    basis_KD = basis_KD[singular_K > singular_K[0] * 1e-4]
    direction_D = torch.randn(len(basis_KD), generator=generator) @ basis_KD
    return direction_D / direction_D.norm()
