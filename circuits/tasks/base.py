"""Task data, answer-position metrics, correctness filtering and the task base class.

Logits conventions (every metric here):
- `logits` is either `[batch, vocab]` (already taken at the answer position) or
  `[batch, seq, vocab]` for right-padded prompts; then `mask` (`[batch, seq]`, True on real
  tokens, BOS included) picks each row's last real position. Without a mask the last position
  is used, which is only right when no row is padded.
- Row `i` belongs to prompt `i` of the data (positive, negative or corrupted: the answer and
  wrong ids are shared by a pair).
"""

from __future__ import annotations

import logging
from abc import ABC, abstractmethod
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from types import MappingProxyType
from typing import Any, ClassVar, Literal

import torch

from circuits import ground_truth as ground_truths
from circuits.ground_truth import GroundTruth
from circuits.tasks.generation import Tokenizer, encode

logger = logging.getLogger(__name__)

MetricName = Literal["logit_diff", "prob_diff", "answer_logprob"]


@dataclass(frozen=True)
class TaskData:
    """Prompts of one task under one tokenizer.

    `positives[i]`, `negatives[i]` and `corrupted[i]` form a pair of equal token length
    `lengths[i]` (without BOS). The clean prompts for patching are the positives.
    """

    task: str
    """Task name."""
    positives: list[str]
    """Prompts whose answer the model can infer; each stops right before the answer."""
    negatives: list[str]
    """Same-length prompts whose answer cannot be inferred (the method's contrast set)."""
    corrupted: list[str]
    """ACDC-style corrupted prompts, patched into the positives by baselines."""
    answer_ids: list[list[int]]
    """Per prompt, the token ids that count as correct (one for IOI and docstring)."""
    wrong_ids: list[list[int]]
    """Per prompt, the token ids that count as wrong (may be empty for user tasks)."""
    lengths: list[int]
    """Per pair, the token length under the tokenizer, without BOS."""
    prompt_info: list[Mapping[str, Any]] = field(default_factory=list)
    """Per prompt, how it was built (names, template, year, ...)."""
    metadata: Mapping[str, Any] = field(default_factory=dict)
    """Task, n, seed, tokenizer and task options the data was generated with."""

    def __post_init__(self) -> None:
        n = len(self.positives)
        if n == 0:
            raise ValueError(f"task {self.task!r}: no prompts.")
        if not self.prompt_info:
            object.__setattr__(self, "prompt_info", [{} for _ in range(n)])
        object.__setattr__(self, "metadata", MappingProxyType(dict(self.metadata)))
        for name in ("negatives", "corrupted", "answer_ids", "wrong_ids", "lengths", "prompt_info"):
            if len(getattr(self, name)) != n:
                raise ValueError(
                    f"task {self.task!r}: {name} has {len(getattr(self, name))} entries but "
                    f"there are {n} positives; give one per positive."
                )
        for i, ids in enumerate(self.answer_ids):
            if not ids:
                raise ValueError(f"task {self.task!r}: prompt {i} has no answer ids.")

    def __len__(self) -> int:
        return len(self.positives)

    @property
    def clean(self) -> list[str]:
        """Clean prompts for patching baselines: the positives."""
        return self.positives

    @property
    def seq_len(self) -> int | None:
        """The common token length (without BOS), or None when lengths differ (IOI)."""
        return self.lengths[0] if len(set(self.lengths)) == 1 else None

    @classmethod
    def from_rows(
        cls, task: str, rows: Sequence[tuple[Any, ...]], metadata: Mapping[str, Any]
    ) -> TaskData:
        """Data from `(positive, negative, corrupted, answer_ids, wrong_ids, length, info)` rows."""
        if not rows:
            raise ValueError(f"task {task!r}: no prompts.")
        return cls(task, *map(list, zip(*rows, strict=True)), metadata=metadata)

    def subset(self, indices: Sequence[int]) -> TaskData:
        """The data restricted to some pairs, in the given order."""
        if not indices:
            raise ValueError(f"task {self.task!r}: subset of no prompts; keep at least one.")
        return TaskData(
            task=self.task,
            positives=[self.positives[i] for i in indices],
            negatives=[self.negatives[i] for i in indices],
            corrupted=[self.corrupted[i] for i in indices],
            answer_ids=[self.answer_ids[i] for i in indices],
            wrong_ids=[self.wrong_ids[i] for i in indices],
            lengths=[self.lengths[i] for i in indices],
            prompt_info=[self.prompt_info[i] for i in indices],
            metadata=self.metadata,
        )


