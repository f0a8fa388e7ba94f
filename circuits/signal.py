"""Signal pre-check: do a head's outputs differ between positives and negatives at all?

Representation-based methods (`sae`, `sae-calibrated`) compare what heads write on
positives and negatives; a head whose outputs have the same distribution on both cannot be
found that way, however causal it is. Per head, the statistic is the distance between the
positive and the negative mean output, `||mean_pos - mean_neg||`, and its p-value comes from
a permutation test (labels shuffled, +1 correction). Run on the captured outputs the methods
use (mean-pooled by default; capture with `--positions last` for the answer position).
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import torch

from circuits.calibration import contrast_weights, permutation_z

__all__ = ["SignalCheck", "signal_check"]


@dataclass(frozen=True)
class SignalCheck:
    """Per-head permutation test of a positive/negative difference in outputs."""

    distance_H: np.ndarray
    """||mean over positives - mean over negatives|| of each head's output."""
    z_H: np.ndarray
    """The distance's z-score against shuffled labels."""
    p_H: np.ndarray
    """Permutation p-value (one-sided, +1 correction)."""
    alpha: float
    """Significance level used by `n_different`."""

    @property
    def different_H(self) -> np.ndarray:
        """Heads whose outputs differ at `alpha`."""
        return self.p_H <= self.alpha

    def summary(self, truth_H: np.ndarray | None = None) -> str:
        """One line: how many heads differ, and how many of the ground-truth heads."""
        line = (
            f"signal pre-check: {int(self.different_H.sum())} of {len(self.p_H)} heads "
            f"differ between positives and negatives (permutation test, p <= {self.alpha})"
        )
        if truth_H is not None:
            truth_H = np.asarray(truth_H, dtype=bool)
            line += (
                f"; {int(self.different_H[truth_H].sum())} of {int(truth_H.sum())} circuit heads"
            )
        return line

    def as_dict(self) -> dict[str, object]:
        """JSON-ready."""
        return {
            "alpha": self.alpha,
            "n_different": int(self.different_H.sum()),
            "distance": self.distance_H.tolist(),
            "z": self.z_H.tolist(),
            "p_value": self.p_H.tolist(),
        }


def signal_check(
    acts_PHD: torch.Tensor,
    is_positive_P: torch.Tensor,
    *,
    n_permutations: int = 200,
    alpha: float = 0.01,
    seed: int = 0,
) -> SignalCheck:
    """Permutation test per head of the distance between positive and negative means."""
    # Centred per head, so a constant head is exactly zero (no rounding noise to "detect").
    acts = acts_PHD.float() - acts_PHD.float().mean(dim=0, keepdim=True)

    def distances(labels_BP: np.ndarray) -> np.ndarray:
        labels = torch.as_tensor(labels_BP, dtype=torch.float32, device=acts.device)
        weights_BP = contrast_weights(labels)
        out = []
        for start in range(0, len(weights_BP), 16):  # bounds the [B, H, D] temporary
            shift_BHD = torch.einsum("bp,phd->bhd", weights_BP[start : start + 16], acts)
            out.append(shift_BHD.norm(dim=-1).double().cpu())
        return torch.cat(out).numpy()

    distance_H, z_H, p_H = permutation_z(
        distances, is_positive_P.cpu(), n_permutations=n_permutations, seed=seed
    )
    return SignalCheck(distance_H, z_H, p_H, alpha)
