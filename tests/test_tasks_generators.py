"""Built-in task generators under the real GPT-2 tokenizer and a toy word-level tokenizer."""

from __future__ import annotations

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from tokenizers import Regex, Tokenizer, models, pre_tokenizers
from transformers import PreTrainedTokenizerFast

from circuits import tasks
from circuits.tasks import DocstringTask, GreaterThanTask, IOITask, vocab
from circuits.tasks.ioi import fill

N = 250


@pytest.fixture(scope="module")
def ioi(gpt2_tokenizer: PreTrainedTokenizerFast) -> tasks.TaskData:
    return tasks.get("ioi").generate(gpt2_tokenizer, n=N, seed=0)


@pytest.fixture(scope="module")
def greater_than(gpt2_tokenizer: PreTrainedTokenizerFast) -> tasks.TaskData:
    return tasks.get("greater-than").generate(gpt2_tokenizer, n=N, seed=0)


@pytest.fixture(scope="module")
def docstring(gpt2_tokenizer: PreTrainedTokenizerFast) -> tasks.TaskData:
    return tasks.get("docstring").generate(gpt2_tokenizer, n=N, seed=0)


def encode(tokenizer: PreTrainedTokenizerFast, text: str) -> list[int]:
    return tokenizer.encode(text, add_special_tokens=False)


def check_pairs(tokenizer: PreTrainedTokenizerFast, data: tasks.TaskData) -> None:
    """Every triple has the recorded length and single-token answer/wrong ids."""
    assert len(data) == N
    for i in range(len(data)):
        for prompt in (data.positives[i], data.negatives[i], data.corrupted[i]):
            assert len(encode(tokenizer, prompt)) == data.lengths[i]
        assert data.answer_ids[i]
        assert not set(data.answer_ids[i]) & set(data.wrong_ids[i])


# --- registry ----------------------------------------------------------------------------


def test_registry() -> None:
    assert tasks.names() == ("ioi", "greater-than", "docstring")
    assert isinstance(tasks.get("greater_than"), GreaterThanTask)
    assert tasks.get("greater-than", template="hanna").template == "hanna"
    with pytest.raises(ValueError, match="unknown task 'sva'"):
        tasks.get("sva")
    with pytest.raises(TypeError, match="bad option"):
        tasks.get("ioi", colour="red")
    with pytest.raises(ValueError, match="template 'x'"):
        tasks.get("greater-than", template="x")


@pytest.mark.parametrize("name", ["ioi", "greater-than", "docstring"])
def test_info(name: str) -> None:
    info = tasks.info(name)
    assert info.name == name
    assert info.description and "\n" not in info.description
    assert info.positive != info.negative
    assert info.metric in ("logit_diff", "prob_diff")


def test_ground_truth_variants() -> None:
    assert len(tasks.get("ioi").ground_truth().heads) == 26
    assert (11, 3) in tasks.get("ioi").ground_truth(variant="paper").heads
    assert (1, 0) in tasks.get("docstring").ground_truth("paper").heads
    assert len(tasks.get("greater-than").ground_truth("acdc").mlps) == 8


# --- IOI ---------------------------------------------------------------------------------


def test_ioi_templates() -> None:
    assert len(vocab.IOI_ABBA_TEMPLATES) >= 15 and len(vocab.IOI_BABA_TEMPLATES) >= 15
    assert len(vocab.IOI_NAMES) == 99


def test_ioi_example() -> None:
    positive, negative, answer = tasks.get("ioi").example()
    assert positive == "Then, Richard and Nicole went to the garden. Nicole gave a bone to"
    assert negative == "Then, Richard and Alicia went to the garden. Nicole gave a bone to"
    assert answer == " Richard"


