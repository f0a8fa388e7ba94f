"""User-defined tasks from lists and files: happy paths and validation errors."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
import torch
import yaml
from transformers import PreTrainedTokenizerFast

from circuits import tasks

POSITIVES = [
    "When Mary and John went to the store, John gave a drink to",
    "When Tom and Anna went to the park, Anna gave a ball to",
]
NEGATIVES = [
    "When Mary and John went to the store, Kate gave a drink to",
    "When Tom and Anna went to the park, Paul gave a ball to",
]
ANSWERS = [" Mary", " Tom"]
WRONG = [" John", [" Anna", " Paul"]]


def test_from_lists(gpt2_tokenizer: PreTrainedTokenizerFast) -> None:
    task = tasks.from_lists(
        POSITIVES, NEGATIVES, ANSWERS, WRONG, name="mini-ioi", ground_truth_heads=["L9H9", (10, 0)]
    )
    assert task.metric_name == "logit_diff"
    data = task.generate(gpt2_tokenizer)
    assert data.task == "mini-ioi"
    assert data.positives == POSITIVES and data.corrupted == NEGATIVES
    assert data.answer_ids == [gpt2_tokenizer.encode(" Mary"), gpt2_tokenizer.encode(" Tom")]
    assert data.wrong_ids[1] == gpt2_tokenizer.encode(" Anna Paul")
    assert data.lengths == [len(gpt2_tokenizer.encode(p)) for p in POSITIVES]
    assert task.ground_truth().heads == {(9, 9), (10, 0)}
    assert task.info().positive == POSITIVES[0]
    assert task.generate(gpt2_tokenizer, n=1, seed=0) == task.generate(gpt2_tokenizer, n=1, seed=0)
    logits = torch.zeros(2, 50257)
    logits[0, data.answer_ids[0][0]] = 2.0
    assert task.metric(logits, data, reduce=False).tolist() == [2.0, 0.0]


def test_without_wrong_answers(gpt2_tokenizer: PreTrainedTokenizerFast) -> None:
    task = tasks.from_lists(POSITIVES, NEGATIVES, ANSWERS)
    assert task.metric_name == "answer_logprob"
    data = task.generate(gpt2_tokenizer)
    assert data.wrong_ids == [[], []]
    with pytest.raises(ValueError, match="has no ground truth"):
        task.ground_truth()
    with pytest.raises(ValueError, match="single ground truth"):
        task.ground_truth(variant="acdc")


@pytest.mark.parametrize(
    ("kwargs", "message"),
    [
        ({"positives": []}, "positives is empty"),
        ({"negatives": NEGATIVES[:1]}, "negatives has 1 prompts but positives has 2"),
        ({"answers": ANSWERS[:1]}, "answers has 1 entries but there are 2 positives"),
        ({"answers": [" Mary", []]}, "every positive needs at least one answer"),
        ({"answers": [" Mary", 3]}, r"answers\[1\] is 3"),
        ({"wrong_answers": [" John"]}, "wrong_answers has 1 entries"),
        ({"positives": "one prompt"}, "positives must be a list of strings"),
        ({"negatives": ["a", ""]}, r"negatives\[1\] is ''"),
        ({"corrupted": ["x"]}, "corrupted has 1 prompts"),
        ({"ground_truth_heads": []}, "ground_truth_heads is empty"),
        ({"ground_truth_heads": ["9.9"]}, "not a head"),
    ],
)
def test_list_validation(kwargs: dict[str, object], message: str) -> None:
    arguments: dict[str, object] = {
        "positives": POSITIVES,
        "negatives": NEGATIVES,
        "answers": ANSWERS,
    }
    arguments.update(kwargs)
    with pytest.raises(ValueError, match=message):
        tasks.from_lists(**arguments)  # type: ignore[arg-type]


def test_tokenizer_validation(gpt2_tokenizer: PreTrainedTokenizerFast) -> None:
    unequal = tasks.from_lists(POSITIVES, [NEGATIVES[0], "Too short"], ANSWERS)
    with pytest.raises(ValueError, match=r"negative 1 .* has 2 tokens but positive 1"):
        unequal.generate(gpt2_tokenizer)
    multi = tasks.from_lists(POSITIVES, NEGATIVES, [" Mary", " Tomasina Smith"])
    with pytest.raises(ValueError, match="answers must be single tokens"):
        multi.generate(gpt2_tokenizer)
    no_space = tasks.from_lists(POSITIVES, NEGATIVES, [" Mary", "Tomasina"])
    with pytest.raises(ValueError, match="mind the leading space"):
        no_space.generate(gpt2_tokenizer)
    with pytest.raises(ValueError, match="n=3, but it has 2"):
        tasks.from_lists(POSITIVES, NEGATIVES, ANSWERS).generate(gpt2_tokenizer, n=3)


def test_from_json_and_yaml(gpt2_tokenizer: PreTrainedTokenizerFast, tmp_path: Path) -> None:
    spec = {
        "description": "two IOI prompts",
        "positives": POSITIVES,
        "negatives": NEGATIVES,
        "answers": ANSWERS,
        "wrong_answers": WRONG,
        "ground_truth_file": "gt.json",
    }
    tasks.get("ioi").ground_truth("paper").save(tmp_path / "gt.json")
    (tmp_path / "mini.json").write_text(json.dumps(spec))
    (tmp_path / "mini.yaml").write_text(yaml.safe_dump(spec))
    from_json = tasks.from_file(tmp_path / "mini.json")
    from_yaml = tasks.from_file(tmp_path / "mini.yaml")
    assert from_json.name == "mini" and from_json.description == "two IOI prompts"
    assert from_json.generate(gpt2_tokenizer) == from_yaml.generate(gpt2_tokenizer)
    assert (11, 3) in from_yaml.ground_truth().heads


@pytest.mark.parametrize(
    ("name", "text", "message"),
    [
        ("t.txt", "{}", "use a .json, .yaml or .yml file"),
        ("t.json", "{not json", "does not parse"),
        ("t.yaml", "- a\n- b\n", "expected a mapping"),
        ("t.json", json.dumps({"positives": ["a"], "negatives": ["b"]}), r"missing key\(s\)"),
        (
            "t.json",
            json.dumps({"positives": ["a"], "negatives": ["b"], "answers": ["c"], "x": 1}),
            r"unknown key\(s\) \['x'\]",
        ),
        (
            "t.json",
            json.dumps(
                {
                    "positives": ["a"],
                    "negatives": ["b"],
                    "answers": ["c"],
                    "ground_truth_heads": ["L0H0"],
                    "ground_truth_file": "gt.json",
                }
            ),
            "not both",
        ),
    ],
)
def test_file_validation(name: str, text: str, message: str, tmp_path: Path) -> None:
    (tmp_path / name).write_text(text)
    with pytest.raises(ValueError, match=message):
        tasks.from_file(tmp_path / name)


def test_missing_file(tmp_path: Path) -> None:
    with pytest.raises(FileNotFoundError, match="does not exist"):
        tasks.from_file(tmp_path / "none.yaml")


def test_words_a_word_level_tokenizer_does_not_know_are_refused() -> None:
    from circuits.organisms.tokenizer import build_tokenizer

    tokenizer = build_tokenizer("ioi")  # the organisms' word-level tokenizer
    known = "Then, Bradley and Crystal had a long argument. Afterwards Bradley said to"
    other = "Then, Bradley and Crystal had a long argument. Afterwards Crystal said to"
    ok = tasks.from_lists([known], [other], [" Crystal"]).generate(tokenizer)
    assert len(ok) == 1
    unknown_word = known.replace("Crystal", "Zebra")
    with pytest.raises(ValueError, match=r"'Zebra' is not in this tokenizer's vocabulary"):
        tasks.from_lists([unknown_word], [other], [" Crystal"]).generate(tokenizer)
    with pytest.raises(ValueError, match=r"answer of prompt 0: 'Zebra'"):
        tasks.from_lists([known], [other], [" Zebra"]).generate(tokenizer)
