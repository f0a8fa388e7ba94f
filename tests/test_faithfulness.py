"""Faithfulness by ablation on a tiny random GPT-2: identities, keys and error messages."""

from __future__ import annotations

import dataclasses

import numpy as np
import pytest

from circuits import tasks
from circuits.faithfulness import (
    MIB_FRACTIONS,
    CircuitAblator,
    faithfulness_curve,
    faithfulness_report,
)
from circuits.ground_truth import GroundTruth, Provenance
from interp import HookedModel, load_model


@pytest.fixture(scope="module")
def model(tiny_gpt2_dir) -> HookedModel:
    return load_model(tiny_gpt2_dir, device="cpu")


@pytest.fixture(scope="module")
def task() -> tasks.Task:
    return tasks.get("ioi")


@pytest.fixture(scope="module")
def data(model: HookedModel, task: tasks.Task) -> tasks.TaskData:
    return task.generate(model.tokenizer, n=6, seed=0)


@pytest.mark.parametrize("ablation", ["mean", "resample", "counterfactual"])
def test_ablating_nothing_keeps_everything(model, task, data, ablation) -> None:
    ablator = CircuitAblator(model, task, data, ablation=ablation, seed=0)
    everything = ablator.kept(np.ones(8, dtype=bool))
    assert everything["kept"] == 1.0
    assert everything["kept_normalised"] == 1.0
    assert everything["metric"] == ablator.full_metric
    assert ablator.kept([])["metric"] == pytest.approx(ablator.empty_metric)
    assert ablator.empty_metric != pytest.approx(ablator.full_metric)


@pytest.mark.parametrize("ablation", ["mean", "resample", "counterfactual"])
def test_ablating_with_the_prompt_itself_changes_nothing(model, task, data, ablation) -> None:
    # One prompt whose corrupted version is itself: its mean z (and its only donor) is its
    # own z, so replacing every head's z must leave the metric unchanged.
    one = data.subset([0])
    own = dataclasses.replace(one, corrupted=list(one.positives))
    ablator = CircuitAblator(model, task, own, ablation=ablation, seed=0)
    assert ablator.empty_metric == pytest.approx(ablator.full_metric, abs=1e-5)


def test_report_keys_and_random_circuits(model, task, data) -> None:
    ablator = CircuitAblator(model, task, data)
    scores_H = np.arange(8.0)
    report = faithfulness_report(
        ablator,
        {"found": ["L0H1", "L1H2"], "ground_truth": [(0, 0), (1, 3), (1, 2)]},
        rankings=[scores_H, -scores_H],
        n_random=3,
        seed=1,
    )
    assert set(report) == {
        "ablation",
        "metric_name",
        "n_prompts",
        "full_metric",
        "empty_metric",
        "cpr",
        "cmd",
        "curves",
        "found",
        "ground_truth",
        "random",
    }
    assert report["metric_name"] == "logit_diff"
    assert report["found"]["size"] == 2
    assert report["ground_truth"]["size"] == 3
    assert report["found"] == ablator.kept(["L0H1", "L1H2"])
    assert report["random"]["size"] == 2
    assert report["random"]["n"] == 3
    assert set(report["random"]["kept"]) == {"mean", "std"}
    curves = [faithfulness_curve(ablator, scores) for scores in (scores_H, -scores_H)]
    assert report["cpr"]["mean"] == pytest.approx(np.mean([c.cpr for c in curves]))
    assert report["cmd"]["std"] == pytest.approx(np.std([c.cmd for c in curves]))
    with pytest.raises(ValueError, match="report key"):
        faithfulness_report(ablator, {"cpr": ["L0H1"]})


def test_a_ground_truth_object_counts_as_its_heads(model, task, data) -> None:
    truth = GroundTruth(
        task="ioi",
        variant="test",
        model="tiny",
        heads=frozenset({(0, 1), (1, 2)}),
        provenance=Provenance(source="test", url="", version="0"),
    )
    ablator = CircuitAblator(model, task, data)
    assert ablator.kept(truth) == ablator.kept(["L0H1", "L1H2"])
    assert ablator.kept(truth)["size"] == 2


def test_bad_inputs_name_the_fix(model, task, data) -> None:
    with pytest.raises(ValueError, match="ablation"):
        CircuitAblator(model, task, data, ablation="zero")  # type: ignore[arg-type]
    ablator = CircuitAblator(model, task, data)
    with pytest.raises(ValueError, match="expected \\(8,\\)"):
        ablator.kept(np.ones(5, dtype=bool))
    with pytest.raises(ValueError, match="outside"):
        ablator.kept(["L7H0"])
    with pytest.raises(ValueError, match="size"):
        ablator.random(9, 2, seed=0)


def test_counterfactual_ablation_uses_the_paired_prompt(model, task, data) -> None:
    # Each clean prompt receives its own corrupted prompt's z: ablating every head of pair i
    # alone equals ablating every head of the whole batch, row i (no resampling, no mean).
    ablator = CircuitAblator(model, task, data, ablation="counterfactual")
    single = CircuitAblator(model, task, data.subset([2]), ablation="counterfactual")
    from circuits.faithfulness import _metric_values

    values = _metric_values(model, task, data, np.zeros(8, bool), ablator._reference, 32)
    assert float(values[2]) == pytest.approx(single.empty_metric, abs=1e-5)


class _StubAblator:
    """f(k) = k / n for the heads 0..k-1 of a ranking; counts the circuits evaluated."""

    def __init__(self, n_heads: int) -> None:
        self.n_heads = n_heads
        self.calls = 0

    def kept(self, keep_H: np.ndarray) -> dict[str, float]:
        self.calls += 1
        return {"kept_normalised": 2.0 * float(keep_H[: self.n_heads // 2].sum()) / self.n_heads}


def test_curve_sizes_integration_and_cache() -> None:
    ablator = _StubAblator(1000)
    scores = np.arange(1000, 0, -1, dtype=float)  # head 0 ranks first
    curve = faithfulness_curve(ablator, scores)
    assert curve.sizes == tuple(int(f * 1000) for f in MIB_FRACTIONS)
    # f = 2k/n until half of the heads are kept, then 1.
    expected = [min(1.0, 2 * size / 1000) for size in curve.sizes]
    assert curve.faithfulness == pytest.approx(expected)
    widths = np.diff(MIB_FRACTIONS)
    values = np.array(expected)
    assert curve.cpr == pytest.approx(float((widths * (values[1:] + values[:-1]) / 2).sum()))
    assert curve.cmd == pytest.approx(
        float((widths * (np.abs(1 - values[1:]) + np.abs(1 - values[:-1])) / 2).sum())
    )
    assert ablator.calls == len(MIB_FRACTIONS) - 1  # the full circuit needs no pass
    cache: dict[bytes, float] = {}
    faithfulness_curve(ablator, scores, cache=cache)
    calls = ablator.calls
    faithfulness_curve(ablator, scores * 2, cache=cache)  # same ranking, same circuits
    assert ablator.calls == calls


def test_curve_breaks_ties_by_head_index_and_checks_shape() -> None:
    ablator = _StubAblator(10)
    tied = faithfulness_curve(ablator, np.zeros(10), fractions=(0.2, 1.0))
    assert tied.faithfulness[0] == pytest.approx(0.4)  # heads 0 and 1: the first half
    with pytest.raises(ValueError, match="expected \\(10,\\) heads"):
        faithfulness_curve(ablator, np.zeros(9))
