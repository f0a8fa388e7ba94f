"""circuits.score / run_trials end to end on a tiny random GPT-2, configs and the registry."""

from __future__ import annotations

import json

import numpy as np
import pandas as pd
import pytest

import circuits
from circuits import methods
from circuits.config import (
    CaptureConfig,
    EvaluationConfig,
    PipelineConfig,
    ScoringConfig,
    default_config,
)
from circuits.ground_truth import Edge, GroundTruth, Provenance
from circuits.methods import MethodContext, ScoreResult
from circuits.pipeline import prepare, run_trials
from interp import HookedModel, load_model
from saes import SAETrainingConfig

CONFIG = PipelineConfig(
    capture=CaptureConfig(n_prompts=16),
    sae=SAETrainingConfig(n_latents=12, n_epochs=20, n_train_prompts=4),
    evaluation=EvaluationConfig(faithfulness_prompts=4, n_random_circuits=2),
)
TRUTH = GroundTruth(
    task="ioi",
    variant="test",
    model="tiny",
    heads=frozenset({(0, 1), (1, 2)}),
    provenance=Provenance(source="test", url="", version="0"),
    edges=(Edge("blocks.1.hook_q_input", 2, "blocks.0.attn.hook_result", 1),),
)


@pytest.fixture(scope="module")
def model(tiny_gpt2_dir) -> HookedModel:
    return load_model(tiny_gpt2_dir, device="cpu")


def test_score_returns_node_and_edge_frames_with_config(model: HookedModel) -> None:
    result = circuits.score(model, "ioi", config=CONFIG, seed=3, progress=False)
    assert result.method == "sae"
    assert result.seed == 3
    assert list(result.node["label"]) == model.head_labels
    assert {"layer", "head", "label", "score", "rank", "n_pos_codes", "n_neg_codes"} <= set(
        result.node.columns
    )
    assert len(result.edges) == 8 * 7 // 2
    assert (result.edges["head1"] < result.edges["head2"]).all()
    assert len(result.edge_node) == 8
    assert {"data", "capture", "sae", "codes", "node_scoring", "edge_scoring"} <= set(
        result.seconds
    )
    sections = {k: result.config[k] for k in ("capture", "sae", "scoring", "evaluation")}
    assert PipelineConfig.from_dict(sections) == CONFIG
    assert result.config["model"] == model.name
    assert result.config["n_positives"] == result.config["n_negatives"] == 8


def test_same_seed_reproduces_scores(model: HookedModel) -> None:
    first = circuits.score(model, "ioi", config=CONFIG, seed=1, progress=False)
    second = circuits.score(model, "ioi", config=CONFIG, seed=1, progress=False)
    np.testing.assert_array_equal(first.node["score"], second.node["score"])


def test_run_trials_summarises_mean_and_std(model: HookedModel) -> None:
    context = prepare(model, "ioi", CONFIG, seed=0, progress=False)
    trials = run_trials(context, "sae", n_trials=2, seed=0, ground_truth=TRUTH)
    summary = trials.summary()
    assert summary["n_trials"] == 2
    assert [r.seed for r in trials.results] == [0, 1]
    assert summary["edge_pairs"]["n_ground_truth"]["mean"] == 1  # the pair (L0H1, L1H2)
    assert summary["edge_pairs"]["n_heads"]["mean"] == 8 * 7 // 2
    for kind in ("node", "edge"):
        assert set(summary[kind]["roc_auc"]) == {"mean", "std"}
        assert summary[kind]["threshold_rule"] == "otsu"
        aucs = [m["roc_auc"] for m in getattr(trials, f"{kind}_metrics")]
        assert summary[kind]["roc_auc"]["mean"] == pytest.approx(np.mean(aucs))
    faith = summary["faithfulness"]
    assert faith["n_prompts"] == 4
    assert set(faith) >= {"found", "ground_truth", "random", "full_metric", "empty_metric"}
    assert {"evaluation", "faithfulness"} <= set(summary["seconds"])


