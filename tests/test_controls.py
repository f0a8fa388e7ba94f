"""The control rankings `random` and `norm`, registered beside the methods."""

from __future__ import annotations

import numpy as np

import circuits
from circuits import tasks
from circuits.config import CaptureConfig, PipelineConfig
from circuits.methods import MethodContext
from circuits.pipeline import run_trials
from interp import load_model


def _context(tiny_gpt2_dir) -> MethodContext:
    model = load_model(tiny_gpt2_dir, device="cpu")
    task = tasks.get("ioi")
    data = task.generate(model.tokenizer, n=4, seed=0)
    config = PipelineConfig(capture=CaptureConfig(n_prompts=8, batch_size=8))
    return MethodContext(model, task, data, config)


def test_norm_is_the_mean_output_norm(tiny_gpt2_dir, one_thread) -> None:
    context = _context(tiny_gpt2_dir)
    result = circuits.methods.get("norm").run(context, 0)
    acts_PHD, _ = context.head_acts()
    expected = acts_PHD.norm(dim=-1).mean(dim=0).double().numpy()
    np.testing.assert_allclose(result.node["score"].to_numpy(), expected, rtol=1e-6)
    assert result.node.loc[int(np.argmax(expected)), "rank"] == 1


def test_random_depends_on_the_seed_only(tiny_gpt2_dir, one_thread) -> None:
    context = _context(tiny_gpt2_dir)
    random = circuits.methods.get("random").run
    first, again, other = (random(context, seed).node for seed in (3, 3, 4))
    assert first["score"].equals(again["score"])
    assert not first["score"].equals(other["score"])
    trials = run_trials(context, "random", n_trials=3)
    assert len(trials.results) == 3  # not deterministic: one ranking per trial
    assert len(run_trials(context, "norm", n_trials=3).results) == 1
