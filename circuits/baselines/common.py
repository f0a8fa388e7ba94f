"""What the baselines share: prompt-pair batches, answer logits, z references, timing, results.

Every baseline patches the task's corrupted prompts into its clean prompts (the positives),
reads the task metric at each prompt's answer position (its last real token; prompts are
right-padded) and returns a `BaselineResult`: one score per head, layer-major
(`layer * n_heads + head`), higher meaning more circuit-like.
"""

from __future__ import annotations

import functools
from collections.abc import Callable
from dataclasses import asdict, dataclass, field
from typing import Any, Literal

import numpy as np
import pandas as pd
import torch
from transformer_lens import HookedTransformer
from transformer_lens.utilities.activation_functions import apply_softcap

from circuits.scoring import head_labels
from circuits.tasks import Task, TaskData
from circuits.timing import timed
from interp import HookedModel

__all__ = [
    "ABLATIONS",
    "Ablation",
    "BaselineConfig",
    "BaselineResult",
    "PatchBatch",
    "answer_logits",
    "batches_and_mean_z",
    "check_ablation",
    "config_dict",
    "layer_z",
    "make_batches",
    "mean_corrupted_z",
    "reference_z",
    "run_blocks",
    "timed",
]


@dataclass(frozen=True)
class BaselineConfig:
    """Options every baseline has."""

    batch_size: int = 32
    """Prompt pairs per forward pass: a memory knob, results do not depend on it."""
    quiet: bool = False
    """Hide progress bars."""

    def __post_init__(self) -> None:
        if self.batch_size < 1:
            raise ValueError(f"batch_size={self.batch_size}; use a positive batch size.")


@dataclass(frozen=True)
class PatchBatch:
    """A chunk of clean/corrupted prompt pairs of one task, tokenised, with its metric."""

    clean_BS: torch.Tensor
    """Clean (positive) prompts, right-padded, BOS first."""
    corrupted_BS: torch.Tensor
    """The paired corrupted prompts; pair `i` has the same real-token mask as clean row `i`."""
    mask_BS: torch.Tensor
    """True at real tokens."""
    answer_pos_B: torch.Tensor
    """Position whose next-token logits the metric reads (the last real token)."""
    data: TaskData
    """The task data of exactly these pairs, in row order."""
    metric: Callable[[torch.Tensor], torch.Tensor]
    """Answer-position logits `[batch, vocab]` -> per-prompt task metric `[batch]`."""

    @property
    def size(self) -> int:
        """Number of prompt pairs."""
        return len(self.answer_pos_B)


def make_batches(
    model: HookedModel, task: Task, data: TaskData, batch_size: int
) -> list[PatchBatch]:
    """Clean/corrupted pairs tokenised in chunks of `batch_size`, grouped by token length."""
    if len(data.corrupted) != len(data.positives):
        raise ValueError(
            f"task {data.task!r}: {len(data.corrupted)} corrupted prompts for "
            f"{len(data.positives)} positives; give one corrupted prompt per positive."
        )
    # Sorting by length keeps padding (wasted compute) small within a chunk.
    order = sorted(range(len(data)), key=lambda i: (data.lengths[i], i))
    batches = []
    for start in range(0, len(order), batch_size):
        indices = order[start : start + batch_size]
        sub = data.subset(indices)
        clean_BS, mask_BS = model.to_tokens(sub.positives)
        corrupted_BS, corrupted_mask_BS = model.to_tokens(sub.corrupted)
        if corrupted_mask_BS.shape != mask_BS.shape or not torch.equal(corrupted_mask_BS, mask_BS):
            bad = _first_length_mismatch(mask_BS, corrupted_mask_BS)
            raise ValueError(
                f"task {data.task!r}: positive {indices[bad]} and its corrupted prompt tokenise "
                "to different lengths; patching needs aligned positions, so regenerate the data "
                "with the model's tokenizer."
            )
        batches.append(
            PatchBatch(
                clean_BS=clean_BS,
                corrupted_BS=corrupted_BS,
                mask_BS=mask_BS,
                answer_pos_B=mask_BS.long().sum(dim=1) - 1,
                data=sub,
                metric=functools.partial(task.metric, data=sub, reduce=False),
            )
        )
    return batches


def _first_length_mismatch(mask_BS: torch.Tensor, other_BS: torch.Tensor) -> int:
    lengths = mask_BS.long().sum(1)
    other = other_BS.long().sum(1)
    return int((lengths != other).nonzero()[0, 0])


def answer_logits(
    model: HookedTransformer, resid_BSD: torch.Tensor, answer_pos_B: torch.Tensor
) -> torch.Tensor:
    """Logits `[batch, vocab]` at the answer positions from the final residual stream."""
    rows = torch.arange(len(answer_pos_B), device=resid_BSD.device)
    # Unembedding only the answer positions: the vocabulary projection dominates small models.
    x_B1D = resid_BSD[rows, answer_pos_B.to(resid_BSD.device)][:, None]
    if model.cfg.normalization_type is not None:
        x_B1D = model.ln_final(x_B1D)
    logits_B1V = apply_softcap(model.unembed(x_B1D), model.cfg.output_logits_soft_cap)
    return logits_B1V[:, 0]


def run_blocks(
    model: HookedModel, resid_BSD: torch.Tensor, start_layer: int, tokens_BS: torch.Tensor
) -> torch.Tensor:
    """Final residual stream after running blocks `start_layer..` on `resid_BSD`."""
    ht = model.model
    extra = {}
    if ht.cfg.positional_embedding_type == "shortformer":
        # Shortformer adds position embeddings to every layer's q/k input, not the residual.
        extra["shortformer_pos_embed"] = ht.pos_embed(tokens_BS)
    return ht(resid_BSD, start_at_layer=start_layer, stop_at_layer=ht.cfg.n_layers, **extra)


