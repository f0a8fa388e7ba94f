"""User-defined tasks from Python lists or a JSON/YAML file, validated with clear errors."""

from __future__ import annotations

import json
import random
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any, ClassVar

import yaml

from circuits import ground_truth as ground_truths
from circuits.ground_truth import GroundTruth, Provenance
from circuits.tasks import generation
from circuits.tasks.base import MetricName, Task, TaskData
from circuits.tasks.generation import Tokenizer

_FILE_KEYS = {
    "name",
    "description",
    "positives",
    "negatives",
    "answers",
    "wrong_answers",
    "corrupted",
    "ground_truth_heads",
    "ground_truth_file",
}


@dataclass(frozen=True)
class UserTask(Task):
    """A task given as prompt lists: positive i pairs with negative i (and corrupted i).

    Answers are encoded exactly as given, so write the leading space a tokenizer needs
    (" Mary", not "Mary"). Each answer must be a single token. Metric: best answer logit
    minus best wrong logit when every prompt has wrong answers, else the log-probability of
    the answers.
    """

    # Name and description are per instance here, class constants in the built-in tasks.
    name: str  # type: ignore[misc]
    positives: tuple[str, ...]
    """Prompts whose answer can be inferred, each stopping right before the answer."""
    negatives: tuple[str, ...]
    """One negative per positive, of the same token length."""
    answers: tuple[tuple[str, ...], ...]
    """Per positive, the answer string(s) counted as correct."""
    wrong_answers: tuple[tuple[str, ...], ...] = ()
    """Per positive, the answer string(s) counted as wrong; empty for none."""
    corrupted: tuple[str, ...] = ()
    """Corrupted prompts for patching baselines; the negatives when empty."""
    description: str = "User-defined task."  # type: ignore[misc]
    ground_truth_heads: frozenset[tuple[int, int]] | None = None
    """Known circuit heads (layer, head), if any."""
    ground_truth_file: str | None = None
    """A ground-truth JSON file (schema in circuits/ground_truth/README.md), if any."""

    default_variant: ClassVar[str] = "user"

    @property
    def metric_name(self) -> MetricName:
        """`logit_diff` when every prompt has wrong answers, else `answer_logprob`."""
        return "logit_diff" if self.wrong_answers and all(self.wrong_answers) else "answer_logprob"

    def example(self) -> tuple[str, str, str]:
        """The first pair and its first answer."""
        return self.positives[0], self.negatives[0], self.answers[0][0]

    def generate(self, tokenizer: Tokenizer, n: int | None = None, seed: int = 0) -> TaskData:
        """All pairs (or `n` drawn with `seed`), checked under `tokenizer`."""
        total = len(self.positives)
        if n is None:
            indices = list(range(total))
        elif not 0 < n <= total:
            raise ValueError(f"task {self.name!r}: n={n}, but it has {total} prompt pairs.")
        else:
            indices = sorted(random.Random(seed).sample(range(total), n))
        corrupted = self.corrupted or self.negatives
        lengths = []
        for i in indices:
            where = f"task {self.name!r}"
            length = len(generation.encode_known(tokenizer, self.positives[i], where))
            for kind, prompt in (("negative", self.negatives[i]), ("corrupted", corrupted[i])):
                n_tokens = len(generation.encode_known(tokenizer, prompt, where))
                if n_tokens != length:
                    raise ValueError(
                        f"task {self.name!r}: {kind} {i} ({prompt!r}) has {n_tokens} tokens "
                        f"but positive {i} ({self.positives[i]!r}) has {length}; make each "
                        "pair the same length under this tokenizer."
                    )
            lengths.append(length)
        wrong = self.wrong_answers or tuple(() for _ in self.positives)
        return TaskData(
            task=self.name,
            positives=[self.positives[i] for i in indices],
            negatives=[self.negatives[i] for i in indices],
            corrupted=[corrupted[i] for i in indices],
            answer_ids=[_answer_ids(tokenizer, self.answers[i], self.name, i) for i in indices],
            wrong_ids=[_answer_ids(tokenizer, wrong[i], self.name, i) for i in indices],
            lengths=lengths,
            prompt_info=[{"index": i} for i in indices],
            metadata=generation.metadata(self.name, tokenizer, len(indices), seed, {}),
        )

    def ground_truth(self, variant: str | None = None) -> GroundTruth:
        """The ground truth given with the task (a user task has exactly one)."""
        if variant not in (None, self.default_variant):
            raise ValueError(
                f"user task {self.name!r} has a single ground truth; pass variant=None, "
                f"not {variant!r}."
            )
        if self.ground_truth_file is not None:
            return ground_truths.load_file(self.ground_truth_file)
        if self.ground_truth_heads is None:
            raise ValueError(
                f"user task {self.name!r} has no ground truth; give ground_truth_heads= or "
                "ground_truth_file= to evaluate against one."
            )
        return GroundTruth(
            task=self.name,
            variant=self.default_variant,
            model="unspecified",
            heads=self.ground_truth_heads,
            provenance=Provenance(source="user", url="", version="", notes="given with the task"),
        )


