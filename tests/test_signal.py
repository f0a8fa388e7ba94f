"""The signal pre-check: a permutation test per head of a positive/negative difference."""

from __future__ import annotations

import numpy as np
import torch

from circuits.planted import plant_shift
from circuits.signal import signal_check


def test_planted_heads_differ_and_the_others_do_not() -> None:
    acts = torch.randn(200, 8, 16, generator=torch.Generator().manual_seed(0))
    planted = plant_shift(acts, [1, 5], shift=1.0, seed=0)
    check = signal_check(planted.acts_PHD, planted.is_positive_P, n_permutations=100)
    assert check.different_H[[1, 5]].all()
    assert check.different_H.sum() <= 3  # at most one false positive expected at p <= 0.01
    assert check.p_H[1] == check.p_H[5] == 1 / 101
    truth = np.zeros(8, dtype=bool)
    truth[[1, 5]] = True
    assert "2 of 2 circuit heads" in check.summary(truth)
    assert check.as_dict()["n_different"] == int(check.different_H.sum())


def test_identical_outputs_never_differ() -> None:
    acts = torch.ones(20, 3, 4)
    labels = torch.arange(20) < 10
    check = signal_check(acts, labels, n_permutations=20)
    assert not check.different_H.any()
    np.testing.assert_allclose(check.distance_H, 0.0)
