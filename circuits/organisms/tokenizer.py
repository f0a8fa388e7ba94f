"""Word-level tokenizers for the model organisms, built from the task vocabulary.

Pre-tokenisation follows GPT-2's habits (a word keeps its leading space, punctuation runs
are one token, an indent is a whitespace token before the triple quote or `" :"`), with one change:
digits split into 2-digit chunks, so the year " 1732" is [" 17", "32"] as the greater-than
task requires. The vocabulary is every piece of the task's templates and word lists, so the
task generators find every word they need as one known token; nothing else is covered
(unknown text becomes `<unk>`).
"""

from __future__ import annotations

import json
from collections.abc import Iterable
from pathlib import Path
from types import MappingProxyType

from tokenizers import Regex, Tokenizer, decoders, models, pre_tokenizers
from transformers import PreTrainedTokenizerFast

from circuits.tasks import vocab
from circuits.tasks.docstring import docstring_prompt
from circuits.tasks.ioi import fill

BOS = "<|endoftext|>"
"""BOS, EOS and padding token (GPT-2's spelling, the first BOS `interp.load_model` tries)."""
UNK = "<unk>"
"""Token of text outside the vocabulary."""
SPECIAL_TOKENS = MappingProxyType(
    {"bos_token": BOS, "eos_token": BOS, "pad_token": BOS, "unk_token": UNK}
)
"""The special tokens, as the tokenizer and its `tokenizer_config.json` name them."""
SPLIT_PATTERN = r" ?[A-Za-z_]+| ?\d\d| ?\d| ?[^\sA-Za-z_\d]+|\s+(?!\S)|\s+"
"""Pre-tokeniser regex: words, 2-digit chunks, punctuation runs, whitespace (GPT-2 style)."""

DOCSTRING_DESCRIPTION_WORDS = 160
"""How many docstring description words the docstring organism covers (keeps its vocab small)."""

TASKS = ("ioi", "greater-than", "docstring")


def _splitter() -> pre_tokenizers.PreTokenizer:
    return pre_tokenizers.Split(Regex(SPLIT_PATTERN), behavior="isolated")


def task_texts(task: str) -> list[str]:
    """Texts whose pieces make up the vocabulary of one task's organism."""
    if task == "ioi":
        words = [*vocab.IOI_NAMES, *vocab.IOI_PLACES, *vocab.IOI_OBJECTS]
        texts = [fill(t, "John", "Mary", "Mary", "store", "ring") for t in vocab.IOI_TEMPLATES]
    elif task == "greater-than":
        words = list(vocab.GREATER_THAN_NOUNS)
        texts = [
            t.format(noun="war", XX=17, YY="32") for t in vocab.GREATER_THAN_TEMPLATES.values()
        ]
        texts += [f"{y:02d}" for y in range(100)] + [f" {y:02d}" for y in range(100)]
    elif task == "docstring":
        description = vocab.DOCSTRING_DESCRIPTION_WORDS[:DOCSTRING_DESCRIPTION_WORDS]
        words = [*vocab.DOCSTRING_VARIABLE_NAMES, *description]
        # The first description word follows '"""' without a space.
        texts = list(description)
        texts.append(docstring_prompt("load", ["a", "b"], ["price"], ["a"], [["cost", "age"]]))
    else:
        raise ValueError(f"unknown organism task {task!r}; use one of {', '.join(TASKS)}.")
    return texts + [" " + w for w in words]


def vocabulary(texts: Iterable[str]) -> dict[str, int]:
    """Token -> id: special tokens first, then every pre-tokenised piece of `texts`, sorted."""
    split = _splitter()
    pieces = {piece for text in texts for piece, _ in split.pre_tokenize_str(text)}
    return {BOS: 0, UNK: 1} | {piece: i + 2 for i, piece in enumerate(sorted(pieces))}


def build_tokenizer(task: str) -> PreTrainedTokenizerFast:
    """The word-level tokenizer of one task's organism (BOS = EOS = PAD = `<|endoftext|>`)."""
    backend = Tokenizer(models.WordLevel(vocabulary(task_texts(task)), unk_token=UNK))
    backend.pre_tokenizer = _splitter()
    # Tokens carry their own spaces: decoding concatenates them.
    backend.decoder = decoders.Fuse()
    return PreTrainedTokenizerFast(
        tokenizer_object=backend, **SPECIAL_TOKENS, clean_up_tokenization_spaces=False
    )


def save_tokenizer(tokenizer: PreTrainedTokenizerFast, folder: Path) -> None:
    """Write `tokenizer.json` and a `tokenizer_config.json` naming its special tokens."""
    tokenizer.backend_tokenizer.save(str(folder / "tokenizer.json"))
    config = {
        "tokenizer_class": "PreTrainedTokenizerFast",
        **SPECIAL_TOKENS,
        "add_bos_token": False,
        "clean_up_tokenization_spaces": False,
        "model_max_length": 64,
    }
    (folder / "tokenizer_config.json").write_text(json.dumps(config, indent=2) + "\n")