@dataclass(frozen=True)
class BaselineResult:
    """Head scores of one baseline, with optional signed effects, edges and stage timings."""

    method: str
    """Method name as registered (`activation-patching`, `acdc`, ...)."""
    scores_H: torch.Tensor
    """Score per head, layer-major; higher means more circuit-like."""
    n_heads: int
    """Heads per layer (to label rows)."""
    seconds: dict[str, float]
    """Wall-clock seconds per stage."""
    effects_H: torch.Tensor | None = None
    """Signed metric change when the head is patched (or its estimate), if the method has one."""
    edges: pd.DataFrame | None = None
    """Graph edges: upstream, downstream (labels `embed`, `L{l}H{h}`, `MLP{l}`, `logits`),
    score, and for methods that have one a signed `effect`."""
    config: dict[str, Any] = field(default_factory=dict)
    """The method's resolved config."""
    extra: dict[str, Any] = field(default_factory=dict)
    """Method-specific diagnostics, JSON-ready."""

    def node_frame(self) -> pd.DataFrame:
        """One row per head: layer, head, label, score, rank (1 = best), effect if any."""
        n_total = self.scores_H.numel()
        index = np.arange(n_total)
        frame = pd.DataFrame(
            {
                "layer": index // self.n_heads,
                "head": index % self.n_heads,
                "label": head_labels(n_total // self.n_heads, self.n_heads),
                "score": self.scores_H.detach().cpu().double().numpy(),
            },
            index=pd.Index(index, name="head_index"),
        )
        frame["rank"] = frame["score"].rank(ascending=False, method="min").astype(np.int64)
        if self.effects_H is not None:
            frame["effect"] = self.effects_H.detach().cpu().double().numpy()
        return frame

    def head_pair_frame(self) -> pd.DataFrame | None:
        """Head-to-head edges as `head1 < head2` rows (label1, label2, score, rank), or None."""
        if self.edges is None:
            return None
        labels = head_labels(self.scores_H.numel() // self.n_heads, self.n_heads)
        position = {label: i for i, label in enumerate(labels)}
        pairs = self.edges[
            self.edges["upstream"].isin(position) & self.edges["downstream"].isin(position)
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
        frame["rank"] = frame["score"].rank(ascending=False, method="min").astype(np.int64)
        return frame


def config_dict(config: BaselineConfig) -> dict[str, Any]:
    """A config as a JSON-ready dict (tuples become lists)."""
    return {
        key: list(value) if isinstance(value, tuple) else value
        for key, value in asdict(config).items()
    }


Ablation = Literal["resample", "mean"]
ABLATIONS: tuple[str, ...] = ("resample", "mean")


def check_ablation(ablation: str) -> None:
    """Raise unless `ablation` is `resample` or `mean`."""
    if ablation not in ABLATIONS:
        raise ValueError(f"ablation={ablation!r}; use 'resample' or 'mean'.")


def layer_z(model: HookedModel, tokens_BS: torch.Tensor) -> list[torch.Tensor]:
    """Every layer's `z` `[batch, seq, head, d_head]` on `tokens_BS`, without gradients."""
    store: list[torch.Tensor | None] = [None] * model.n_layers

    def save(z_BSHE: torch.Tensor, hook: Any) -> None:
        store[hook.layer()] = z_BSHE.detach()

    hooks = [(f"blocks.{layer}.attn.hook_z", save) for layer in range(model.n_layers)]
    with torch.no_grad(), model.hooks(hooks):
        model.model(tokens_BS, stop_at_layer=model.n_layers)
    return [z for z in store if z is not None]


def mean_corrupted_z(model: HookedModel, batches: list[PatchBatch]) -> list[torch.Tensor]:
    """Per layer, the mean `z` `[seq, head, d_head]` over all corrupted prompts, per position."""
    width = max(batch.corrupted_BS.shape[1] for batch in batches)
    sums: list[torch.Tensor] | None = None
    counts_S = torch.zeros(width, device=model.device)
    for batch in batches:
        z_layers = layer_z(model, batch.corrupted_BS)
        mask_BS11 = batch.mask_BS[:, :, None, None]
        pad = width - batch.corrupted_BS.shape[1]
        batch_sums = [
            torch.nn.functional.pad((z * mask_BS11).sum(0), (0, 0, 0, 0, 0, pad)) for z in z_layers
        ]
        sums = (
            batch_sums if sums is None else [a + b for a, b in zip(sums, batch_sums, strict=True)]
        )
        counts_S[: batch.mask_BS.shape[1]] += batch.mask_BS.sum(0)
    assert sums is not None  # make_batches never returns an empty list
    return [s / counts_S.clamp(min=1)[:, None, None] for s in sums]


def batches_and_mean_z(
    model: HookedModel,
    task: Task,
    data: TaskData,
    batch_size: int,
    ablation: Ablation,
    seconds: dict[str, float],
) -> tuple[list[PatchBatch], list[torch.Tensor] | None]:
    """Prompt-pair batches and, for mean ablation, the mean corrupted `z` (both timed)."""
    with timed(seconds, "tokenize", model.device):
        batches = make_batches(model, task, data, batch_size)
    if ablation != "mean":
        return batches, None
    with timed(seconds, "reference", model.device):
        return batches, mean_corrupted_z(model, batches)


def reference_z(
    model: HookedModel, batch: PatchBatch, mean_z: list[torch.Tensor] | None
) -> list[torch.Tensor]:
    """The `z` patched into the clean run: the paired corrupted prompt's, or the mean's."""
    if mean_z is None:
        return layer_z(model, batch.corrupted_BS)
    batch_size, seq = batch.clean_BS.shape
    return [z[:seq].expand(batch_size, -1, -1, -1) for z in mean_z]
