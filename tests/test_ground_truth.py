"""Shipped ground truths parse to their published head sets; the loader validates."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from circuits import ground_truth
from circuits.ground_truth import Edge, GroundTruth, Provenance


def heads(text: str) -> frozenset[tuple[int, int]]:
    """Heads from 'L.H' pairs separated by commas."""
    return frozenset(tuple(int(x) for x in h.strip().split(".")) for h in text.split(","))


IOI_ACDC = heads(
    "9.9, 10.0, 9.6, 10.10, 10.6, 10.2, 10.1, 11.2, 9.7, 9.0, 11.9, 10.7, 11.10, 7.3, 7.9, "
    "8.6, 8.10, 5.5, 5.8, 5.9, 6.9, 0.1, 0.10, 3.0, 2.2, 4.11"
)
GREATER_THAN = heads("0.1, 0.3, 0.5, 5.5, 6.1, 6.9, 7.10, 8.11, 9.1")
DOCSTRING_ACDC = heads("0.5, 1.2, 1.4, 2.0, 3.0, 3.6")


def test_shipped_files() -> None:
    assert ground_truth.available() == [
        ("docstring", "acdc"),
        ("docstring", "paper"),
        ("docstring", "smollm2-135m"),
        ("greater-than", "acdc"),
        ("greater-than", "paper"),
        ("greater-than", "smollm2-135m"),
        ("ioi", "acdc"),
        ("ioi", "paper"),
        ("ioi", "smollm2-135m"),
    ]


def test_ioi_head_sets() -> None:
    acdc = ground_truth.load("ioi", "acdc")
    paper = ground_truth.load("ioi", "paper")
    assert len(IOI_ACDC) == 26
    assert acdc.heads == IOI_ACDC
    assert paper.heads == (IOI_ACDC - {(9, 0)}) | {(11, 3)}
    assert acdc.head_classes["name mover"] == heads("9.9, 10.0, 9.6")
    assert acdc.head_classes["negative name mover"] == heads("10.7, 11.10")
    assert acdc.head_classes["s-inhibition"] == heads("7.3, 7.9, 8.6, 8.10")
    assert acdc.head_classes["induction"] == heads("5.5, 5.8, 5.9, 6.9")
    assert acdc.head_classes["duplicate token"] == heads("0.1, 0.10, 3.0")
    assert acdc.head_classes["previous token"] == heads("2.2, 4.11")
    assert frozenset().union(*acdc.head_classes.values()) == acdc.heads
    assert frozenset().union(*paper.head_classes.values()) == paper.heads


def test_greater_than_head_sets_and_mlps() -> None:
    acdc = ground_truth.load("greater-than", "acdc")
    paper = ground_truth.load("greater-than", "paper")
    assert acdc.heads == paper.heads == GREATER_THAN
    assert acdc.mlps == frozenset({0, 1, 2, 3, 8, 9, 10, 11})
    assert acdc.mlp_classes == {"MEARLY": {0, 1, 2, 3}, "MLATE": {8, 9, 10, 11}}
    assert paper.mlps == frozenset()


def test_docstring_head_sets_and_edges() -> None:
    acdc = ground_truth.load("docstring", "acdc")
    paper = ground_truth.load("docstring", "paper")
    assert acdc.heads == DOCSTRING_ACDC
    assert paper.heads == (DOCSTRING_ACDC - {(1, 2)}) | {(1, 0)}
    assert len(acdc.edges) == 37
    assert len(set(acdc.edges)) == 37
    # Every head that sends or receives an edge is a circuit head, and only those.
    edge_heads = {
        (int(e.receiver.split(".")[1]), e.receiver_head)
        for e in acdc.edges
        if e.receiver_head is not None
    }
    assert edge_heads == acdc.heads
    senders = {(s, r, qkv) for s, r, qkv in acdc.head_pairs}
    assert ((0, 5), (1, 4), "v") in senders
    assert ((2, 0), (3, 6), "k") in senders
    assert ((1, 4), (3, 0), "q") in senders
    outputs = [e for e in acdc.edges if e.receiver == "blocks.3.hook_resid_post"]
    assert {e.sender_head for e in outputs} == {0, 6}


@pytest.mark.parametrize(("task", "variant"), ground_truth.available())
def test_provenance_and_round_trip(task: str, variant: str, tmp_path: Path) -> None:
    gt = ground_truth.load(task, variant)
    assert gt.task == task and gt.variant == variant
    assert gt.provenance.source
    if variant == gt.model:  # a reference computed by this toolkit: url is the script
        assert (Path(ground_truth.__file__).parents[2] / gt.provenance.url).is_file()
    else:
        assert gt.provenance.url.startswith("https://")
    assert gt.provenance.version
    assert ground_truth.load_file(gt.save(tmp_path / "gt.json")) == gt


def test_head_mask_is_layer_major() -> None:
    gt = ground_truth.load("docstring", "acdc")
    mask = gt.head_mask(4, 8)
    assert len(mask) == 32
    assert [i for i, m in enumerate(mask) if m] == [5, 10, 12, 16, 24, 30]
    with pytest.raises(ValueError, match="does not fit"):
        gt.head_mask(2, 8)


def organism_json(**changes: object) -> dict[str, object]:
    data: dict[str, object] = {
        "schema_version": 1,
        "task": "ioi",
        "variant": "organism",
        "model": "organism-ioi",
        "n_layers": 2,
        "n_heads": 4,
        "heads": ["L0H1", [1, 2]],
        "head_classes": {"name mover": ["L1H2"]},
        "provenance": {"source": "s", "url": "u", "version": "v"},
    }
    data.update(changes)
    return data


def test_load_organism_file(tmp_path: Path) -> None:
    path = tmp_path / "ground_truth.json"
    path.write_text(json.dumps(organism_json(extra={"verified": True})))
    gt = ground_truth.load_file(path)
    assert gt.heads == {(0, 1), (1, 2)}
    assert gt.labels == ["L0H1", "L1H2"]
    assert gt.extra["verified"] is True


@pytest.mark.parametrize(
    ("changes", "message"),
    [
        ({"heads": []}, "`heads` is empty"),
        ({"heads": ["9.9"]}, "not a head"),
        ({"heads": ["L0H1", "L0H1"]}, "listed twice"),
        ({"heads": ["L2H0"]}, "outside the model's 2 layers"),
        ({"heads": ["L0H4"]}, "outside the model's 4 heads"),
        ({"head_classes": {"x": ["L0H3"]}}, "not in `heads`"),
        ({"schema_version": 2}, "schema_version 2"),
        ({"colour": "red"}, "unknown field"),
        ({"provenance": {"source": "s"}}, "provenance"),
        ({"mlp_classes": {"early": [0]}}, "not in `mlps`"),
        (
            {
                "edges": [
                    {
                        "receiver": "blocks.1.hook_q_input",
                        "receiver_head": None,
                        "sender": "blocks.0.hook_resid_pre",
                        "sender_head": None,
                    }
                ]
            },
            "has a head axis",
        ),
    ],
)
def test_invalid_files(changes: dict[str, object], message: str, tmp_path: Path) -> None:
    path = tmp_path / "gt.json"
    path.write_text(json.dumps(organism_json(**changes)))
    with pytest.raises(ValueError, match=message):
        ground_truth.load_file(path)


def test_missing_and_unknown() -> None:
    with pytest.raises(FileNotFoundError):
        ground_truth.load_file("/nonexistent/ground_truth.json")
    with pytest.raises(ValueError, match="shipped: docstring/acdc"):
        ground_truth.load("ioi", "best")


def test_construct_and_save(tmp_path: Path) -> None:
    gt = GroundTruth(
        task="docstring",
        variant="organism",
        model="organism-docstring",
        heads={(0, 0), (1, 1)},
        provenance=Provenance("s", "u", "v"),
        edges=[Edge("blocks.1.hook_k_input", 1, "blocks.0.attn.hook_result", 0)],
    )
    assert gt.head_pairs == {((0, 0), (1, 1), "k")}
    assert ground_truth.load_file(gt.save(tmp_path / "g.json")) == gt
