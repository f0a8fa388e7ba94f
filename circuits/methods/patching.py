"""What the patching methods share: their options, prompt-pair batches and the z reference.

Every patching method patches the task's corrupted prompts into its clean prompts (the
positives), reads the task metric at each prompt's answer position (its last real token;
prompts are right-padded) and scores every head, layer-major (`layer * n_heads + head`),
higher meaning more circuit-like. ``patching_method`` registers such a function
``fn(model, task, data, config) -> ScoreResult`` as a deterministic method that runs with
the pipeline's batch size and progress flag.
"""

import functools
from collections.abc import Callable, Iterable, Sequence
from dataclasses import asdict, dataclass
from typing import TYPE_CHECKING, Any, TypeVar

import torch
from tqdm.auto import tqdm

from circuits.ablation import PATCHING_ABLATIONS, PatchingAblation, check_ablation
from circuits.files import jsonable
from circuits.methods.registry import register
from circuits.methods.result import ScoreResult, head_result
from circuits.tasks import Task, TaskData
from circuits.timing import timed
from interp.capture import MeanZ, mean_z
from interp.models import HookedModel

if TYPE_CHECKING:
    from circuits.methods.context import MethodContext

Item = TypeVar("Item")

__all__ = [
    "AblationConfig",
    "PatchBatch",
    "PatchingConfig",
    "config_dict",
    "make_batches",
    "patching_method",
    "patching_result",
    "prepare_batches",
    "progress_bar",
    "reference_z",
]


@dataclass(frozen=True)
class PatchingConfig:
    """Options every patching method has."""

    batch_size: int = 32
    """Prompt pairs per forward pass: a memory knob, results do not depend on it."""
    progress: bool = True
    """Show progress bars."""

    def __post_init__(self) -> None:
        if self.batch_size < 1:
            raise ValueError(f"batch_size={self.batch_size}; use a positive batch size.")


@dataclass(frozen=True)
class AblationConfig(PatchingConfig):
    """Options of a patching method that replaces heads' z by a reference."""

    ablation: PatchingAblation = "counterfactual"
    """What replaces a head's z: `counterfactual` (the paired corrupted prompt's) or `mean`
    (the mean over corrupted prompts, per position)."""

    def __post_init__(self) -> None:
        super().__post_init__()
        check_ablation(self.ablation, PATCHING_ABLATIONS)


PatchingFn = Callable[[HookedModel, Task, TaskData, Any], ScoreResult]


def patching_method(
    name: str, config_type: type[PatchingConfig]
) -> Callable[[PatchingFn], PatchingFn]:
    """Register ``fn(model, task, data, config)`` as the deterministic method ``name``."""

    def decorator(fn: PatchingFn) -> PatchingFn:
        def method(context: "MethodContext", seed: int) -> ScoreResult:
            # Deterministic: the seed only fixed the task data, generated upstream.
            config = config_type(
                batch_size=context.config.capture.batch_size, progress=context.progress
            )
            return fn(context.model, context.task, context.data, config)

        method.__doc__ = fn.__doc__
        register(name, config=config_type, deterministic=True, function=fn)(method)
        return fn

    return decorator


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

    def clean_run(self, model: HookedModel) -> tuple[torch.Tensor, torch.Tensor]:
        """Run the clean prompts (under the caller's hooks and grad mode): the final
        residual stream `[batch, seq, d_model]` and the per-prompt metric `[batch]`."""
        final_BSD = model.final_resid(self.clean_BS)
        return final_BSD, self.metric(model.answer_logits(final_BSD, self.answer_pos_B))


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


def config_dict(config: PatchingConfig) -> dict[str, Any]:
    """A config as a JSON-ready dict (tuples become lists)."""
    return jsonable(asdict(config))


def patching_result(
    name: str,
    scores_H: torch.Tensor,
    model: HookedModel,
    seconds: dict[str, float],
    config: PatchingConfig,
    **details: Any,
) -> ScoreResult:
    """A patching method's result: its head scores, with its options under
    `extra["method_config"]`; `details` are `head_result`'s (effects_H, graph_edges, extra)."""
    extra = {"method_config": config_dict(config), **details.pop("extra", {})}
    return head_result(name, scores_H, model.n_heads, seconds, extra=extra, **details)


def progress_bar(items: Sequence[Item], desc: str, config: PatchingConfig) -> Iterable[Item]:
    """``items``, with a progress bar when the config's ``progress`` is on."""
    return tqdm(items, desc=desc, disable=not config.progress, leave=False)


def prepare_batches(
    model: HookedModel,
    task: Task,
    data: TaskData,
    config: PatchingConfig,
) -> tuple[list[PatchBatch], MeanZ | None, dict[str, float]]:
    """Prompt-pair batches, for a config with mean ablation the mean corrupted `z`, and the
    method's stage timings, which start here (`tokenize`, `reference`)."""
    seconds: dict[str, float] = {}
    with timed(seconds, "tokenize", model.device):
        batches = make_batches(model, task, data, config.batch_size)
    if not isinstance(config, AblationConfig) or config.ablation != "mean":
        return batches, None, seconds
    with timed(seconds, "reference", model.device):
        corrupted = [(batch.corrupted_BS, batch.mask_BS) for batch in batches]
        mean = mean_z(model, corrupted)
    return batches, mean, seconds


def reference_z(model: HookedModel, batch: PatchBatch, mean: MeanZ | None) -> torch.Tensor:
    """The `z` patched into the clean run, `[layer, batch, seq, head, d_head]`: the paired
    corrupted prompt's, or the mean's."""
    if mean is None:
        return model.layer_z(batch.corrupted_BS)
    batch_size, seq = batch.clean_BS.shape
    return mean.at(seq)[:, None].expand(-1, batch_size, -1, -1, -1)