# --- metrics -----------------------------------------------------------------------------


def answer_logits(logits: torch.Tensor, mask: torch.Tensor | None = None) -> torch.Tensor:
    """Logits `[batch, vocab]` at each row's answer position (see the module docstring)."""
    if logits.ndim == 2:
        return logits
    if logits.ndim != 3:
        raise ValueError(
            f"logits have shape {tuple(logits.shape)}; give [batch, vocab] or [batch, seq, vocab]."
        )
    if mask is None:
        return logits[:, -1]
    if mask.shape != logits.shape[:2]:
        raise ValueError(
            f"mask has shape {tuple(mask.shape)} but logits have [batch, seq] = "
            f"{tuple(logits.shape[:2])}; give the mask of the same tokens."
        )
    positions = torch.arange(mask.shape[1], device=mask.device)
    last = (mask.long() * (positions + 1)).argmax(dim=1)
    return logits[torch.arange(len(logits), device=logits.device), last]


def _ragged(
    ids: Sequence[Sequence[int]], device: torch.device
) -> tuple[torch.Tensor, torch.Tensor]:
    """Ragged id lists as a padded index tensor and its validity mask."""
    width = max(1, max(len(row) for row in ids))
    index = torch.zeros(len(ids), width, dtype=torch.long, device=device)
    valid = torch.zeros(len(ids), width, dtype=torch.bool, device=device)
    for i, row in enumerate(ids):
        index[i, : len(row)] = torch.as_tensor(list(row), dtype=torch.long)
        valid[i, : len(row)] = True
    return index, valid


def _check_rows(logits_BV: torch.Tensor, data: TaskData) -> None:
    if len(logits_BV) != len(data):
        raise ValueError(
            f"logits have {len(logits_BV)} rows but the {data.task!r} data has {len(data)} "
            "prompts; pass the logits of data.positives (or negatives/corrupted) in order."
        )


def task_metric(
    name: MetricName,
    logits: torch.Tensor,
    data: TaskData,
    *,
    mask: torch.Tensor | None = None,
    reduce: bool = True,
) -> torch.Tensor:
    """A task metric at the answer position.

    - `logit_diff`: best answer logit minus best wrong logit (IOI: IO minus S; docstring:
      correct minus best wrong).
    - `prob_diff`: total probability of the answer ids minus that of the wrong ids
      (greater-than: P(YY' > YY) - P(YY' <= YY)).
    - `answer_logprob`: log of the total probability of the answer ids.
    """
    logits_BV = answer_logits(logits, mask).float()
    _check_rows(logits_BV, data)
    answer_index, answer_valid = _ragged(data.answer_ids, logits_BV.device)
    if name == "answer_logprob":
        logprobs = logits_BV.log_softmax(-1).gather(1, answer_index)
        values = logprobs.masked_fill(~answer_valid, -torch.inf).logsumexp(-1)
    else:
        if any(not row for row in data.wrong_ids):
            raise ValueError(
                f"metric {name!r} needs wrong answer ids for every prompt of {data.task!r}; "
                "give wrong answers or use the `answer_logprob` metric."
            )
        wrong_index, wrong_valid = _ragged(data.wrong_ids, logits_BV.device)
        if name == "logit_diff":
            best = logits_BV.gather(1, answer_index).masked_fill(~answer_valid, -torch.inf)
            worst = logits_BV.gather(1, wrong_index).masked_fill(~wrong_valid, -torch.inf)
            values = best.max(-1).values - worst.max(-1).values
        elif name == "prob_diff":
            probs = logits_BV.softmax(-1)
            values = (probs.gather(1, answer_index) * answer_valid).sum(-1) - (
                probs.gather(1, wrong_index) * wrong_valid
            ).sum(-1)
        else:
            raise ValueError(
                f"unknown metric {name!r}; use logit_diff, prob_diff or answer_logprob."
            )
    return values.mean() if reduce else values


