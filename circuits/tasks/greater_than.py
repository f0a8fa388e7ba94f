"""Greater-than (Hanna et al. 2023): "The war lasted from the year 1732 to the year 17" -> > 32."""

from __future__ import annotations

import random
from dataclasses import dataclass
from typing import Any, ClassVar, Literal

from circuits.tasks import generation, vocab
from circuits.tasks.base import MetricName, Task, TaskData
from circuits.tasks.generation import Tokenizer


@dataclass(frozen=True)
class GreaterThanTask(Task):
    """Greater-than: after "from the year XXYY to [the year] XX" the next token should be > YY.

    Two forms, chosen from the tokenizer (`form="auto"`):
    - `two-digit` (GPT-2 and other tokenizers with two-digit number tokens; Hanna et al.):
      the year " XXYY" tokenises as [" XX", "YY"] and the answer is the next two-digit token.
      Metric: P(YY' > YY) - P(YY' <= YY) summed over the single tokens "00".."99".
    - `digit` (tokenizers that split numbers into digits: Llama-3-style, SmolLM2, ...): the
      year is [..., "X", "X", "Y", "Y"] and the answer is the tens digit of the end year.
      Metric: P(tens digit > T) - P(tens digit < T) over the ten digit tokens, where T is the
      tens digit of YY; the digit T itself is left out of both sums, since the end year can
      be later or earlier with it. YY is restricted to tens digits 1..8 so both sums exist.
    Negative and corrupted (ACDC's baseline), in both forms: YY replaced by "01", after which
    every later year is plausible.
    """

    name: ClassVar[str] = "greater-than"
    description: ClassVar[str] = (
        "Greater-than (Hanna et al. 2023): after 'from the year 1732 to the year 17' predict a "
        "two-digit year later than 32."
    )

    template: Literal["seed", "hanna"] = "seed"
    """`seed`: "... to the year {XX}" (O'Neill & Bui); `hanna`: "... to {XX}" (Hanna et al.)."""
    nouns: tuple[str, ...] = vocab.GREATER_THAN_NOUNS
    """Event nouns; only single-token ones (with a leading space) are used."""
    centuries: tuple[int, ...] = vocab.GREATER_THAN_CENTURIES
    """Centuries XX; 12..19 gives the years 1200-1999."""
    yy_range: tuple[int, int] = (2, 98)
    """Smallest and largest YY (inclusive)."""
    balanced: bool = True
    """Cycle YY through every valid value (Hanna et al.) instead of drawing years uniformly."""
    form: Literal["auto", "two-digit", "digit"] = "auto"
    """Answer token: the two-digit year token or the tens digit; `auto` picks the form the
    tokenizer supports (two-digit first)."""

    def __post_init__(self) -> None:
        if self.template not in vocab.GREATER_THAN_TEMPLATES:
            raise ValueError(
                f"greater-than template {self.template!r} is unknown; use one of "
                f"{sorted(vocab.GREATER_THAN_TEMPLATES)}."
            )
        if self.form not in ("auto", "two-digit", "digit"):
            raise ValueError(f"form={self.form!r}; use 'auto', 'two-digit' or 'digit'.")
        low, high = self.yy_range
        if not 2 <= low <= high <= 98:
            raise ValueError(
                f"yy_range={self.yy_range}; YY must lie in 2..98 so that '01' is earlier and "
                "a later year exists."
            )

    @property
    def metric_name(self) -> MetricName:
        """Probability difference P(later) - P(not later)."""
        return "prob_diff"

    def format(self, noun: str, century: int, yy: str) -> str:
        """One prompt: noun, start year `{century}{yy}`, and the end century."""
        text = vocab.GREATER_THAN_TEMPLATES[self.template]
        return text.format(noun=noun, XX=century, YY=yy)

    def example(self) -> tuple[str, str, str]:
        """The war of 1732 and its "01" negative."""
        negative = self.format("war", 17, vocab.GREATER_THAN_NEGATIVE_YY)
        return self.format("war", 17, "32"), negative, "a two-digit year > 32"

    def resolved_form(self, tokenizer: Tokenizer) -> Literal["two-digit", "digit"]:
        """The form used under `tokenizer`: `form`, or for `auto` the first one it supports."""
        if self.form != "auto":
            return self.form
        for form in ("two-digit", "digit"):
            if self._valid_years(tokenizer, form, strict=False):
                return form
        raise ValueError(
            "this tokenizer splits years neither as [' XX', 'YY'] nor into single digits; the "
            "greater-than task needs one of the two."
        )

    def generate(self, tokenizer: Tokenizer, n: int = 250, seed: int = 0) -> TaskData:
        """`n` prompt pairs; all prompts share one token length."""
        form = self.resolved_form(tokenizer)
        if form == "two-digit":
            values = {f"{y:02d}": y for y in range(100)}
            what = "two-digit numbers"
        else:
            values = {str(d): d for d in range(10)}
            what = "digits"
        value_ids = generation.single_token_ids(
            tokenizer, list(values), prefix="", what=what, need=3
        )
        nouns = list(
            generation.single_token_ids(
                tokenizer, self.nouns, prefix=" ", what="event nouns", need=1
            )
        )
        years = self._valid_years(tokenizer, form)
        by_yy: dict[int, list[int]] = {}
        for century, yy in years:
            by_yy.setdefault(yy, []).append(century)
        yys = sorted(by_yy)
        lengths: set[int] = set()

        def answer_sets(yy: int) -> tuple[list[int], list[int]]:
            if form == "two-digit":
                later = [i for text, i in value_ids.items() if values[text] > yy]
                return later, [i for text, i in value_ids.items() if values[text] <= yy]
            tens = yy // 10
            later = [i for text, i in value_ids.items() if values[text] > tens]
            return later, [i for text, i in value_ids.items() if values[text] < tens]

        def make(rng: random.Random, i: int) -> tuple[Any, ...] | None:
            if self.balanced:
                yy = yys[i % len(yys)]
                century = rng.choice(by_yy[yy])
            else:
                century, yy = rng.choice(years)
            noun = rng.choice(nouns)
            positive = self.format(noun, century, f"{yy:02d}")
            negative = self.format(noun, century, vocab.GREATER_THAN_NEGATIVE_YY)
            length = len(generation.encode(tokenizer, positive))
            if len(generation.encode(tokenizer, negative)) != length or (
                lengths and length not in lengths
            ):
                return None
            lengths.add(length)
            later, not_later = answer_sets(yy)
            info = {"noun": noun, "century": century, "yy": yy, "year": century * 100 + yy}
            return positive, negative, negative, later, not_later, length, info

        rows = generation.sample_until(make, n, seed, self.name)
        # Balanced sampling walks YY upwards; shuffle so any slice covers the range.
        random.Random(seed).shuffle(rows)
        options = {
            "template": self.template,
            "yy_range": self.yy_range,
            "balanced": self.balanced,
            "form": form,
        }
        metadata = generation.metadata(self.name, tokenizer, n, seed, options)
        return TaskData.from_rows(self.name, rows, metadata)

    def _valid_years(
        self, tokenizer: Tokenizer, form: str, *, strict: bool = True
    ) -> list[tuple[int, int]]:
        """(century, YY) whose " XXYY" and " XX01" tokenise as the form needs:
        [" XX", "YY"] (two-digit) or " XX" followed by one token per digit of YY (digit)."""

        def splits(century: int, yy: str) -> bool:
            whole = generation.encode(tokenizer, f" {century}{yy}")
            head = generation.encode(tokenizer, f" {century}")
            if form == "two-digit":
                parts = head + generation.encode(tokenizer, yy)
                return len(parts) == 2 and whole == parts
            digits = [generation.encode(tokenizer, digit) for digit in yy]
            return all(len(d) == 1 for d in digits) and whole == head + [d[0] for d in digits]

        low, high = self.yy_range
        if form == "digit":
            # The tens digit is the answer: both a later and an earlier digit must exist.
            low, high = max(low, 10), min(high, 89)
        years = [
            (century, yy)
            for century in self.centuries
            if splits(century, vocab.GREATER_THAN_NEGATIVE_YY)
            for yy in range(low, high + 1)
            if splits(century, f"{yy:02d}")
        ]
        if not years and strict:
            layout = "[' XX', 'YY']" if form == "two-digit" else "' XX' then one token per digit"
            raise ValueError(
                f"no year in centuries {self.centuries} with YY in {self.yy_range} tokenises as "
                f"{layout} under this tokenizer; the {form} greater-than form needs such years."
            )
        return years
