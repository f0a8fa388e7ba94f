"""Code statistics calibrated against shuffled labels.

The paper's node score (codes seen on positives and never on negatives) grows with the
number of distinct codes a head uses whatever the labels: under randomly shuffled labels
its expectation is

    E0_h = sum over the head's codes c of C(n_pos, m_c) / C(n, m_c),

with `m_c` the prompts on which head h takes code c (the chance that all of them are
positives). `expected_exclusive_codes` computes E0; a score's excess over chance is the
score minus E0.

`code_shift` measures how far a head's codes move between positives and negatives: the
distance between the mean code direction (the SAE decoder row of each prompt's code) on
positives and on negatives. `mutual_information` measures how much a head's code tells
about the label. `permutation_z` turns either into a z-score against shuffled labels (in
null standard deviations), comparable across heads with few and many codes.
"""

from __future__ import annotations

import math
from collections.abc import Callable

import numpy as np
import torch

__all__ = [
    "code_shift",
    "contrast_weights",
    "expected_exclusive_codes",
    "mutual_information",
    "permutation_z",
]


def _numpy(values: torch.Tensor | np.ndarray) -> np.ndarray:
    return values.detach().cpu().numpy() if isinstance(values, torch.Tensor) else np.asarray(values)


def _codes_and_labels(
    codes_PH: torch.Tensor | np.ndarray, is_positive_P: torch.Tensor | np.ndarray
) -> tuple[np.ndarray, np.ndarray]:
    codes = _numpy(codes_PH)
    labels = _numpy(is_positive_P).astype(bool)
    if codes.ndim != 2 or labels.shape != (codes.shape[0],):
        raise ValueError(
            f"codes {codes.shape} and labels {labels.shape} must be [n_prompts, n_heads] and "
            "[n_prompts]."
        )
    if labels.all() or not labels.any():
        raise ValueError("labels must mark at least one positive and one negative prompt.")
    return codes.astype(np.int64), labels


def _code_counts(codes_PH: np.ndarray) -> np.ndarray:
    """`[n_heads, n_codes]`: prompts on which each head takes each code."""
    n_heads = codes_PH.shape[1]
    n_codes = int(codes_PH.max()) + 1
    keys = np.arange(n_heads)[None, :] * n_codes + codes_PH
    return np.bincount(keys.ravel(), minlength=n_heads * n_codes).reshape(n_heads, n_codes)


def expected_exclusive_codes(
    codes_PH: torch.Tensor | np.ndarray, is_positive_P: torch.Tensor | np.ndarray
) -> np.ndarray:
    """E0 per head: the expected number of positive-only codes under shuffled labels."""
    codes, labels = _codes_and_labels(codes_PH, is_positive_P)
    n, n_pos = len(labels), int(labels.sum())
    m_HC = _code_counts(codes).astype(np.float64)
    used = m_HC > 0
    possible = used & (m_HC <= n_pos)
    m = np.where(possible, m_HC, 0.0)
    # log C(n_pos, m) - log C(n, m) = log n_pos! - log (n_pos - m)! - log n! + log (n - m)!
    m_t = torch.from_numpy(m)
    log_ratio = (
        math.lgamma(n_pos + 1)
        - torch.lgamma(n_pos - m_t + 1)
        - math.lgamma(n + 1)
        + torch.lgamma(n - m_t + 1)
    ).numpy()
    return np.where(possible, np.exp(log_ratio), 0.0).sum(axis=1)


def mutual_information(
    codes_PH: torch.Tensor | np.ndarray, is_positive_B_P: torch.Tensor | np.ndarray
) -> np.ndarray:
    """I(code; label) per head in nats, `[n_heads]`, or `[B, n_heads]` for `[B, n]` labels."""
    codes = _numpy(codes_PH)
    labels = _numpy(is_positive_B_P).astype(np.int64)
    single = labels.ndim == 1
    labels_BP = labels[None] if single else labels
    n_prompts, n_heads = codes.shape
    n_codes = int(codes.max()) + 1
    base = (np.arange(n_heads)[None, :] * n_codes + codes) * 2  # [P, H]
    m_HC = _code_counts(codes).astype(np.float64)
    p_c = m_HC / n_prompts
    out = np.empty((len(labels_BP), n_heads))
    for b, row in enumerate(labels_BP):
        joint = (
            np.bincount((base + row[:, None]).ravel(), minlength=n_heads * n_codes * 2).reshape(
                n_heads, n_codes, 2
            )
            / n_prompts
        )
        p_y = np.array([1 - row.mean(), row.mean()])
        expected = p_c[:, :, None] * p_y[None, None, :]
        with np.errstate(divide="ignore", invalid="ignore"):
            terms = np.where(joint > 0, joint * np.log(joint / expected), 0.0)
        out[b] = terms.sum(axis=(1, 2))
    return out[0] if single else out