def test_ioi_lengths_and_answers(gpt2_tokenizer: PreTrainedTokenizerFast, ioi: tasks.TaskData):
    check_pairs(gpt2_tokenizer, ioi)
    per_template: dict[int, set[int]] = {}
    for info, length in zip(ioi.prompt_info, ioi.lengths, strict=True):
        per_template.setdefault(info["template"], set()).add(length)
    assert all(len(lengths) == 1 for lengths in per_template.values())
    assert len(per_template) == 30
    assert {info["order"] for info in ioi.prompt_info} == {"ABBA", "BABA"}
    # The canonical template is 15 tokens under GPT-2.
    assert per_template[0] == {15}
    assert ioi.seq_len is None
    for info, answer, wrong in zip(ioi.prompt_info, ioi.answer_ids, ioi.wrong_ids, strict=True):
        assert answer == encode(gpt2_tokenizer, " " + info["io"])
        assert wrong == encode(gpt2_tokenizer, " " + info["s"])


def test_ioi_negatives(ioi: tasks.TaskData) -> None:
    for pos, neg, cor, info in zip(
        ioi.positives, ioi.negatives, ioi.corrupted, ioi.prompt_info, strict=True
    ):
        template = vocab.IOI_TEMPLATES[info["template"]]
        io, s, c = info["io"], info["s"], info["c"]
        x, y, z = info["corrupted_names"]
        place, obj = info["place"], info["object"]
        # Positive names S twice; the negative swaps S's first mention for a third name C.
        assert pos == fill(template, io, s, s, place, obj)
        assert neg == fill(template, io, c, s, place, obj)
        assert len({io, s, c}) == 3
        # ACDC's ABC corruption: three fresh names, none of them the answer IO or S.
        assert cor == fill(template, x, y, z, place, obj)
        assert len({x, y, z}) == 3 and not {x, y, z} & {io, s}


def test_ioi_deterministic(gpt2_tokenizer: PreTrainedTokenizerFast, ioi: tasks.TaskData) -> None:
    again = tasks.get("ioi").generate(gpt2_tokenizer, n=N, seed=0)
    other = tasks.get("ioi").generate(gpt2_tokenizer, n=N, seed=1)
    assert again == ioi
    assert other.positives != ioi.positives


def test_ioi_not_enough_names(gpt2_tokenizer: PreTrainedTokenizerFast) -> None:
    with pytest.raises(ValueError, match="only 0 of 2 IOI names are a single token"):
        IOITask(names=("Zxqwvbnm", "Qqqzzzxxy")).generate(gpt2_tokenizer, n=5)
    with pytest.raises(ValueError, match=r"\[IO\] once and \[S\] twice"):
        IOITask(templates=("Then, [S] and [IO] went home. [IO] said to",))


# --- greater-than ------------------------------------------------------------------------


def test_greater_than(gpt2_tokenizer: PreTrainedTokenizerFast, greater_than: tasks.TaskData):
    check_pairs(gpt2_tokenizer, greater_than)
    assert greater_than.seq_len == 12
    two_digit = {encode(gpt2_tokenizer, f"{y:02d}")[0]: y for y in range(100)}
    assert len(two_digit) == 100
    for pos, neg, info, later, not_later in zip(
        greater_than.positives,
        greater_than.negatives,
        greater_than.prompt_info,
        greater_than.answer_ids,
        greater_than.wrong_ids,
        strict=True,
    ):
        xx, yy = info["century"], info["yy"]
        assert 1200 <= info["year"] <= 1999 and 2 <= yy <= 98
        assert pos == f"The {info['noun']} lasted from the year {xx}{yy:02d} to the year {xx}"
        assert neg == pos.replace(f"{xx}{yy:02d}", f"{xx}01")
        tokens = encode(gpt2_tokenizer, pos)
        assert tokens[6:8] == encode(gpt2_tokenizer, f" {xx}") + encode(gpt2_tokenizer, f"{yy:02d}")
        assert sorted(two_digit[i] for i in later) == list(range(yy + 1, 100))
        assert sorted(two_digit[i] for i in not_later) == list(range(yy + 1))
    # Balanced: every YY in 02..98 appears (250 prompts cycle through the 97 values).
    assert {info["yy"] for info in greater_than.prompt_info} == set(range(2, 99))


