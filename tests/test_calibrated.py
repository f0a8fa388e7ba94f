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
from circuits.methods.sae_calibrated import whiten_heads
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
    # Two codes per prompt: a prompt's direction is the mean of its codes' directions.
    pairs = np.stack([codes, np.zeros_like(codes)], axis=-1)
    np.testing.assert_allclose(code_shift(pairs, directions, labels), [np.sqrt(2) / 2, 0.0])
    # Per-head scales multiply the shift's coordinates before the norm.
    scale = torch.tensor([[3.0, 4.0], [1.0, 1.0]])
    np.testing.assert_allclose(code_shift(codes, directions, labels, scale), [5.0, 0.0])


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


def test_whitened_heads_have_unit_variance_along_each_used_direction() -> None:
    generator = torch.Generator().manual_seed(0)
    # Head 0 spans 3 of 8 dimensions with spreads 10, 1, 0.1; head 1 is isotropic in 8;
    # head 2 never changes.
    axes = torch.linalg.qr(torch.randn(8, 8, generator=generator)).Q
    head0 = (torch.randn(200, 3, generator=generator) * torch.tensor([10.0, 1.0, 0.1])) @ axes[:3]
    head1 = torch.randn(200, 8, generator=generator)
    acts = torch.stack([head0 + 5.0, head1, torch.ones(200, 8)], dim=1)
    whitened = whiten_heads(acts, n_components=4)
    coords = whitened.coords_PHR
    assert coords.shape == (200, 3, 4)
    torch.testing.assert_close(
        coords.pow(2).mean(dim=0)[:2, :3], torch.ones(2, 3), rtol=1e-3, atol=0
    )
    # Head 0 has no fourth direction and head 2 none at all: zero, not amplified noise.
    assert coords[:, 0, 3].abs().max() == 0 and coords[:, 2].abs().max() == 0
    centred = head0 - head0.mean(dim=0)
    spreads = torch.linalg.svdvals(centred) / 200**0.5
    torch.testing.assert_close(whitened.scale_HR[0, :3], spreads[:3], rtol=1e-4, atol=0)
    torch.testing.assert_close(whitened.variance_kept_H[0], torch.tensor(1.0), rtol=1e-5, atol=0)
    assert 0.4 < float(whitened.variance_kept_H[1]) < 0.6  # 4 of 8 isotropic directions
    assert torch.isfinite(coords).all() and whitened.scale_HR[2].abs().max() == 0


def test_plant_shift_moves_only_the_positives_of_the_planted_heads() -> None:
    acts = torch.randn(40, 5, 16)
    planted = plant_shift(acts, [1, 3], shift=2.0, seed=0)
    assert planted.is_positive_P.sum() == 20
    assert planted.truth_H.tolist() == [False, True, False, True, False]
    moved = (planted.acts_PHD - acts).abs().amax(dim=2) > 0
    assert torch.equal(moved, planted.is_positive_P[:, None] & planted.truth_H[None, :])
    with pytest.raises(ValueError, match="heads"):
        plant_shift(acts, [7], 1.0)
    acts[:, 2] = 1.0
    with pytest.raises(ValueError, match="vary"):
        plant_shift(acts, [2], 1.0)


def test_planted_shift_lies_in_the_span_of_the_head_outputs() -> None:
    # A head writing in 2 of 16 dimensions can only move within them.
    generator = torch.Generator().manual_seed(1)
    plane = torch.linalg.qr(torch.randn(16, 2, generator=generator)).Q  # [16, 2]
    acts = (torch.randn(60, 1, 2, generator=generator) @ plane.T) + 3.0
    planted = plant_shift(acts, [0], shift=1.0, seed=0)
    moved = planted.acts_PHD[planted.is_positive_P, 0] - acts[planted.is_positive_P, 0]
    outside = moved - (moved @ plane) @ plane.T
    assert outside.abs().max() < 1e-5 * moved.abs().max()
    # One standard deviation along the (unit) direction of the shift.
    direction = moved[0] / moved[0].norm()
    assert float(moved[0].norm()) == pytest.approx(float((acts[:, 0] @ direction).std()), rel=1e-4)


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
    views = {"score", "rank", "shift", "z", "p_value", "spread", "variance_kept"}
    assert views | {"mutual_information", "exclusive_codes", "e0", "excess"} <= set(node.columns)
    assert result.extra["codes_per_head"] == 16 and result.extra["components"] > 1
    # The score is the whitened shift mapped back to output units: between the shift times
    # the head's smallest and largest spread along a kept direction.
    assert (node["score"] <= node["shift"] * node["spread"] + 1e-9).all()
    np.testing.assert_allclose(node["excess"], node["exclusive_codes"] - node["e0"])
    paper = circuits.methods.get("sae").run(organism_context, 0).node
    assert {"e0", "excess"} <= set(paper.columns)


def test_planted_shift_is_detected_by_the_calibrated_z(organism_context: MethodContext) -> None:
    # Random labels on real organism activations, a 1-SD shift planted in three heads: the
    # shift's z-score against shuffled labels finds them; the paper's count does not.
    acts_PHD, _ = organism_context.head_acts()
    calibrated, paper = [], []
    for seed in range(3):
        planted = plant_shift(acts_PHD, [2, 7, 13], shift=1.0, seed=seed)
        organism_context._acts = (planted.acts_PHD, planted.is_positive_P)
        truth = planted.truth_H.numpy()
        node = circuits.methods.get("sae-calibrated").run(organism_context, seed).node
        calibrated.append(roc_auc(node["z"].to_numpy(), truth))
        paper.append(
            roc_auc(circuits.methods.get("sae").run(organism_context, seed).node["score"], truth)
        )
    organism_context._acts = None
    assert np.mean(calibrated) >= 0.95
    assert np.mean(calibrated) > np.mean(paper) + 0.25
