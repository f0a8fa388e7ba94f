"""Faithfulness by ablation on a tiny random GPT-2: identities, keys and error messages."""

from __future__ import annotations

import dataclasses

import numpy as np
import pytest

from circuits import tasks
from circuits.faithfulness import CircuitAblator, faithfulness_report
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


@pytest.mark.parametrize("ablation", ["mean", "resample"])
def test_ablating_nothing_keeps_everything(model, task, data, ablation) -> None:
    ablator = CircuitAblator(model, task, data, ablation=ablation, seed=0)
    everything = ablator.kept(np.ones(8, dtype=bool))
    assert everything["kept"] == 1.0
    assert everything["kept_normalised"] == 1.0
    assert everything["metric"] == ablator.full_metric
    assert ablator.kept([])["metric"] == pytest.approx(ablator.empty_metric)
    assert ablator.empty_metric != pytest.approx(ablator.full_metric)


@pytest.mark.parametrize("ablation", ["mean", "resample"])
def test_ablating_with_the_prompt_itself_changes_nothing(model, task, data, ablation) -> None:
    # One prompt whose corrupted version is itself: its mean z (and its only donor) is its
    # own z, so replacing every head's z must leave the metric unchanged.
    one = data.subset([0])
    own = dataclasses.replace(one, corrupted=list(one.positives))
    ablator = CircuitAblator(model, task, own, ablation=ablation, seed=0)
    assert ablator.empty_metric == pytest.approx(ablator.full_metric, abs=1e-5)


def test_report_keys_and_random_circuits(model, task, data) -> None:
    report = faithfulness_report(
        model,
        task,
        data,
        {"found": ["L0H1", "L1H2"], "ground_truth": [(0, 0), (1, 3), (1, 2)]},
        n_random=3,
        seed=1,
    )
    assert set(report) == {
        "ablation",
        "metric_name",
        "n_prompts",
        "full_metric",
        "empty_metric",
        "circuits",
        "random",
    }
    assert report["metric_name"] == "logit_diff"
    assert report["circuits"]["found"]["size"] == 2
    assert report["circuits"]["ground_truth"]["size"] == 3
    assert report["random"]["size"] == 2
    assert report["random"]["n"] == 3
    assert set(report["random"]["kept"]) == {"mean", "std"}


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
