"""What replaces a head's ``z`` when it is ablated: one ablation type for every method.

- ``counterfactual``: the ``z`` of the clean prompt's own paired corrupted prompt (ACDC's,
  MIB's and activation patching's corruption: positions line up, only the task-relevant
  tokens differ),
- ``mean``: the mean ``z`` over the corrupted prompts, per position,
- ``resample``: the ``z`` of a corrupted prompt of the same length drawn at random.

The mean ``z`` itself is computed by ``interp.capture.mean_z``.
"""

from __future__ import annotations

from typing import Literal

__all__ = ["ABLATIONS", "PATCHING_ABLATIONS", "Ablation", "PatchingAblation", "check_ablation"]

Ablation = Literal["counterfactual", "mean", "resample"]
ABLATIONS: tuple[str, ...] = ("counterfactual", "mean", "resample")

PatchingAblation = Literal["counterfactual", "mean"]
"""What a patching method's reference z can be (one z per clean prompt and position)."""
PATCHING_ABLATIONS: tuple[str, ...] = ("counterfactual", "mean")


def check_ablation(ablation: str, allowed: tuple[str, ...] = ABLATIONS) -> None:
    """Raise unless ``ablation`` is one of ``allowed``."""
    if ablation not in allowed:
        raise ValueError(f"ablation={ablation!r}; use one of {', '.join(allowed)}.")
