"""Greater-than (Hanna et al. 2023): "The war lasted from the year 1732 to the year 17" -> > 32."""

from __future__ import annotations

import random
from dataclasses import dataclass
from typing import Any, ClassVar, Literal

from circuits.tasks import vocab
from circuits.tasks.base import (
    MetricName,
    Task,
    TaskData,
    Tokenizer,
    encode,
    generation_metadata,
    sample_until,
)
from circuits.tasks.base import single_token_ids as _single_token_ids


@dataclass(frozen=True)
class GreaterThanTask(Task):
    """Greater-than: after "from the year XXYY to [the year] XX" the next token should be > YY.

    Positive: a start year XXYY, YY in `yy_range`, whose text " XXYY" tokenises as
    [" XX", "YY"]. Negative and corrupted (ACDC's baseline): YY replaced by "01", after which
    every later year is plausible. Metric: probability difference
    sum P(YY' > YY) - sum P(YY' <= YY) over the two-digit tokens "00".."99" that are single
    tokens under the tokenizer.
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

    def __post_init__(self) -> None:
        if self.template not in vocab.GREATER_THAN_TEMPLATES:
            raise ValueError(
                f"greater-than template {self.template!r} is unknown; use one of "
                f"{sorted(vocab.GREATER_THAN_TEMPLATES)}."
            )
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

    def generate(self, tokenizer: Tokenizer, n: int = 250, seed: int = 0) -> TaskData:
        """`n` prompt pairs; all prompts share one token length."""
        two_digit = {f"{y:02d}": y for y in range(100)}
        yy_ids = _single_token_ids(
            tokenizer, list(two_digit), prefix="", what="two-digit numbers", need=3
        )
        nouns = list(
            _single_token_ids(tokenizer, self.nouns, prefix=" ", what="event nouns", need=1)
        )
        years = self._valid_years(tokenizer)
        by_yy: dict[int, list[int]] = {}
        for century, yy in years:
            by_yy.setdefault(yy, []).append(century)
        yys = sorted(by_yy)
        lengths: set[int] = set()

        def make(rng: random.Random, i: int) -> tuple[Any, ...] | None:
            if self.balanced:
                yy = yys[i % len(yys)]
                century = rng.choice(by_yy[yy])
            else:
                century, yy = rng.choice(years)
            noun = rng.choice(nouns)
            positive = self.format(noun, century, f"{yy:02d}")
            negative = self.format(noun, century, vocab.GREATER_THAN_NEGATIVE_YY)
            length = len(encode(tokenizer, positive))
            if len(encode(tokenizer, negative)) != length or (lengths and length not in lengths):
                return None
            lengths.add(length)
            later = [i for text, i in yy_ids.items() if two_digit[text] > yy]
            not_later = [i for text, i in yy_ids.items() if two_digit[text] <= yy]
            info = {"noun": noun, "century": century, "yy": yy, "year": century * 100 + yy}
            return positive, negative, later, not_later, length, info

        rows = sample_until(make, n, seed, self.name)
        # Balanced sampling walks YY upwards; shuffle so any slice covers the range.
        random.Random(seed).shuffle(rows)
        return TaskData(
            task=self.name,
            positives=[r[0] for r in rows],
            negatives=[r[1] for r in rows],
            corrupted=[r[1] for r in rows],
            answer_ids=[r[2] for r in rows],
            wrong_ids=[r[3] for r in rows],
            lengths=[r[4] for r in rows],
            prompt_info=[r[5] for r in rows],
            metadata=generation_metadata(
                self,
                tokenizer,
                n,
                seed,
                {"template": self.template, "yy_range": self.yy_range, "balanced": self.balanced},
            ),
        )

    def _valid_years(self, tokenizer: Tokenizer) -> list[tuple[int, int]]:
        """(century, YY) whose " XXYY" and " XX01" both tokenise as [" XX", "YY"]."""

        def splits(century: int, yy: str) -> bool:
            whole = encode(tokenizer, f" {century}{yy}")
            parts = encode(tokenizer, f" {century}") + encode(tokenizer, yy)
            return len(parts) == 2 and whole == parts

        low, high = self.yy_range
        years = [
            (century, yy)
            for century in self.centuries
            if splits(century, vocab.GREATER_THAN_NEGATIVE_YY)
            for yy in range(low, high + 1)
            if splits(century, f"{yy:02d}")
        ]
        if not years:
            raise ValueError(
                f"no year in centuries {self.centuries} with YY in {self.yy_range} tokenises as "
                "[' XX', 'YY'] under this tokenizer; the greater-than task needs such years."
            )
        return years