def kl_divergence(
    logits: torch.Tensor,
    clean_logits: torch.Tensor,
    *,
    mask: torch.Tensor | None = None,
    clean_mask: torch.Tensor | None = None,
    reduce: bool = True,
) -> torch.Tensor:
    """KL(clean || patched) of the next-token distributions at the answer position (nats)."""
    logprobs = answer_logits(logits, mask).float().log_softmax(-1)
    clean_logprobs = answer_logits(clean_logits, clean_mask).float().log_softmax(-1)
    if logprobs.shape != clean_logprobs.shape:
        raise ValueError(
            f"logits {tuple(logprobs.shape)} and clean logits {tuple(clean_logprobs.shape)} "
            "differ at the answer position; run both on the same prompts and model."
        )
    values = (clean_logprobs.exp() * (clean_logprobs - logprobs)).sum(-1)
    return values.mean() if reduce else values


# --- running a model ---------------------------------------------------------------------


def model_answer_logits(
    model: Any,
    prompts: Sequence[str],
    lengths: Sequence[int],
    *,
    tokenizer: Tokenizer | None = None,
    batch_size: int = 32,
) -> torch.Tensor:
    """Answer-position logits `[n, vocab]` of a model over prompts.

    `model` either has `to_tokens(prompts) -> (tokens_BS, mask_BS)` (BOS prepended there) and
    `__call__(tokens_BS) -> logits`, or is a plain callable `tokens_BS -> logits`; then
    `tokenizer` encodes the prompts and its BOS token (if any) is prepended. Prompts are
    batched by token length, so plain callables never see padding.
    """
    if batch_size <= 0:
        raise ValueError(f"batch_size={batch_size}; give a positive batch size.")
    if not hasattr(model, "to_tokens") and tokenizer is None:
        raise ValueError(
            "model has no to_tokens(prompts); pass tokenizer= so the prompts can be encoded."
        )
    by_length: dict[int, list[int]] = {}
    for i, length in enumerate(lengths):
        by_length.setdefault(length, []).append(i)
    rows: dict[int, torch.Tensor] = {}
    with torch.inference_mode():
        for indices in by_length.values():
            for start in range(0, len(indices), batch_size):
                batch = indices[start : start + batch_size]
                tokens_BS, mask_BS = _to_tokens(model, [prompts[i] for i in batch], tokenizer)
                out = model(tokens_BS)
                logits = out.logits if hasattr(out, "logits") else out
                for i, row in zip(batch, answer_logits(logits, mask_BS), strict=True):
                    rows[i] = row.float().cpu()
    return torch.stack([rows[i] for i in range(len(prompts))])


def _to_tokens(
    model: Any, prompts: list[str], tokenizer: Tokenizer | None
) -> tuple[torch.Tensor, torch.Tensor | None]:
    if hasattr(model, "to_tokens"):
        out = model.to_tokens(prompts)
        return (out[0], out[1]) if isinstance(out, tuple) else (out, None)
    assert tokenizer is not None  # checked by the caller
    bos = getattr(tokenizer, "bos_token_id", None)
    rows = [([bos] if bos is not None else []) + encode(tokenizer, p) for p in prompts]
    if len({len(r) for r in rows}) != 1:
        raise ValueError(
            "prompts of one recorded length encode to different lengths; was the data "
            "generated with another tokenizer?"
        )
    return torch.tensor(rows, dtype=torch.long), None