def contrast_weights(labels_BP: torch.Tensor) -> torch.Tensor:
    """Per label row, weights whose dot product with per-prompt values is the mean over
    positives minus the mean over negatives: `1/n_pos` on positives, `-1/n_neg` on negatives."""
    labels = labels_BP.float()
    n_pos = labels.sum(dim=1, keepdim=True)
    return labels / n_pos - (1 - labels) / (labels.shape[1] - n_pos)


def code_shift(
    codes_PH: torch.Tensor | np.ndarray,
    directions_CD: torch.Tensor,
    is_positive_B_P: torch.Tensor | np.ndarray,
    scale_HD: torch.Tensor | None = None,
) -> np.ndarray:
    """||mean over positives - mean over negatives|| of the prompts' code directions per head,
    `[n_heads]`, or `[B, n_heads]` for `[B, n]` label rows.

    `codes_PH` is `[P, H]` (one code per prompt and head) or `[P, H, k]` (k codes each, a
    prompt's direction then being the mean of its codes' directions); `scale_HD` multiplies
    each head's shift coordinate-wise before the norm (e.g. back to the head's own units).
    """
    codes = torch.as_tensor(_numpy(codes_PH)).long()
    codes_PHK = codes[..., None] if codes.ndim == 2 else codes
    labels = torch.as_tensor(_numpy(is_positive_B_P)).float()
    single = labels.ndim == 1
    labels_BP = labels[None] if single else labels
    n_prompts, n_heads, k = codes_PHK.shape
    directions_CD = directions_CD.detach().float().cpu()
    n_codes = directions_CD.shape[0]
    # Each prompt's share of every (head, code): 1/k per code it shows at that head.
    keys_PX = (torch.arange(n_heads)[None, :, None] * n_codes + codes_PHK).reshape(n_prompts, -1)
    share_PX = torch.zeros(n_prompts, n_heads * n_codes)
    share_PX.scatter_add_(1, keys_PX, torch.full(keys_PX.shape, 1.0 / k))
    # Label-weighted shares per (head, code), then the codes embedded: [B, H, C] @ [C, D].
    weight_BHC = (contrast_weights(labels_BP) @ share_PX).view(len(labels_BP), n_heads, n_codes)
    shift_BHD = weight_BHC @ directions_CD
    if scale_HD is not None:
        shift_BHD = shift_BHD * scale_HD.detach().float().cpu()[None]
    out = shift_BHD.norm(dim=-1).double().numpy()
    return out[0] if single else out


def permutation_z(
    statistic: Callable[[np.ndarray], np.ndarray],
    is_positive_P: torch.Tensor | np.ndarray,
    *,
    n_permutations: int = 200,
    seed: int = 0,
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Per head: the statistic, its z-score against `n_permutations` shuffled labels
    ((observed - null mean) / null std; 0 where the null does not vary), and its
    permutation p-value with the +1 correction.

    `statistic` maps labels `[B, n_prompts]` to values `[B, n_heads]`.
    """
    if n_permutations < 2:
        raise ValueError(f"n_permutations={n_permutations}; use at least 2 shuffles.")
    labels = _numpy(is_positive_P).astype(bool)
    if labels.ndim != 1 or labels.all() or not labels.any():
        raise ValueError("labels must be [n_prompts] with at least one positive and negative.")
    rng = np.random.default_rng(seed)
    shuffled = np.stack([rng.permutation(labels) for _ in range(n_permutations)])
    observed_H = statistic(labels[None])[0]
    null_BH = statistic(shuffled)
    spread_H = null_BH.std(axis=0)
    safe = np.maximum(spread_H, np.finfo(np.float64).tiny)
    z_H = np.where(spread_H > 0, (observed_H - null_BH.mean(axis=0)) / safe, 0.0)
    p_H = ((null_BH >= observed_H[None] - 1e-12).sum(axis=0) + 1) / (n_permutations + 1)
    return observed_H, z_H, p_H
