"""Model organisms: shipped checkpoints recompute their verification; training is reproducible."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
import torch

from circuits import ground_truth, tasks
from circuits.organisms.causal import GRAPHS
from circuits.organisms.siit import TrainConfig, Trainer, build_pool
from circuits.organisms.tokenizer import UNK, build_tokenizer
from circuits.organisms.train import fingerprint
from circuits.organisms.verify import (
    CIRCUIT_HEAD_MAX_KEPT,
    MIN_ACCURACY,
    NON_CIRCUIT_MIN_KEPT,
    verify,
)
from interp import ORGANISMS, load_model
from interp.models import ORGANISMS_DIR

pytestmark = pytest.mark.usefixtures("one_thread")

TASK_OF = {f"organism-{task}": task for task in GRAPHS}
SHIPPED = [name for name in ORGANISMS if (ORGANISMS_DIR / name / "model.safetensors").is_file()]
FALLS_SHORT = {
    "organism-docstring": "SIIT did not make L1H0 and L3H1 necessary within the training "
    "budget (docs/organisms.md, Limits)",
}
"""Organisms whose shipped checkpoint misses the spec, and why (their spec tests xfail)."""


def shipped(name: str) -> tuple[object, dict]:
    """The organism through interp.load_model, and its stored verification."""
    model = load_model(name, attn_kernel="eager", device="cpu")
    stored = json.loads((ORGANISMS_DIR / name / "verification.json").read_text())
    return model, stored


@pytest.fixture(scope="module", params=SHIPPED)
def organism(request: pytest.FixtureRequest) -> tuple[str, object, dict, dict]:
    name = request.param
    model, stored = shipped(name)
    # One thread: on a loaded machine tiny ops otherwise wait for a descheduled one.
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    try:
        recomputed = verify(model, TASK_OF[name], [tuple(h) for h in _heads(stored["circuit"])])
    finally:
        torch.set_num_threads(threads)
    return name, model, stored, recomputed


def _heads(labels: list[str]) -> list[tuple[int, int]]:
    return [ground_truth.parse_head(label, "verification.json") for label in labels]


def test_every_organism_is_shipped() -> None:
    assert list(ORGANISMS) == SHIPPED


def _spec(request: pytest.FixtureRequest, name: str) -> None:
    """Mark the spec tests of an organism known to fall short as expected failures."""
    if name in FALLS_SHORT:
        request.applymarker(pytest.mark.xfail(strict=True, reason=FALLS_SHORT[name]))


def test_accuracy(organism, request) -> None:
    _spec(request, organism[0])
    assert organism[3]["accuracy"] >= MIN_ACCURACY


def test_each_circuit_head_is_necessary(organism, request) -> None:
    _spec(request, organism[0])
    single = organism[3]["single_head_ablation"]
    kept = {label: single[label]["kept"] for label in organism[3]["circuit"]}
    assert max(kept.values()) <= CIRCUIT_HEAD_MAX_KEPT, kept


def test_non_circuit_heads_are_not_needed(organism) -> None:
    assert organism[3]["non_circuit_ablation"]["mean"]["kept"] >= NON_CIRCUIT_MIN_KEPT


def test_verification_passes(organism, request) -> None:
    _spec(request, organism[0])
    assert organism[3]["summary"]["passed"]


def test_verification_json_matches_recomputation(organism) -> None:
    _, _, stored, recomputed = organism
    assert stored["circuit"] == recomputed["circuit"]
    assert recomputed["accuracy"] == pytest.approx(stored["accuracy"], abs=0.005)
    assert stored["summary"]["passed"] == recomputed["summary"]["passed"]
    assert recomputed["full_metric"] == pytest.approx(stored["full_metric"], rel=1e-3, abs=1e-4)
    for label, values in recomputed["single_head_ablation"].items():
        expected = stored["single_head_ablation"][label]["kept"]
        assert values["kept"] == pytest.approx(expected, abs=2e-3), label
    for ablation in ("mean", "resample"):
        expected = stored["non_circuit_ablation"][ablation]["kept"]
        got = recomputed["non_circuit_ablation"][ablation]["kept"]
        assert got == pytest.approx(expected, abs=2e-3), ablation


def test_ground_truth_file(organism) -> None:
    name, model, stored, _ = organism
    gt = ground_truth.load_file(ORGANISMS_DIR / name / "ground_truth.json")
    assert gt.model == name and gt.variant == "organism" and gt.task == TASK_OF[name]
    assert ground_truth.head_labels(gt.heads) == stored["circuit"]
    assert (gt.n_layers, gt.n_heads) == (model.n_layers, model.n_heads)
    # A majority of heads lies outside the circuit.
    assert len(gt.heads) < model.n_layers * model.n_heads / 2


def test_non_circuit_heads_are_active(organism) -> None:
    """Non-circuit heads write real outputs (a discovery method cannot just find non-zeros)."""
    name, model, _, _ = organism
    data = tasks.get(TASK_OF[name]).generate(model.tokenizer, n=50, seed=7)
    tokens_BS, mask_BS = model.to_tokens(data.positives)
    norms = {}

    def save(z_BSHd: torch.Tensor, hook) -> None:
        result_BSHD = torch.einsum(
            "bshd,hdm->bshm", z_BSHd, model.model.blocks[hook.layer()].attn.W_O
        )
        norms[hook.layer()] = result_BSHD[mask_BS].norm(dim=-1).mean(0)

    hooks = [(f"blocks.{layer}.attn.hook_z", save) for layer in range(model.n_layers)]
    with torch.no_grad(), model.hooks(hooks):
        model(tokens_BS, mask_BS)
    norm_H = torch.cat([norms[layer] for layer in range(model.n_layers)])
    gt = ground_truth.load_file(ORGANISMS_DIR / name / "ground_truth.json")
    outside = ~torch.as_tensor(gt.head_mask(model.n_layers, model.n_heads))
    assert bool((norm_H[outside] > 0.05 * norm_H[~outside].mean()).all()), norm_H


def test_checkpoints_are_small() -> None:
    total = sum((ORGANISMS_DIR / name / "model.safetensors").stat().st_size for name in SHIPPED)
    assert total < 6 * 2**20


@pytest.mark.parametrize("task", list(GRAPHS))
def test_tokenizer_covers_task(task: str) -> None:
    tokenizer = build_tokenizer(task)
    data = tasks.get(task).generate(tokenizer, n=60, seed=3)
    unk = tokenizer.unk_token_id
    for prompt in data.positives + data.negatives + data.corrupted:
        assert unk not in tokenizer.encode(prompt, add_special_tokens=False), prompt
    assert (
        tokenizer.decode(tokenizer.encode(data.positives[0], add_special_tokens=False))
        == (data.positives[0])
    )


def test_years_are_two_tokens() -> None:
    tokenizer = build_tokenizer("greater-than")
    pieces = tokenizer.convert_ids_to_tokens(tokenizer.encode(" 1732", add_special_tokens=False))
    assert pieces == [" 17", "32"]


@pytest.mark.parametrize("task", list(GRAPHS))
def test_causal_graph_answers_positives(task: str) -> None:
    tokenizer = build_tokenizer(task)
    graph = GRAPHS[task](tokenizer.get_vocab())
    data = tasks.get(task).generate(tokenizer, n=40, seed=5)
    pool = build_pool(data, tokenizer, n_ctx=64)
    output = graph.run(pool.tokens_NS[: len(data)], pool.ends_N[: len(data)])["output"]
    for row, answers in zip(output, data.answer_ids, strict=True):
        assert int(row.argmax()) in answers


def test_interchange_changes_the_answer() -> None:
    """Swapping the S-inhibition value between IOI prompts moves the target as the graph says."""
    tokenizer = build_tokenizer("ioi")
    graph = GRAPHS["ioi"](tokenizer.get_vocab())
    data = tasks.get("ioi").generate(tokenizer, n=40, seed=5)
    pool = build_pool(data, tokenizer, n_ctx=64)
    tokens, ends = pool.tokens_NS[:2], pool.ends_N[:2]
    values = graph.run(tokens, ends)
    swapped = values["inhibition"].flip(0)
    out = graph.run(tokens, ends, {"inhibition": (swapped, torch.tensor([True, False]))})
    # Nothing of prompt 0 is inhibited any more (unless both share the subject): S wins 2:1.
    if data.prompt_info[0]["s"] != data.prompt_info[1]["s"]:
        assert int(out["output"][0].argmax()) == data.wrong_ids[0][0]
    assert torch.equal(out["output"][1], values["output"][1])


def test_training_is_reproducible(organism) -> None:
    """The first steps of the stored training config give the stored losses."""
    training = organism[2]["training"]
    config = TrainConfig(**training["config"])
    expected = training["fingerprint"]["total_losses"]
    assert fingerprint(config, len(expected)) == pytest.approx(expected, rel=1e-5)


def test_unknown_task_is_refused() -> None:
    with pytest.raises(ValueError, match="unknown task 'ioii'"):
        Trainer(TrainConfig(task="ioii"), progress=False)


def test_stored_files(organism) -> None:
    name = organism[0]
    folder = Path(ORGANISMS_DIR / name)
    for file in ("config.json", "model.safetensors", "tokenizer.json", "tokenizer_config.json"):
        assert (folder / file).is_file(), file
    # load_model reads tokenizer_config.json: unknown words become <unk>, not a name.
    assert organism[1].tokenizer.unk_token == UNK
