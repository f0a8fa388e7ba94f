"""How well a model does a task: accuracy and the task metric on positives and negatives.

A circuit is only worth looking for where the model solves the task, and the negatives only
serve as a contrast where they remove the signal; `measure` checks both in one pass.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass
from typing import Any

from circuits.tasks.base import Task, model_answer_logits, task_metric


@dataclass(frozen=True)
class TaskBehaviour:
    """One task on one model."""

    task: str
    """Task name."""
    n: int
    """Prompt pairs measured."""
    accuracy: float
    """Fraction of positives whose best answer token beats every wrong one (top-1 among
    the task's candidates, as `filter_correct`)."""
    metric_name: str
    """The task metric (`logit_diff` or `prob_diff`)."""
    metric_positive: float
    """Mean metric on the positives."""
    metric_negative: float
    """Mean metric on the negatives (same answer ids): the contrast the method relies on."""
    options: dict[str, Any]
    """How the data was generated (tokenizer, form, template, seed, ...)."""

    def as_dict(self) -> dict[str, Any]:
        """Plain dict, ready for JSON or a DataFrame row."""
        return asdict(self)


def measure(
    model: Any, task: Task, n: int = 250, seed: int = 0, batch_size: int = 32
) -> TaskBehaviour:
    """Accuracy and mean metric of `model` on `n` generated pairs of `task`."""
    data = task.generate(model.tokenizer, n=n, seed=seed)
    positive_NV = model_answer_logits(model, data.positives, data.lengths, batch_size=batch_size)
    negative_NV = model_answer_logits(model, data.negatives, data.lengths, batch_size=batch_size)
    correct = [
        bool(row[answers].max() > row[wrong].max()) if wrong else bool(row.argmax() in answers)
        for row, answers, wrong in zip(positive_NV, data.answer_ids, data.wrong_ids, strict=True)
    ]
    return TaskBehaviour(
        task=task.name,
        n=len(data),
        accuracy=sum(correct) / len(correct),
        metric_name=task.metric_name,
        metric_positive=float(task_metric(task.metric_name, positive_NV, data)),
        metric_negative=float(task_metric(task.metric_name, negative_NV, data)),
        options=dict(data.metadata),
    )
