"""Node and edge scores from discrete SAE codes, counted sparsely.

A head's node score is the number of codes it takes on some positive prompt and on no
negative prompt; a head pair's edge score is the number of code pairs ``(c1, c2)`` that
co-occur on some positive prompt and on no negative prompt (O'Neill & Bui 2024).

Counting scheme: every row (a head, or an unordered head pair ``h1 < h2``) gets one key per
prompt (the code, or ``c1 * n_codes + c2``) with the prompt's label in the lowest bit.
Sorting each row groups equal keys with positives first, so a key seen only on positives
is a group whose last element has label bit 0, and a key seen only on negatives is a group
whose first element has label bit 1. Memory is ``O(rows_in_chunk * n_prompts)`` instead of
the dense ``n_heads^2 * n_codes^2`` co-occurrence tensors of the seed code, and rows are
sorted in chunks so GPT-2-XL shapes (1200 heads, 719,400 pairs) stay within a few hundred MB.
Edge scores are symmetric (transposing a code pair maps positives of ``(h1, h2)`` onto
those of ``(h2, h1)``), so only unordered pairs are counted.

Codes on a CUDA device are counted there with ``torch.sort`` (segmented row sorts, 20-50x
faster than numpy's on a CPU core at GPT-2-XL shapes); anything else is counted with numpy,
whose vectorised int32 row sort is about 25x faster than ``torch.sort`` on a CPU. Both run
the same counting code (`_exclusive_counts`), only the sort differs.
"""

from __future__ import annotations

from typing import Any

import numpy as np
import pandas as pd
import torch
from tqdm.auto import tqdm

from circuits.config import DEFAULT_CHUNK_KEYS
from interp.heads import head_labels

__all__ = [
    "default_top_pairs",
    "edge_scores",
    "head_table",
    "heads_from_edges",
    "node_scores",
    "rank_scores",
]


def _as_codes(codes_PH: torch.Tensor | np.ndarray) -> np.ndarray | torch.Tensor:
    """int64 codes: a CUDA tensor stays on its device (counted there), anything else numpy."""
    if isinstance(codes_PH, torch.Tensor) and codes_PH.device.type == "cuda":
        codes = codes_PH.detach()
        integer = not (codes.is_floating_point() or codes.is_complex() or codes.dtype == torch.bool)
    else:
        if isinstance(codes_PH, torch.Tensor):
            codes_PH = codes_PH.detach().cpu().numpy()
        codes = np.asarray(codes_PH)
        integer = np.issubdtype(codes.dtype, np.integer)
    if codes.ndim != 2:
        raise ValueError(
            f"codes_PH must be 2-D [n_prompts, n_heads], got shape {tuple(codes.shape)}; "
            "pass the output of saes.codes(sae, acts_PHD)."
        )
    if not integer:
        raise ValueError(f"codes_PH must hold integer codes, got dtype {codes.dtype}.")
    if codes.shape[0] * codes.shape[1] and int(codes.min()) < 0:
        raise ValueError("codes_PH holds negative codes; codes must be latent indices >= 0.")
    return codes.long() if isinstance(codes, torch.Tensor) else codes.astype(np.int64, copy=False)


def _as_labels(is_positive_P: torch.Tensor | np.ndarray | list[bool], n_prompts: int) -> np.ndarray:
    labels = (
        is_positive_P.detach().cpu().numpy()
        if isinstance(is_positive_P, torch.Tensor)
        else np.asarray(is_positive_P)
    )
    if labels.shape != (n_prompts,):
        raise ValueError(
            f"is_positive_P must have shape ({n_prompts},) to match codes_PH, got {labels.shape}."
        )
    labels = labels.astype(bool)
    if not labels.any() or labels.all():
        raise ValueError(
            "is_positive_P must mark at least one positive and one negative prompt; "
            f"got {int(labels.sum())} positives out of {n_prompts}."
        )
    return labels


def _check_layout(n_heads_total: int, n_heads_per_layer: int) -> int:
    if n_heads_per_layer <= 0 or n_heads_total % n_heads_per_layer:
        raise ValueError(
            f"{n_heads_total} heads do not split into layers of n_heads_per_layer="
            f"{n_heads_per_layer}; pass the model's heads per layer (model.n_heads)."
        )
    return n_heads_total // n_heads_per_layer