def test_greater_than_hanna_template(gpt2_tokenizer: PreTrainedTokenizerFast) -> None:
    data = tasks.get("greater-than", template="hanna").generate(gpt2_tokenizer, n=20, seed=3)
    assert data.seq_len == 10
    for prompt, info in zip(data.positives, data.prompt_info, strict=True):
        assert prompt.endswith(f"{info['century']}{info['yy']:02d} to {info['century']}")


def test_greater_than_deterministic(
    gpt2_tokenizer: PreTrainedTokenizerFast, greater_than: tasks.TaskData
) -> None:
    assert tasks.get("greater-than").generate(gpt2_tokenizer, n=N, seed=0) == greater_than
    unbalanced = GreaterThanTask(balanced=False).generate(gpt2_tokenizer, n=N, seed=0)
    assert unbalanced.positives != greater_than.positives


def test_greater_than_invalid_years(gpt2_tokenizer: PreTrainedTokenizerFast) -> None:
    with pytest.raises(ValueError, match="yy_range"):
        GreaterThanTask(yy_range=(1, 98))
    # " 2013" and friends are single GPT-2 tokens, so no year of the 20th century splits.
    twentieth = {"centuries": (20,), "yy_range": (10, 19)}
    with pytest.raises(ValueError, match="no year in centuries"):
        GreaterThanTask(**twentieth, form="two-digit").generate(gpt2_tokenizer, n=5)
    with pytest.raises(ValueError, match="neither as"):
        GreaterThanTask(**twentieth).generate(gpt2_tokenizer, n=5)
    with pytest.raises(ValueError, match="form="):
        GreaterThanTask(form="three-digit")


# --- docstring ---------------------------------------------------------------------------


def test_docstring(gpt2_tokenizer: PreTrainedTokenizerFast, docstring: tasks.TaskData) -> None:
    check_pairs(gpt2_tokenizer, docstring)
    # The paper's 41 (with BOS) is under attn-only-4l's tokenizer; GPT-2 has no multi-space
    # tokens, so each four-space indent costs three " " tokens: 52 without BOS.
    assert docstring.seq_len == 52
    for pos, neg, info, answer, wrong in zip(
        docstring.positives,
        docstring.negatives,
        docstring.prompt_info,
        docstring.answer_ids,
        docstring.wrong_ids,
        strict=True,
    ):
        p1, p2, m1, m2, m3, s1 = info["def_args"]
        assert pos.startswith(f"\ndef {info['method']}(self, {p1}, {p2}, {m1}, {m2}, {m3}, {s1}):")
        assert f":param {m1}:" in pos and f":param {m2}:" in pos and pos.endswith("    :param")
        assert info["answer"] == m3
        assert answer == encode(gpt2_tokenizer, " " + m3)
        assert len(wrong) == 10
        # random_random: the matching def args and the doc args are fresh names.
        n_def = info["negative_def_args"]
        assert n_def[:2] == [p1, p2] and n_def[5] == s1
        assert not set(n_def[2:5]) & set(info["def_args"])
        assert not set(info["negative_doc_args"]) & set(info["def_args"] + n_def)
        assert pos.count("\n") == neg.count("\n") == 6


def test_docstring_configurable(gpt2_tokenizer: PreTrainedTokenizerFast) -> None:
    task = DocstringTask(n_matching=4, n_def_prefix=1, n_def_suffix=0, arg_description_len=3)
    data = task.generate(gpt2_tokenizer, n=10, seed=0)
    assert len(data.prompt_info[0]["def_args"]) == 5
    assert data.positives[0].count(":param") == 4
    assert data.seq_len is not None
    with pytest.raises(ValueError, match="n_matching=0"):
        DocstringTask(n_matching=0)


