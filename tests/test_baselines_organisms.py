"""Baselines recover the known circuits of the shipped model organisms."""

from __future__ import annotations

import pytest

from circuits import evaluate, methods, tasks
from circuits.ground_truth import load_file
from interp import load_model
from interp.models import ORGANISMS_DIR

pytestmark = pytest.mark.usefixtures("one_thread")


@pytest.mark.parametrize(
    "task_name",
    [
        "ioi",
        "greater-than",
        pytest.param(
            "docstring",
            marks=pytest.mark.xfail(
                strict=True,
                reason="organism-docstring falls short of its spec: L1H0 and L3H1 are weak "
                "(docs/organisms.md, Limits)",
            ),
        ),
    ],
)
def test_activation_patching_recovers_the_organism_circuit(task_name: str) -> None:
    folder = ORGANISMS_DIR / f"organism-{task_name}"
    if not (folder / "model.safetensors").is_file():
        pytest.skip(f"organism-{task_name} is not installed in {folder}")
    model = load_model(f"organism-{task_name}", device="cpu")
    task = tasks.get(task_name)
    data = task.generate(model.tokenizer, n=40, seed=0)
    truth = load_file(folder / "ground_truth.json")
    result = methods.activation_patching(
        model, task, data, methods.ActivationPatchingConfig(progress=False)
    )
    metrics = evaluate(result.node, truth.heads, n_heads_per_layer=model.n_heads)
    assert metrics.roc_auc >= 0.95
