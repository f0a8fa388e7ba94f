"""What the prompt generators share: the tokenizer protocol, encoding, word filtering, sampling."""

from __future__ import annotations

import random
from collections.abc import Callable, Mapping, Sequence
from typing import Any, Protocol


class Tokenizer(Protocol):
    """The part of a Hugging Face tokenizer the generators use."""

    def encode(self, text: str, add_special_tokens: bool = ...) -> list[int]:
        """Token ids of `text`."""
        ...


def metadata(
    task: str, tokenizer: Tokenizer, n: int, seed: int, options: Mapping[str, Any]
) -> dict[str, Any]:
    """What `TaskData.metadata` records: task, n, seed, tokenizer and the task's options."""
    tokenizer_name = getattr(tokenizer, "name_or_path", "") or type(tokenizer).__name__
    return {"task": task, "n": n, "seed": seed, "tokenizer": tokenizer_name, **options}


def encode(tokenizer: Tokenizer, text: str) -> list[int]:
    """Token ids of `text` without special tokens."""
    return list(tokenizer.encode(text, add_special_tokens=False))


def encode_known(tokenizer: Tokenizer, text: str, where: str) -> list[int]:
    """Token ids of `text`; raise naming the word if the tokenizer does not know it (a
    word-level tokenizer would silently turn it into its unknown token)."""
    ids = encode(tokenizer, text)
    unknown = getattr(tokenizer, "unk_token_id", None)
    if unknown is None or unknown not in ids:
        return ids
    # The first word whose prefix of the text brings in the unknown token is the culprit.
    words = text.split(" ")
    word = next(
        (w for k, w in enumerate(words) if unknown in encode(tokenizer, " ".join(words[: k + 1]))),
        text,
    )
    raise ValueError(
        f"{where}: {word!r} is not in this tokenizer's vocabulary (it would become its "
        f"unknown token) in {text!r}; use words the model knows."
    )


def single_token_ids(
    tokenizer: Tokenizer, words: Sequence[str], *, prefix: str, what: str, need: int
) -> dict[str, int]:
    """Words whose `prefix + word` is one known token, with its id; raise if fewer than `need`."""
    # A word-level tokenizer maps unknown words to one token too: that is not coverage.
    unknown = getattr(tokenizer, "unk_token_id", None)
    ids = {}
    for word in words:
        tokens = encode(tokenizer, prefix + word)
        if len(tokens) == 1 and tokens[0] != unknown:
            ids[word] = tokens[0]
    if len(ids) < need:
        raise ValueError(
            f"only {len(ids)} of {len(words)} {what} are a single token under this tokenizer "
            f"(as {prefix + words[0]!r}); at least {need} are needed. Give a tokenizer that "
            "covers circuits.tasks.vocab, or pass a longer word list to the task."
        )
    return ids


def sample_until(
    make: Callable[[random.Random, int], tuple[Any, ...] | None], n: int, seed: int, task: str
) -> list[tuple[Any, ...]]:
    """`n` items from `make(rng, n_accepted)`, which returns None to reject; bounded retries."""
    if n <= 0:
        raise ValueError(f"task {task!r}: n={n}; ask for at least one prompt.")
    rng = random.Random(seed)
    items: list[tuple[Any, ...]] = []
    attempts = 0
    max_attempts = 20 * n + 100
    while len(items) < n:
        if attempts >= max_attempts:
            raise ValueError(
                f"task {task!r}: only {len(items)} of {n} candidate prompts had equal token "
                f"lengths after {attempts} tries under this tokenizer; check that it tokenises "
                "the task's words (circuits.tasks.vocab) the same way in every position."
            )
        attempts += 1
        item = make(rng, len(items))
        if item is not None:
            items.append(item)
    return items