def test_registered_method_runs_through_the_same_pipeline(model: HookedModel) -> None:
    @methods.register("test-layer-index")
    def layer_index(context: MethodContext, seed: int) -> ScoreResult:
        node = circuits.node_scores(
            np.zeros((2, 8), dtype=int), [True, False], context.model.n_heads
        )
        node["score"] = node["layer"].astype(float)
        return ScoreResult(method="test-layer-index", node=node, seconds={"scoring": 0.0})

    assert "test-layer-index" in methods.names()
    context = prepare(model, "ioi", CONFIG, seed=0, progress=False)
    context.head_acts()
    trials = run_trials(context, "test-layer-index", ground_truth=TRUTH)
    assert trials.summary()["node"]["roc_auc"]["mean"] == pytest.approx(0.5)
    # The capture it did not use is not charged to it.
    assert set(trials.results[0].seconds) == {"data", "scoring", "evaluation", "faithfulness"}
    assert "edge" not in trials.summary()
    with pytest.raises(ValueError, match="already registered"):
        methods.register("test-layer-index")(lambda context, seed: layer_index(context, seed))


def test_deterministic_method_runs_once_whatever_the_trials(model: HookedModel) -> None:
    seeds = []

    @methods.register("test-deterministic", deterministic=True)
    def constant(context: MethodContext, seed: int) -> ScoreResult:
        seeds.append(seed)
        node = circuits.node_scores(
            np.zeros((2, 8), dtype=int), [True, False], context.model.n_heads
        )
        return ScoreResult(method="test-deterministic", node=node)

    context = prepare(model, "ioi", CONFIG, seed=0, progress=False)
    trials = run_trials(context, "test-deterministic", n_trials=3, seed=7)
    assert seeds == [7]
    assert trials.summary()["n_trials"] == 1
    assert len(run_trials(context, "sae", n_trials=2).results) == 2


def test_unknown_method_lists_registered_ones(model: HookedModel) -> None:
    with pytest.raises(ValueError, match=r"registered: .*sae"):
        circuits.score(model, "ioi", method="nope", config=CONFIG, progress=False)


def test_configs_validate_and_default_per_task() -> None:
    assert default_config("docstring").sae.l1_coefficient == 0.05
    assert default_config("ioi").sae.l1_coefficient == 0.02
    with pytest.raises(ValueError, match="even"):
        CaptureConfig(n_prompts=5)
    with pytest.raises(ValueError, match="threshold_rule"):
        EvaluationConfig(threshold_rule="median")  # type: ignore[arg-type]
    with pytest.raises(ValueError, match="edge_top_pairs"):
        ScoringConfig(edge_top_pairs=0)
    with pytest.raises(ValueError, match="unknown capture option"):
        PipelineConfig.from_dict({"capture": {"n_prompt": 4}})


def test_run_task_writes_what_the_cli_writes(model: HookedModel, tmp_path) -> None:
    run = circuits.run_task(
        model,
        "ioi",
        ["sae", "norm"],
        CONFIG,
        n_trials=2,
        ground_truth=TRUTH,
        out=tmp_path,
        progress=False,
    )
    folder = tmp_path / "ioi" / model.name
    names = {"results.json", "scores.csv", "heads.png", "roc.png", "faithfulness.png"}
    assert {path.name for path in folder.iterdir()} == names
    results = json.loads((folder / "results.json").read_text())
    assert list(results["methods"]) == ["sae", "norm"]
    assert results["methods"]["sae"]["n_trials"] == 2
    assert results["methods"]["norm"]["n_trials"] == 1  # deterministic: run once
    assert results["ground_truth"]["heads"] == ["L0H1", "L1H2"]
    faith = results["methods"]["sae"]["faithfulness"]
    assert list(faith)[-3:] == ["found", "ground_truth", "random"]
    scores = pd.read_csv(folder / "scores.csv")
    # sae: node and edge-derived rows for two seeds; norm: node rows once; 8 heads each.
    assert len(scores) == (2 * 2 + 1) * 8
    assert scores["in_ground_truth"].sum() == 5 * 2
    metric_rows, timing_rows = run.table_rows()
    assert [row["method"] for row in timing_rows] == ["sae", "norm"]
    assert {row["kind"] for row in metric_rows} >= {"node", "edge"}


def test_run_task_checks_the_methods_before_any_work(model: HookedModel) -> None:
    with pytest.raises(ValueError, match="no methods"):
        circuits.run_task(model, "ioi", [], CONFIG, progress=False)
    with pytest.raises(ValueError, match=r"unknown method 'nope'"):
        circuits.run_task(model, "ioi", ["sae", "nope"], CONFIG, progress=False)