def _exclusive_counts(
    keys_RP: np.ndarray | torch.Tensor, is_negative_P: np.ndarray | torch.Tensor
) -> tuple[np.ndarray | torch.Tensor, ...]:
    """Per row: distinct keys seen only on positives, only on negatives, and in total.

    Works on numpy arrays and torch tensors alike; only the row sort is backend-specific.
    """
    tagged = keys_RP * 2 + is_negative_P
    if isinstance(tagged, torch.Tensor):
        tagged = torch.sort(tagged, dim=1).values
    else:
        tagged.sort(axis=1)
    key = tagged >> 1
    negative = (tagged & 1) == 1
    # A group of equal keys ends where the next key differs (and at the row's end); it is
    # positive-only when its last element is positive (label bit 0 sorts first).
    new_key = key[:, 1:] != key[:, :-1]
    pos_only = (new_key & ~negative[:, :-1]).sum(1) + ~negative[:, -1]
    neg_only = (new_key & negative[:, 1:]).sum(1) + negative[:, 0]
    union = new_key.sum(1) + 1
    return pos_only, neg_only, union


def _key_dtype(n_key_values: int, codes: np.ndarray | torch.Tensor) -> Any:
    """int32 keys when they fit (vectorised sorts are much faster), else int64."""
    small = 2 * n_key_values < np.iinfo(np.int32).max
    if isinstance(codes, torch.Tensor):
        return torch.int32 if small else torch.int64
    return np.int32 if small else np.int64


def _to_numpy(values: np.ndarray | torch.Tensor) -> np.ndarray:
    return values.cpu().numpy() if isinstance(values, torch.Tensor) else values


def _transposed(codes_PH: np.ndarray | torch.Tensor, dtype: Any) -> np.ndarray | torch.Tensor:
    """Contiguous [n_heads, n_prompts] keys of `dtype` on the codes' backend."""
    if isinstance(codes_PH, torch.Tensor):
        return codes_PH.T.contiguous().to(dtype)
    return np.ascontiguousarray(codes_PH.T).astype(dtype)


def _like(labels_P: np.ndarray, keys: np.ndarray | torch.Tensor) -> np.ndarray | torch.Tensor:
    """Boolean labels as 0/1 of the keys' dtype, on the keys' backend and device."""
    if isinstance(keys, torch.Tensor):
        return torch.from_numpy(labels_P).to(device=keys.device, dtype=keys.dtype)
    return labels_P.astype(keys.dtype)


def _ratio(numerator: np.ndarray, denominator: np.ndarray) -> np.ndarray:
    return np.divide(
        numerator,
        denominator,
        out=np.zeros(numerator.shape, dtype=np.float64),
        where=denominator > 0,
    )


def rank_scores(score: pd.Series) -> pd.Series:
    """Rank of each score: 1 is the highest; tied scores share the best rank among them."""
    return score.rank(ascending=False, method="min").astype(np.int64)


def head_table(n_layers: int, n_heads_per_layer: int) -> pd.DataFrame:
    """One row per head (index `head_index`, layer-major): layer, head, label."""
    index = np.arange(n_layers * n_heads_per_layer)
    return pd.DataFrame(
        {
            "layer": index // n_heads_per_layer,
            "head": index % n_heads_per_layer,
            "label": head_labels(n_layers, n_heads_per_layer),
        },
        index=pd.Index(index, name="head_index"),
    )


def node_scores(
    codes_PH: torch.Tensor | np.ndarray,
    is_positive_P: torch.Tensor | np.ndarray | list[bool],
    n_heads_per_layer: int,
    *,
    normalise: bool = False,
) -> pd.DataFrame:
    """Per head, codes seen on positives and never on negatives (optionally / union)."""
    codes = _as_codes(codes_PH)
    labels = _as_labels(is_positive_P, codes.shape[0])
    n_layers = _check_layout(codes.shape[1], n_heads_per_layer)
    keys_HP = _transposed(codes, _key_dtype(int(codes.max()) + 1, codes))
    counts = _exclusive_counts(keys_HP, _like(~labels, keys_HP))
    pos_only, neg_only, union = map(_to_numpy, counts)
    frame = head_table(n_layers, n_heads_per_layer)
    frame["score"] = _ratio(pos_only, union) if normalise else pos_only.astype(np.float64)
    frame["rank"] = rank_scores(frame["score"])
    frame["n_pos_codes"] = union - neg_only
    frame["n_neg_codes"] = union - pos_only
    frame["n_pos_only"] = pos_only
    frame["n_neg_only"] = neg_only
    frame["n_codes_union"] = union
    return frame