def test_docstring_deterministic(
    gpt2_tokenizer: PreTrainedTokenizerFast, docstring: tasks.TaskData
) -> None:
    assert tasks.get("docstring").generate(gpt2_tokenizer, n=N, seed=0) == docstring
    assert (
        tasks.get("docstring").generate(gpt2_tokenizer, n=5, seed=9).positives
        != (docstring.positives[:5])
    )


# --- any tokenizer -----------------------------------------------------------------------


def word_level_tokenizer() -> PreTrainedTokenizerFast:
    """A word-level tokenizer over the task vocabulary, as a model organism might ship."""
    split = pre_tokenizers.Split(
        Regex(r" ?[A-Za-z]+| ?\d\d| ?[^\sA-Za-z\d]+|\s+(?!\S)|\s+"), behavior="isolated"
    )
    texts = [w for words in (vocab.IOI_NAMES, vocab.IOI_PLACES, vocab.IOI_OBJECTS) for w in words]
    texts += list(vocab.GREATER_THAN_NOUNS) + list(vocab.DOCSTRING_VARIABLE_NAMES)
    texts += list(vocab.DOCSTRING_DESCRIPTION_WORDS)
    texts = [f" {w}" for w in texts] + texts + [f"{y:02d}" for y in range(100)]
    texts += [f" {c}" for c in vocab.GREATER_THAN_CENTURIES]
    texts += list(vocab.IOI_TEMPLATES) + list(vocab.GREATER_THAN_TEMPLATES.values())
    texts += [tasks.get("docstring").example()[0]]
    pieces = {p for t in texts for p, _ in split.pre_tokenize_str(t)}
    pieces -= {"[", "]", " [", "{", "}", " {", "]."}
    words = {"<unk>": 0, "<bos>": 1} | {p: i + 2 for i, p in enumerate(sorted(pieces))}
    backend = Tokenizer(models.WordLevel(words, unk_token="<unk>"))
    backend.pre_tokenizer = split
    return PreTrainedTokenizerFast(tokenizer_object=backend, unk_token="<unk>", bos_token="<bos>")


@pytest.mark.parametrize("name", ["ioi", "greater-than", "docstring"])
def test_word_level_tokenizer(name: str) -> None:
    tokenizer = word_level_tokenizer()
    data = tasks.get(name).generate(tokenizer, n=40, seed=0)
    unk = tokenizer.unk_token_id
    for i in range(len(data)):
        for prompt in (data.positives[i], data.negatives[i], data.corrupted[i]):
            ids = encode(tokenizer, prompt)
            assert len(ids) == data.lengths[i] and unk not in ids, prompt
        assert unk not in data.answer_ids[i] + data.wrong_ids[i]
    if name == "ioi":
        info = data.prompt_info[0]
        assert data.answer_ids[0] == [tokenizer.convert_tokens_to_ids(" " + info["io"])]


def test_unknown_words_are_not_single_tokens() -> None:
    tokenizer = word_level_tokenizer()
    with pytest.raises(ValueError, match="only 2 of 4 IOI names"):
        IOITask(names=("Mary", "John", "Xyzzy", "Plugh")).generate(tokenizer, n=3)


@settings(max_examples=8, deadline=None)
@given(seed=st.integers(min_value=0, max_value=2**32 - 1), name=st.sampled_from(tasks.names()))
def test_any_seed_gives_equal_length_pairs(
    gpt2_tokenizer: PreTrainedTokenizerFast, seed: int, name: str
) -> None:
    tokenizer = gpt2_tokenizer
    data = tasks.get(name).generate(tokenizer, n=16, seed=seed)
    for i in range(len(data)):
        lengths = {len(encode(tokenizer, p)) for p in (data.positives[i], data.negatives[i])}
        assert lengths == {data.lengths[i]}
        assert len(encode(tokenizer, data.corrupted[i])) == data.lengths[i]