def filter_correct(
    model: Any,
    data: TaskData,
    *,
    tokenizer: Tokenizer | None = None,
    among: Literal["candidates", "vocab"] = "candidates",
    batch_size: int = 32,
) -> tuple[TaskData, int]:
    """Keep the pairs whose positive the model answers correctly; return them and the count dropped.

    Correct means an answer id is strictly the top-1 token, taken over the candidate set
    `answer_ids + wrong_ids` (`among="candidates"`, the default; greater-than: the most
    likely two-digit year is later than YY) or over the whole vocabulary (`among="vocab"`,
    also used for prompts without wrong ids).
    """
    if among not in ("candidates", "vocab"):
        raise ValueError(f"among={among!r}; use 'candidates' or 'vocab'.")
    logits_BV = model_answer_logits(
        model, data.positives, data.lengths, tokenizer=tokenizer, batch_size=batch_size
    )
    _check_rows(logits_BV, data)
    keep = []
    for i, row in enumerate(logits_BV):
        best_answer = row[data.answer_ids[i]].max()
        if among == "candidates" and data.wrong_ids[i]:
            best_other = row[data.wrong_ids[i]].max()
        else:
            others = row.clone()
            others[data.answer_ids[i]] = -torch.inf
            best_other = others.max()
        # Strictly greater: a tie (e.g. a model that ignores the prompt) is not an answer.
        if best_answer > best_other:
            keep.append(i)
    dropped = len(data) - len(keep)
    if not keep:
        raise ValueError(
            f"the model answers none of the {len(data)} {data.task!r} prompts correctly "
            f"(top-1 among {among}); check the model and tokenizer match the data."
        )
    if dropped:
        logger.warning(
            "filter_correct: dropped %d of %d %s prompts answered wrongly (top-1 among %s).",
            dropped,
            len(data),
            data.task,
            among,
        )
    return data.subset(keep), dropped


# --- the task base class -----------------------------------------------------------------


@dataclass(frozen=True)
class TaskInfo:
    """What `circuits tasks` prints about a task."""

    name: str
    description: str
    metric: str
    positive: str
    negative: str
    answer: str


class Task(ABC):
    """A circuit task: prompt generator, metric, ground truth and correctness filter."""

    name: ClassVar[str]
    description: ClassVar[str]
    default_variant: ClassVar[str] = "acdc"

    @property
    @abstractmethod
    def metric_name(self) -> MetricName:
        """Which metric `metric` computes: `logit_diff`, `prob_diff` or `answer_logprob`."""

    @abstractmethod
    def generate(self, tokenizer: Tokenizer, n: int = 250, seed: int = 0) -> TaskData:
        """`n` positive/negative/corrupted triples, deterministic in `seed`."""

    @abstractmethod
    def example(self) -> tuple[str, str, str]:
        """One (positive, negative, answer) example, built without a tokenizer."""

    def info(self) -> TaskInfo:
        """Name, description, metric and an example for listings."""
        positive, negative, answer = self.example()
        return TaskInfo(self.name, self.description, self.metric_name, positive, negative, answer)

    def ground_truth(self, variant: str | None = None) -> GroundTruth:
        """The shipped ground truth (`acdc` when `variant` is None, or `paper`)."""
        return ground_truths.load(self.name, variant or self.default_variant)

    def metric(
        self,
        logits: torch.Tensor,
        data: TaskData,
        *,
        mask: torch.Tensor | None = None,
        reduce: bool = True,
    ) -> torch.Tensor:
        """The task metric at the answer position (mean over prompts unless `reduce=False`)."""
        return task_metric(self.metric_name, logits, data, mask=mask, reduce=reduce)

    filter_correct = staticmethod(filter_correct)
    """Keep the pairs whose positive the model answers correctly; also return how many went."""