def edge_scores(
    codes_PH: torch.Tensor | np.ndarray,
    is_positive_P: torch.Tensor | np.ndarray | list[bool],
    n_heads_per_layer: int,
    *,
    normalise: bool = False,
    chunk_keys: int = DEFAULT_CHUNK_KEYS,
    progress: bool = False,
) -> pd.DataFrame:
    """Per unordered head pair, code pairs co-occurring on positives and never on negatives."""
    codes = _as_codes(codes_PH)
    labels = _as_labels(is_positive_P, codes.shape[0])
    n_prompts, n_heads = codes.shape
    n_layers = _check_layout(n_heads, n_heads_per_layer)
    if n_heads < 2:
        raise ValueError("edge_scores needs at least two heads to form a pair.")
    if chunk_keys < n_prompts:
        raise ValueError(f"chunk_keys={chunk_keys} must be at least n_prompts={n_prompts}.")
    n_codes = int(codes.max()) + 1
    codes_HP = _transposed(codes, _key_dtype(n_codes * n_codes, codes))
    is_negative_P = _like(~labels, codes_HP)
    first, second = np.triu_indices(n_heads, k=1)
    n_pairs = first.size
    if isinstance(codes_HP, torch.Tensor):
        first_R, second_R = (torch.from_numpy(i).to(codes_HP.device) for i in (first, second))
        counts_3R = torch.empty(3, n_pairs, dtype=torch.int64, device=codes_HP.device)
    else:
        first_R, second_R = first, second
        counts_3R = np.empty((3, n_pairs), dtype=np.int64)
    rows_per_chunk = max(1, chunk_keys // n_prompts)
    starts = range(0, n_pairs, rows_per_chunk)
    for start in tqdm(starts, desc="edge scores", disable=not progress, leave=False):
        stop = min(start + rows_per_chunk, n_pairs)
        keys_RP = codes_HP[first_R[start:stop]] * n_codes + codes_HP[second_R[start:stop]]
        for row, count in enumerate(_exclusive_counts(keys_RP, is_negative_P)):
            counts_3R[row, start:stop] = count
    pos_only, neg_only, union = _to_numpy(counts_3R)
    head_label = pd.Categorical.from_codes(
        np.arange(n_heads), categories=head_labels(n_layers, n_heads_per_layer)
    )
    frame = pd.DataFrame(
        {
            "head1": first,
            "head2": second,
            "label1": head_label[first],
            "label2": head_label[second],
            "score": _ratio(pos_only, union) if normalise else pos_only.astype(np.float64),
        }
    )
    frame["rank"] = rank_scores(frame["score"])
    frame["n_pos_pairs"] = union - neg_only
    frame["n_neg_pairs"] = union - pos_only
    frame["n_pos_only"] = pos_only
    frame["n_neg_only"] = neg_only
    frame["n_pairs_union"] = union
    return frame


def default_top_pairs(n_heads_per_layer: int) -> int:
    """Number of top unordered pairs the seed code effectively counts heads over."""
    # The seed code sorts ordered pairs (each unordered pair twice, both with the same score)
    # and counts the first n_heads_per_layer**2 // 2 head *entries* (two per pair), i.e.
    # n_heads_per_layer**2 // 4 ordered pairs, which is this many unordered pairs.
    return max(1, n_heads_per_layer**2 // 8)


def heads_from_edges(
    edges: pd.DataFrame,
    n_heads_per_layer: int,
    n_heads_total: int,
    *,
    top_pairs: int | None = None,
) -> pd.DataFrame:
    """Score heads by how often they appear in the ``top_pairs`` best-scoring head pairs."""
    n_layers = _check_layout(n_heads_total, n_heads_per_layer)
    k = default_top_pairs(n_heads_per_layer) if top_pairs is None else top_pairs
    if k <= 0:
        raise ValueError(f"top_pairs must be a positive number of head pairs, got {k}.")
    score = edges["score"].to_numpy()
    weight = np.zeros(score.size, dtype=np.float64)
    if k >= score.size:
        weight[:] = 1.0
    else:
        # Pairs tied with the k-th best share the remaining slots equally, so the result
        # does not depend on an arbitrary tie-break (the seed code's unstable argsort).
        cutoff = np.partition(score, score.size - k)[score.size - k]
        above = score > cutoff
        tied = score == cutoff
        weight[above] = 1.0
        weight[tied] = (k - above.sum()) / tied.sum()
    counts = np.bincount(
        edges["head1"].to_numpy(), weights=weight, minlength=n_heads_total
    ) + np.bincount(edges["head2"].to_numpy(), weights=weight, minlength=n_heads_total)
    frame = head_table(n_layers, n_heads_per_layer)
    frame["score"] = counts
    frame["rank"] = rank_scores(frame["score"])
    return frame