def from_lists(
    positives: Sequence[str],
    negatives: Sequence[str],
    answers: Sequence[str | Sequence[str]],
    wrong_answers: Sequence[str | Sequence[str]] | None = None,
    *,
    corrupted: Sequence[str] | None = None,
    ground_truth_heads: Sequence[Any] | None = None,
    ground_truth_file: str | Path | None = None,
    name: str = "user",
    description: str = "User-defined task.",
) -> UserTask:
    """A task from prompt lists; counts are checked here, token lengths in `generate`.

    `answers[i]` (and `wrong_answers[i]`) is one string or a list of strings for positive i.
    Ground-truth heads are `"L9H9"` labels or `(layer, head)` pairs.
    """
    where = f"task {name!r}"
    positives = _strings(positives, "positives", where)
    negatives = _strings(negatives, "negatives", where)
    answer_lists = _answer_lists(answers, "answers", len(positives), where)
    wrong_lists = (
        ()
        if wrong_answers is None
        else _answer_lists(wrong_answers, "wrong_answers", len(positives), where)
    )
    if any(not row for row in answer_lists):
        raise ValueError(f"{where}: every positive needs at least one answer.")
    _same_count(negatives, "negatives", positives, where)
    corrupted_list: tuple[str, ...] = ()
    if corrupted is not None:
        corrupted_list = _strings(corrupted, "corrupted", where)
        _same_count(corrupted_list, "corrupted", positives, where)
    heads = None
    if ground_truth_heads is not None:
        if not ground_truth_heads:
            raise ValueError(f"{where}: ground_truth_heads is empty; leave it out or list heads.")
        heads = frozenset(
            ground_truths.parse_head(
                list(h) if isinstance(h, tuple) else h, f"{where}: ground_truth_heads"
            )
            for h in ground_truth_heads
        )
    if heads is not None and ground_truth_file is not None:
        raise ValueError(f"{where}: give ground_truth_heads or ground_truth_file, not both.")
    return UserTask(
        name=name,
        positives=positives,
        negatives=negatives,
        answers=answer_lists,
        wrong_answers=wrong_lists,
        corrupted=corrupted_list,
        description=description,
        ground_truth_heads=heads,
        ground_truth_file=None if ground_truth_file is None else str(ground_truth_file),
    )


def from_file(path: str | Path) -> UserTask:
    """A task from a JSON or YAML file with the keyword arguments of `from_lists`.

    Keys: `positives`, `negatives`, `answers` (required); `wrong_answers`, `corrupted`,
    `ground_truth_heads` or `ground_truth_file` (relative to the file), `name`, `description`.
    """
    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(f"task file {path} does not exist.")
    text = path.read_text(encoding="utf-8")
    suffix = path.suffix.lower()
    try:
        if suffix == ".json":
            data = json.loads(text)
        elif suffix in (".yaml", ".yml"):
            data = yaml.safe_load(text)
        else:
            raise ValueError(f"task file {path}: use a .json, .yaml or .yml file.")
    except (json.JSONDecodeError, yaml.YAMLError) as error:
        raise ValueError(f"task file {path} does not parse: {error}") from error
    if not isinstance(data, dict):
        raise ValueError(
            f"task file {path}: expected a mapping with positives, negatives, answers."
        )
    unknown = data.keys() - _FILE_KEYS
    if unknown:
        raise ValueError(
            f"task file {path}: unknown key(s) {sorted(unknown)}; use {sorted(_FILE_KEYS)}."
        )
    missing = {"positives", "negatives", "answers"} - data.keys()
    if missing:
        raise ValueError(f"task file {path}: missing key(s) {sorted(missing)}.")
    if data.get("ground_truth_file") is not None:
        data["ground_truth_file"] = path.parent / data["ground_truth_file"]
    data.setdefault("name", path.stem)
    return from_lists(**data)


def _strings(values: Any, what: str, where: str) -> tuple[str, ...]:
    if isinstance(values, str) or not isinstance(values, Sequence):
        raise ValueError(f"{where}: {what} must be a list of strings.")
    if not values:
        raise ValueError(f"{where}: {what} is empty; give at least one prompt.")
    for i, value in enumerate(values):
        if not isinstance(value, str) or not value:
            raise ValueError(f"{where}: {what}[{i}] is {value!r}; give a non-empty string.")
    return tuple(values)


def _answer_lists(values: Any, what: str, n: int, where: str) -> tuple[tuple[str, ...], ...]:
    if isinstance(values, str) or not isinstance(values, Sequence):
        raise ValueError(f"{where}: {what} must be a list with one entry per positive.")
    if len(values) != n:
        raise ValueError(
            f"{where}: {what} has {len(values)} entries but there are {n} positives; give one "
            "per positive."
        )
    rows = []
    for i, value in enumerate(values):
        row = (value,) if isinstance(value, str) else value
        if not isinstance(row, Sequence) or not all(isinstance(a, str) and a for a in row):
            raise ValueError(
                f"{where}: {what}[{i}] is {value!r}; give a string or list of strings."
            )
        rows.append(tuple(row))
    return tuple(rows)


def _same_count(values: Sequence[str], what: str, positives: Sequence[str], where: str) -> None:
    if len(values) != len(positives):
        raise ValueError(
            f"{where}: {what} has {len(values)} prompts but positives has {len(positives)}; "
            f"give one per positive (each pair must have the same token length)."
        )


def _answer_ids(tokenizer: Tokenizer, answers: Sequence[str], task: str, i: int) -> list[int]:
    ids = []
    for answer in answers:
        tokens = generation.encode_known(tokenizer, answer, f"task {task!r}: answer of prompt {i}")
        if len(tokens) != 1:
            raise ValueError(
                f"task {task!r}: answer {answer!r} of prompt {i} is {len(tokens)} tokens under "
                "this tokenizer; answers must be single tokens (mind the leading space)."
            )
        ids.append(tokens[0])
    return ids
