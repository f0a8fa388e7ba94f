"""Indirect object identification (Wang et al. 2022), ABC negatives as in O'Neill & Bui 2024."""

from __future__ import annotations

import random
from dataclasses import dataclass
from typing import Any, ClassVar

from circuits.tasks import generation, vocab
from circuits.tasks.base import MetricName, Task, TaskData
from circuits.tasks.generation import Tokenizer


@dataclass(frozen=True)
class IOITask(Task):
    """IOI: "Then, Richard and Nicole went to the garden. Nicole gave a bone to" -> " Richard".

    Positive: an ABBA or BABA template with indirect object IO and subject S (named twice).
    Negative: the first mention of S replaced by a third name C, so no name is repeated and
    the answer cannot be inferred (ABC). Corrupted (ACDC's ABC baseline): all three name
    slots replaced by three fresh names. Metric: logit difference IO minus S.
    """

    name: ClassVar[str] = "ioi"
    description: ClassVar[str] = (
        "Indirect object identification (Wang et al. 2022): complete 'A and B ... B gave X to' "
        "with A."
    )

    names: tuple[str, ...] = vocab.IOI_NAMES
    """Candidate names, without leading space; only single-token ones are used."""
    places: tuple[str, ...] = vocab.IOI_PLACES
    """Candidate places for [PLACE]."""
    objects: tuple[str, ...] = vocab.IOI_OBJECTS
    """Candidate objects for [OBJECT]."""
    templates: tuple[str, ...] = vocab.IOI_TEMPLATES
    """Templates with [IO], [S] (twice), [PLACE], [OBJECT]; ABBA and BABA by default."""

    def __post_init__(self) -> None:
        for template in self.templates:
            if template.count("[IO]") != 1 or template.count("[S]") != 2:
                raise ValueError(f"IOI template {template!r} must contain [IO] once and [S] twice.")
        if not self.templates:
            raise ValueError("IOI needs at least one template.")

    @property
    def metric_name(self) -> MetricName:
        """Logit difference IO minus S."""
        return "logit_diff"

    def example(self) -> tuple[str, str, str]:
        """The canonical example of the brief and its ABC negative."""
        template = vocab.IOI_ABBA_TEMPLATES[0]
        positive = fill(template, "Richard", "Nicole", "Nicole", "garden", "bone")
        negative = fill(template, "Richard", "Alicia", "Nicole", "garden", "bone")
        return positive, negative, " Richard"

    def generate(self, tokenizer: Tokenizer, n: int = 250, seed: int = 0) -> TaskData:
        """`n` IOI triples, templates drawn uniformly; equal token length within each triple."""
        name_ids = generation.single_token_ids(
            tokenizer, self.names, prefix=" ", what="IOI names", need=5
        )
        places = list(
            generation.single_token_ids(
                tokenizer, self.places, prefix=" ", what="IOI places", need=1
            )
        )
        objects = list(
            generation.single_token_ids(
                tokenizer, self.objects, prefix=" ", what="IOI objects", need=1
            )
        )
        names = list(name_ids)
        lengths: dict[int, int] = {}

        def make(rng: random.Random, _: int) -> tuple[Any, ...] | None:
            t = rng.randrange(len(self.templates))
            template = self.templates[t]
            io, s, c = rng.sample(names, 3)
            x, y, z = rng.sample([m for m in names if m not in (io, s)], 3)
            place, obj = rng.choice(places), rng.choice(objects)
            positive = fill(template, io, s, s, place, obj)
            negative = fill(template, io, c, s, place, obj)
            corrupted = fill(template, x, y, z, place, obj)
            length = len(generation.encode(tokenizer, positive))
            if any(len(generation.encode(tokenizer, p)) != length for p in (negative, corrupted)):
                return None
            if lengths.setdefault(t, length) != length:
                return None
            order = "ABBA" if template.index("[IO]") < template.index("[S]") else "BABA"
            info = {
                "template": t,
                "order": order,
                "io": io,
                "s": s,
                "c": c,
                "corrupted_names": (x, y, z),
                "place": place,
                "object": obj,
            }
            answer, wrong = [name_ids[io]], [name_ids[s]]
            return positive, negative, corrupted, answer, wrong, length, info

        rows = generation.sample_until(make, n, seed, self.name)
        metadata = generation.metadata(self.name, tokenizer, n, seed, {})
        return TaskData.from_rows(self.name, rows, metadata)


def fill(template: str, io: str, s1: str, s2: str, place: str, obj: str) -> str:
    """A template with IO, the first and second mention of S, place and object filled in."""
    text = template.replace("[S]", s1, 1).replace("[S]", s2, 1).replace("[IO]", io)
    return text.replace("[PLACE]", place).replace("[OBJECT]", obj)
