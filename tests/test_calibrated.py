"""Calibrated code statistics, planted signals and the `sae-calibrated` method."""

from __future__ import annotations

import itertools

import numpy as np
import pytest
import torch

import circuits
from circuits import tasks
from circuits.calibration import (
    code_shift,
    expected_exclusive_codes,
    mutual_information,
    permutation_z,
)
from circuits.config import PipelineConfig
from circuits.evaluation import roc_auc
from circuits.methods import MethodContext
from circuits.methods.sae_calibrated import standardise_heads
from circuits.planted import plant_shift
from circuits.scoring import node_scores
from interp import load_model


def test_e0_is_the_mean_paper_score_over_every_relabelling() -> None:
    codes = np.random.default_rng(0).integers(0, 4, size=(8, 3))
    labels = np.array([1, 1, 1, 1, 0, 0, 0, 0], dtype=bool)
    total = np.zeros(3)
    draws = list(itertools.combinations(range(8), 4))
    for positives in draws:
        relabelled = np.zeros(8, dtype=bool)
        relabelled[list(positives)] = True
        total += node_scores(codes, relabelled, 3)["score"].to_numpy()
    np.testing.assert_allclose(expected_exclusive_codes(codes, labels), total / len(draws))


def test_mutual_information_and_code_shift_by_hand() -> None:
    # Head 0's code is the label, head 1's code ignores it.
    labels = np.array([1, 1, 0, 0], dtype=bool)
    codes = np.array([[1, 0], [1, 1], [0, 0], [0, 1]])
    np.testing.assert_allclose(mutual_information(codes, labels), [np.log(2), 0.0], atol=1e-12)
    directions = torch.tensor([[1.0, 0.0], [0.0, 1.0]])
    np.testing.assert_allclose(code_shift(codes, directions, labels), [np.sqrt(2), 0.0])


def test_permutation_z_is_large_only_for_label_dependent_heads() -> None:
    rng = np.random.default_rng(1)
    labels = np.repeat([True, False], 100)
    codes = rng.integers(0, 5, size=(200, 2))
    codes[:, 0] = np.where(labels, rng.integers(0, 3, 200), rng.integers(2, 5, 200))
    observed, z, p = permutation_z(lambda rows: mutual_information(codes, rows), labels)
    assert z[0] > 10 and abs(z[1]) < 3
    assert p[0] == pytest.approx(1 / 201) and p[1] > 0.01
    assert observed.shape == (2,)
    with pytest.raises(ValueError, match="at least 2"):
        permutation_z(lambda rows: mutual_information(codes, rows), labels, n_permutations=1)


def test_standardised_heads_have_unit_spread() -> None:
    acts = torch.randn(50, 3, 8) * torch.tensor([0.1, 10.0, 0.0])[None, :, None]
    standard, scale = standardise_heads(acts)
    spread = standard.pow(2).mean(dim=(0, 2)).sqrt()
    torch.testing.assert_close(spread[:2], torch.ones(2), rtol=1e-5, atol=0)
    assert spread[2] == 0 and scale[2] == 0 and torch.isfinite(standard).all()


def test_plant_shift_moves_only_the_positives_of_the_planted_heads() -> None:
    acts = torch.randn(40, 5, 16)
    planted = plant_shift(acts, [1, 3], shift=2.0, seed=0)
    assert planted.is_positive_P.sum() == 20
    assert planted.truth_H.tolist() == [False, True, False, True, False]
    moved = (planted.acts_PHD - acts).abs().amax(dim=2) > 0
    assert torch.equal(moved, planted.is_positive_P[:, None] & planted.truth_H[None, :])
    with pytest.raises(ValueError, match="heads"):
        plant_shift(acts, [7], 1.0)


@pytest.fixture(scope="module")
def organism_context() -> MethodContext:
    previous = torch.get_num_threads()
    torch.set_num_threads(1)
    model = load_model("organism-ioi", device="cpu")
    task = tasks.get("ioi")
    data = task.generate(model.tokenizer, n=250, seed=0)
    yield MethodContext(model, task, data, PipelineConfig())
    torch.set_num_threads(previous)


def test_method_frame_reports_every_view(organism_context: MethodContext) -> None:
    result = circuits.methods.get("sae-calibrated").run(organism_context, 0)
    node = result.node
    assert {"score", "rank", "shift", "scale", "z", "p_value", "mutual_information"} <= set(
        node.columns
    )
    assert {"exclusive_codes", "e0", "excess"} <= set(node.columns)
    np.testing.assert_allclose(node["score"], node["shift"] * node["scale"])
    np.testing.assert_allclose(node["excess"], node["exclusive_codes"] - node["e0"])
    paper = circuits.methods.get("sae").run(organism_context, 0).node
    assert {"e0", "excess"} <= set(paper.columns)


def test_planted_shift_is_detected_by_the_calibrated_z(organism_context: MethodContext) -> None:
    # Random labels on real organism activations, a 2-SD shift planted in three heads: the
    # shift's z-score against shuffled labels finds them; the paper's count does not.
    acts_PHD, _ = organism_context.head_acts()
    calibrated, paper = [], []
    for seed in range(3):
        planted = plant_shift(acts_PHD, [2, 7, 13], shift=2.0, seed=seed)
        organism_context._acts = (planted.acts_PHD, planted.is_positive_P)
        truth = planted.truth_H.numpy()
        node = circuits.methods.get("sae-calibrated").run(organism_context, seed).node
        calibrated.append(roc_auc(node["z"].to_numpy(), truth))
        paper.append(
            roc_auc(circuits.methods.get("sae").run(organism_context, seed).node["score"], truth)
        )
    organism_context._acts = None
    assert np.mean(calibrated) >= 0.9
    assert np.mean(calibrated) > np.mean(paper) + 0.15
