"""Docstring (Heimersheim & Janiak 2023): predict the next `:param` name of a Python docstring."""

from __future__ import annotations

import random
from dataclasses import dataclass
from typing import Any, ClassVar

from circuits.tasks import generation, vocab
from circuits.tasks.base import MetricName, Task, TaskData
from circuits.tasks.generation import Tokenizer


@dataclass(frozen=True)
class DocstringTask(Task):
    """Docstring: after `:param m1: ...`, `:param m2: ...`, `:param` the answer is " m3".

    Positive (Heimersheim & Janiak's generator, ACDC settings):
    `def {method}(self, {p1}, {p2}, {m1}, {m2}, {m3}, {s1}):` then a docstring with three
    description words, `:param {m1}: w w`, `:param {m2}: w w`, `:param` -> " m3".
    Negative and corrupted (ACDC's `random_random`): the matching def args and the doc args
    replaced by fresh random names, so nothing tells which argument comes next.
    Metric: logit of the answer minus the best wrong logit, where the wrong answers are all
    the other argument names sampled for the prompt (as ACDC, minus names of corruptions not
    generated here).
    """

    name: ClassVar[str] = "docstring"
    description: ClassVar[str] = (
        "Docstring (Heimersheim & Janiak 2023): predict the next ':param' argument name from "
        "the def line."
    )

    n_matching: int = 3
    """Def args that the docstring documents in order; the last one is the answer."""
    n_def_prefix: int = 2
    """Def args before the matching ones (not documented)."""
    n_def_suffix: int = 1
    """Def args after the matching ones (not documented)."""
    n_doc_prefix: int = 0
    """Documented args before the matching ones that are not in the def."""
    description_len: int = 3
    """Words in the one-line method description."""
    arg_description_len: int = 2
    """Words in each `:param` description."""
    variable_names: tuple[str, ...] = vocab.DOCSTRING_VARIABLE_NAMES
    """Candidate method and argument names; only single-token ones are used."""
    description_words: tuple[str, ...] = vocab.DOCSTRING_DESCRIPTION_WORDS
    """Candidate description words; only single-token ones are used."""

    def __post_init__(self) -> None:
        if self.n_matching < 1:
            raise ValueError(f"n_matching={self.n_matching}; at least 1 (the answer) is needed.")
        for key, value in self.counts.items():
            if value < 0:
                raise ValueError(f"{key}={value}; counts cannot be negative.")

    @property
    def counts(self) -> dict[str, int]:
        """The layout options (everything but the word lists)."""
        keys = ("n_matching", "n_def_prefix", "n_def_suffix", "n_doc_prefix")
        keys += ("description_len", "arg_description_len")
        return {key: getattr(self, key) for key in keys}

    @property
    def metric_name(self) -> MetricName:
        """Logit difference: answer minus best wrong argument name."""
        return "logit_diff"

    @property
    def n_names(self) -> int:
        """Distinct variable names one prompt pair needs (method included)."""
        # 1 method + prefix + suffix + doc prefix + matching + fresh def + fresh doc args.
        return self.n_def_prefix + self.n_def_suffix + self.n_doc_prefix + 3 * self.n_matching

    def example(self) -> tuple[str, str, str]:
        """A fixed example: the first names and words of the vocabulary lists."""
        method, *args = self.variable_names[: self.n_names]
        words = list(self.description_words)
        params = [words[: self.arg_description_len]] * (self.n_doc_prefix + self.n_matching - 1)
        pair = self.build(method, args, words[2 : 2 + self.description_len], params)
        return pair["positive"], pair["negative"], " " + pair["answer"]

    def build(
        self, method: str, args: list[str], description: list[str], params: list[list[str]]
    ) -> dict[str, Any]:
        """Positive and negative prompts from `n_names - 1` distinct argument names.

        `args` is laid out as def prefix, matching, def suffix, doc prefix, then the
        `2 * n_matching - 1` fresh names of the negative (def args, then doc args).
        """
        prefix = args[: self.n_def_prefix]
        matching = args[self.n_def_prefix : self.n_def_prefix + self.n_matching]
        rest = args[self.n_def_prefix + self.n_matching :]
        suffix = rest[: self.n_def_suffix]
        doc_prefix = rest[self.n_def_suffix : self.n_def_suffix + self.n_doc_prefix]
        fresh = rest[self.n_def_suffix + self.n_doc_prefix :]
        def_args, doc_args = prefix + matching + suffix, doc_prefix + matching[:-1]
        negative_def = prefix + fresh[: self.n_matching] + suffix
        negative_doc = doc_prefix + fresh[self.n_matching :]
        return {
            "positive": docstring_prompt(method, def_args, description, doc_args, params),
            "negative": docstring_prompt(method, negative_def, description, negative_doc, params),
            "method": method,
            "answer": matching[-1],
            "def_args": def_args,
            "doc_args": doc_args,
            "negative_def_args": negative_def,
            "negative_doc_args": negative_doc,
        }

    def generate(self, tokenizer: Tokenizer, n: int = 250, seed: int = 0) -> TaskData:
        """`n` prompt pairs; all prompts share one token length."""
        name_ids = generation.single_token_ids(
            tokenizer, self.variable_names, prefix=" ", what="variable names", need=self.n_names
        )
        words = list(
            generation.single_token_ids(
                tokenizer,
                self.description_words,
                prefix=" ",
                what="description words",
                need=max(self.description_len, self.arg_description_len, 1),
            )
        )
        # The first description word follows '"""' without a space; BPE tokenizers split it
        # differently, so it is drawn from words that are one token either way.
        first_words = list(
            generation.single_token_ids(
                tokenizer,
                words,
                prefix="",
                what="description words (without leading space)",
                need=min(self.description_len, 1),
            )
        )
        names = list(name_ids)
        lengths: set[int] = set()

        def make(rng: random.Random, _: int) -> tuple[Any, ...] | None:
            method, *args = rng.sample(names, self.n_names)
            description = rng.sample(words, self.description_len)
            if description:
                description[0] = rng.choice(first_words)
            params = [
                rng.sample(words, self.arg_description_len)
                for _ in range(self.n_doc_prefix + self.n_matching - 1)
            ]
            info = self.build(method, args, description, params)
            positive, negative, answer = info.pop("positive"), info.pop("negative"), info["answer"]
            length = len(generation.encode(tokenizer, positive))
            if len(generation.encode(tokenizer, negative)) != length or (
                lengths and length not in lengths
            ):
                return None
            lengths.add(length)
            wrong = [name_ids[a] for a in args if a != answer]
            return positive, negative, negative, [name_ids[answer]], wrong, length, info

        rows = generation.sample_until(make, n, seed, self.name)
        metadata = generation.metadata(self.name, tokenizer, n, seed, self.counts)
        return TaskData.from_rows(self.name, rows, metadata)


def docstring_prompt(
    method: str,
    def_args: list[str],
    description: list[str],
    doc_args: list[str],
    doc_descriptions: list[list[str]],
) -> str:
    """The prompt text: def line, description, one `:param` line per doc arg, final `:param`."""
    text = vocab.DOCSTRING_DEF_LINE.format(method=method, def_args=", ".join(def_args))
    text += vocab.DOCSTRING_DESCRIPTION_LINE.format(description=" ".join(description))
    for arg, words in zip(doc_args, doc_descriptions, strict=True):
        text += vocab.DOCSTRING_PARAM_LINE.format(arg=arg, description=" ".join(words))
    return text + vocab.DOCSTRING_FINAL_PARAM
