"""Head indexing, the one place that builds and parses head labels and masks.

Heads are flattened layer-major: head `h` of layer `l` has index `l * n_heads + h` and label
`L{l}H{h}`. A set of heads may be given as labels, `(layer, head)` pairs, flat indices or a
boolean mask; `head_mask` turns any of them into the mask.
"""

from __future__ import annotations

import re
from collections.abc import Iterable
from typing import Any

import numpy as np

__all__ = ["HEAD_LABEL", "head_index", "head_label", "head_labels", "head_mask", "parse_head_label"]

HEAD_LABEL = re.compile(r"^L(\d+)H(\d+)$")
"""A head label: `L{layer}H{head}`."""


def head_label(layer: int, head: int) -> str:
    """`L{layer}H{head}`."""
    return f"L{layer}H{head}"


def head_labels(n_layers: int, n_heads: int) -> list[str]:
    """Labels of every head of a model, layer-major."""
    return [head_label(layer, head) for layer in range(n_layers) for head in range(n_heads)]


def parse_head_label(label: str) -> tuple[int, int] | None:
    """`(layer, head)` of a label `L{layer}H{head}`, or None if `label` is not one."""
    match = HEAD_LABEL.match(label)
    return None if match is None else (int(match.group(1)), int(match.group(2)))


def head_index(head: Any, n_heads: int | None = None) -> int:
    """Flat layer-major index of a label, a `(layer, head)` pair or an index.

    `n_heads` (heads per layer) is needed for labels and pairs.
    """
    if isinstance(head, str) or (isinstance(head, tuple | list) and len(head) == 2):
        pair = (
            parse_head_label(head.strip().upper())
            if isinstance(head, str)
            else (int(head[0]), int(head[1]))
        )
        if pair is None:
            raise ValueError(f"head label {head!r} is not of the form 'L{{layer}}H{{head}}'.")
        if n_heads is None:
            raise ValueError(
                f"head {head!r} needs the model's heads per layer; pass n_heads (or give "
                "the DataFrame from circuits.score, with 'layer' and 'head' columns)."
            )
        layer, index = pair
        if not 0 <= index < n_heads:
            raise ValueError(
                f"head {head!r} has head index {index}, outside 0..{n_heads - 1}; is it a "
                "head of another model?"
            )
        return layer * n_heads + index
    if isinstance(head, int | np.integer):
        return int(head)
    raise ValueError(
        f"head {head!r} is neither a label 'L{{layer}}H{{head}}', a (layer, head) pair nor a "
        "flat layer-major index."
    )


def head_mask(heads: Iterable[Any] | np.ndarray, n_total: int, n_heads: int | None) -> np.ndarray:
    """Boolean mask over `n_total` flat heads of a head set in any form (see module doc)."""
    array = np.asarray(heads) if not isinstance(heads, set | frozenset) else None
    if array is not None and array.dtype == bool:
        if array.shape != (n_total,):
            raise ValueError(f"head mask has shape {array.shape}; expected ({n_total},) heads.")
        return array.copy()
    mask = np.zeros(n_total, dtype=bool)
    for head in heads:
        index = head_index(head, n_heads)
        if not 0 <= index < n_total:
            raise ValueError(
                f"head {head!r} is outside this model's {n_total} heads; is it a head of "
                "another model?"
            )
        mask[index] = True
    return mask
