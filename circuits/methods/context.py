"""``MethodContext``: what a scoring method sees (model, task, data, config), with the
per-head capture and the faithfulness ablator built once and shared by the methods."""

from __future__ import annotations

from collections.abc import Mapping

import torch

from circuits.config import PipelineConfig
from circuits.faithfulness import CircuitAblator
from circuits.tasks import Task, TaskData
from circuits.timing import timed
from interp.capture import capture_heads
from interp.models import HookedModel

__all__ = ["MethodContext"]


class MethodContext:
    """What a method sees: model, task, data and config, with the head capture cached."""

    def __init__(
        self,
        model: HookedModel,
        task: Task,
        data: TaskData,
        config: PipelineConfig,
        *,
        progress: bool = False,
        seconds: Mapping[str, float] | None = None,
    ) -> None:
        self.model = model
        self.task = task
        self.data = data
        self.config = config
        self.progress = progress
        self.seconds: dict[str, float] = dict(seconds or {})
        """Seconds of the shared stages (data generation, capture)."""
        self.used_capture = False
        """Whether ``head_acts`` was called since the flag was last cleared."""
        self._acts: tuple[torch.Tensor, torch.Tensor] | None = None
        self._ablator: CircuitAblator | None = None
        self.curve_cache: dict[bytes, float] = {}
        """f(k) of every circuit evaluated under ``ablator()``, shared by the methods."""

    def ablator(self, seed: int = 0) -> CircuitAblator:
        """The faithfulness ablator over the first ``faithfulness_prompts`` pairs (cached:
        every method is judged under the same ablation and prompts)."""
        if self._ablator is None:
            config = self.config.evaluation
            n = min(config.faithfulness_prompts, len(self.data))
            self._ablator = CircuitAblator(
                self.model,
                self.task,
                self.data.subset(list(range(n))),
                ablation=config.ablation,
                seed=seed,
                batch_size=self.config.capture.batch_size,
                progress=self.progress,
            )
        return self._ablator

    def head_acts(self) -> tuple[torch.Tensor, torch.Tensor]:
        """``acts_PHD`` (on the model's device) of the positives then the negatives, and
        ``is_positive_P`` (cached)."""
        self.used_capture = True
        if self._acts is None:
            prompts = list(self.data.positives) + list(self.data.negatives)
            with timed(self.seconds, "capture", self.model.device):
                capture = capture_heads(
                    self.model,
                    prompts,
                    positions=self.config.capture.positions,
                    include_bos=self.config.capture.include_bos,
                    batch_size=self.config.capture.batch_size,
                    progress=self.progress,
                    device=self.model.device,
                )
            is_positive_P = torch.zeros(len(prompts), dtype=torch.bool)
            is_positive_P[: len(self.data.positives)] = True
            self._acts = (capture.results, is_positive_P)
        return self._acts
