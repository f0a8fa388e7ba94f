"""Patching baselines on tiny random GPT-2-architecture models with the real GPT-2 tokenizer."""

from __future__ import annotations

import copy
import dataclasses

import pandas as pd
import pytest
import torch
from transformer_lens import HookedTransformer, HookedTransformerConfig
from transformer_lens import patching as tl_patching

import circuits
from circuits import methods, tasks
from circuits.config import CaptureConfig, PipelineConfig
from circuits.methods import MethodContext
from circuits.methods.acdc import circuit_loss
from circuits.methods.eap import edge_effects
from circuits.methods.hisp import gate_gradients, gated_metric
from circuits.methods.patching import make_batches
from interp import HookedModel, load_model
from tests.conftest import build_gpt2_tokenizer

N_PROMPTS = 6


def _column(result: methods.ScoreResult, name: str) -> torch.Tensor:
    """One column of a result's node frame as a float64 tensor (head order)."""
    return torch.tensor(result.node[name].to_numpy())


def _model(
    *,
    n_layers: int = 3,
    attn_only: bool = False,
    dtype: torch.dtype = torch.float32,
    init: float = -1.0,
    kernel: str = "sdpa",
    shortformer: bool = False,
    gqa: bool = False,
    seed: int = 0,
) -> HookedModel:
    """A tiny model; `gqa`: Llama-style (RMSNorm, rotary, 2 K/V heads for 4 query heads)."""
    tokenizer = build_gpt2_tokenizer()
    llama_style = (
        {
            "n_key_value_heads": 2,
            "normalization_type": "RMS",
            "positional_embedding_type": "rotary",
            "rotary_dim": 16,
            "gated_mlp": True,
            "act_fn": "silu",
        }
        if gqa
        else {}
    )
    config = HookedTransformerConfig(
        n_layers=n_layers,
        d_model=64,
        n_heads=4,
        d_head=16,
        d_mlp=None if attn_only else 128,
        attn_only=attn_only,
        n_ctx=64,
        d_vocab=len(tokenizer),
        act_fn="gelu",
        normalization_type="LN",
        positional_embedding_type="shortformer" if shortformer else "standard",
        initializer_range=init,
        dtype=dtype,
        seed=seed,
        device="cpu",
    )
    for key, value in llama_style.items():
        setattr(config, key, value)
    config = HookedTransformerConfig.from_dict(config.to_dict())
    return HookedModel(HookedTransformer(config).eval(), tokenizer, attn_kernel=kernel)


@pytest.fixture(autouse=True, scope="module")
def one_thread():
    """These models are tiny: one thread avoids per-op thread start-up on a loaded machine."""
    previous = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(previous)


@pytest.fixture(scope="module")
def ioi() -> tuple[tasks.Task, tasks.TaskData]:
    task = tasks.get("ioi")
    return task, task.generate(build_gpt2_tokenizer(), n=N_PROMPTS, seed=0)


@pytest.fixture(scope="module")
def model64() -> HookedModel:
    """Float64, so finite differences and KL comparisons are exact to many digits."""
    return _model(dtype=torch.float64)


@pytest.fixture(scope="module")
def small_init() -> HookedModel:
    """GPT-2's init scale (0.02): small activations, the regime where patching is near linear."""
    return _model(init=0.02)


def _batch(model: HookedModel, ioi):
    task, data = ioi
    (batch,) = make_batches(model, task, data, batch_size=len(data))
    return batch


def _float64_batch(model: HookedModel, ioi):
    """The batch with a float64 logit difference (the task metrics round to float32)."""
    batch = _batch(model, ioi)
    answers = torch.tensor([ids[0] for ids in batch.data.answer_ids])
    wrongs = torch.tensor([ids[0] for ids in batch.data.wrong_ids])

    def logit_diff(logits_BV: torch.Tensor) -> torch.Tensor:
        rows = torch.arange(len(logits_BV))
        return logits_BV[rows, answers] - logits_BV[rows, wrongs]

    return dataclasses.replace(batch, metric=logit_diff)


@pytest.mark.parametrize("shortformer", [False, True])
def test_activation_patching_matches_transformer_lens(ioi, shortformer) -> None:
    model = _model(n_layers=2, kernel="eager", shortformer=shortformer)
    task, data = ioi
    result = methods.activation_patching(
        model, task, data, methods.ActivationPatchingConfig(batch_size=4, progress=False)
    )
    batch = _batch(model, ioi)
    _, corrupted_cache = model.model.run_with_cache(batch.corrupted_BS)

    def metric(logits: torch.Tensor) -> torch.Tensor:
        return task.metric(logits, batch.data, mask=batch.mask_BS)

    # TransformerLens patches the given cache into the run on the given tokens: noising.
    patched_LH = tl_patching.get_act_patch_attn_head_out_all_pos(
        model.model, batch.clean_BS, corrupted_cache, metric
    )
    base = metric(model.model(batch.clean_BS))
    torch.testing.assert_close(
        _column(result, "effect"), (patched_LH.flatten() - base).double(), atol=1e-5, rtol=1e-4
    )
    frame = result.node
    assert list(frame.columns[:5]) == ["layer", "head", "label", "score", "rank"]
    assert frame.loc[5, "label"] == "L1H1"
    assert (frame["score"] == frame["effect"].abs()).all()


def test_mean_ablation_matches_a_manual_patch(ioi, model64) -> None:
    task, data = ioi
    result = methods.activation_patching(
        model64, task, data, methods.ActivationPatchingConfig(ablation="mean", progress=False)
    )
    batch = _batch(model64, ioi)
    layer, head = 1, 2
    z_corrupted = model64.layer_z(batch.corrupted_BS)[layer]
    mask = batch.mask_BS[:, :, None].double()
    mean_SE = (z_corrupted[:, :, head] * mask).sum(0) / mask.sum(0)

    def patch(z: torch.Tensor, hook) -> torch.Tensor:
        z = z.clone()
        z[:, :, head] = mean_SE
        return z

    with torch.no_grad(), model64.hooks([(f"blocks.{layer}.attn.hook_z", patch)]):
        patched = task.metric(model64.model(batch.clean_BS), batch.data, mask=batch.mask_BS)
    with torch.no_grad():
        clean = task.metric(model64.model(batch.clean_BS), batch.data, mask=batch.mask_BS)
    assert float(_column(result, "effect")[layer * 4 + head]) == pytest.approx(
        float(patched - clean)
    )


@pytest.mark.parametrize("ablation", ["counterfactual", "mean"])
def test_attribution_patching_ranks_heads_like_activation_patching(
    ioi, small_init, ablation
) -> None:
    task, data = ioi
    exact = methods.activation_patching(
        small_init, task, data, methods.ActivationPatchingConfig(ablation=ablation, progress=False)
    )
    linear = methods.attribution_patching(
        small_init, task, data, methods.AttributionPatchingConfig(ablation=ablation, progress=False)
    )
    scores = pd.DataFrame({"exact": exact.node["score"], "linear": linear.node["score"]})
    assert scores.corr(method="spearman").loc["exact", "linear"] > 0.95


def test_eap_edges_match_finite_differences(ioi, model64) -> None:
    graph = methods.HeadGraph.of(model64)
    batch = _float64_batch(model64, ioi)
    effects_SR = edge_effects(model64, graph, batch) / batch.size
    patcher = methods.EdgePatcher(model64, graph, batch)
    senders, receivers = graph.labels()
    eps = 1e-4
    for upstream, downstream in [
        ("embed", "L0H1"),
        ("L0H3", "L2H0"),
        ("L1H2", "MLP1"),
        ("MLP0", "L1H1"),
        ("L2H1", "logits"),
        ("embed", "logits"),
    ]:
        s, r = senders.index(upstream), receivers.index(downstream)
        values = []
        for sign in (1, -1):
            weights = torch.zeros(graph.n_senders, graph.n_receivers)
            weights[s, r] = sign * eps
            values.append(batch.metric(patcher.run(weights)).mean())
        finite_difference = float(values[0] - values[1]) / (2 * eps)
        assert float(effects_SR[s, r]) == pytest.approx(finite_difference, rel=1e-6, abs=1e-12)


def test_eap_node_effect_is_attribution_patching(ioi, model64) -> None:
    task, data = ioi
    edges = methods.eap(model64, task, data, methods.EAPConfig(batch_size=4, progress=False))
    nodes = methods.attribution_patching(model64, task, data)
    torch.testing.assert_close(_column(edges, "effect"), _column(nodes, "effect"))
    assert set(edges.graph_edges.columns) >= {"upstream", "downstream", "score", "effect", "rank"}
    assert len(edges.graph_edges) == int(methods.HeadGraph.of(model64).allowed_SR().sum())
    incident = edges.graph_edges[
        (edges.graph_edges.upstream == "L1H0") | (edges.graph_edges.downstream == "L1H0")
    ]
    assert float(_column(edges, "score")[4]) == pytest.approx(incident["score"].sum())


@pytest.mark.parametrize(
    ("attn_only", "shortformer", "gqa"),
    [(False, False, False), (True, True, False), (False, False, True)],
)
def test_edge_patcher_endpoints(ioi, attn_only, shortformer, gqa) -> None:
    model = _model(
        n_layers=2, attn_only=attn_only, shortformer=shortformer, gqa=gqa, dtype=torch.float64
    )
    graph = methods.HeadGraph.of(model)
    batch = _batch(model, ioi)
    patcher = methods.EdgePatcher(model, graph, batch)
    zeros = torch.zeros(graph.n_senders, graph.n_receivers)
    torch.testing.assert_close(patcher.run(zeros), patcher.clean_logits_BV)
    # Every edge corrupted: each node reads the corrupted residual stream.
    with torch.no_grad():
        final = model.model(batch.corrupted_BS, stop_at_layer=graph.n_layers)
        corrupted = model.answer_logits(final, batch.answer_pos_B)
    torch.testing.assert_close(patcher.run(graph.allowed_SR().double()), corrupted)
    # Starting at a later block is exact when no earlier receiver is patched.
    generator = torch.Generator().manual_seed(0)
    weights = torch.rand(graph.n_senders, graph.n_receivers, generator=generator)
    weights[:, graph.head_receivers(0)] = 0
    if graph.has_mlp:
        weights[:, graph.mlp_receiver(0)] = 0
    torch.testing.assert_close(patcher.run(weights, start_layer=1), patcher.run(weights))


@pytest.mark.parametrize("gqa", [False, True])
def test_batched_circuits_equal_one_pass_each(ioi, gqa) -> None:
    model = _model(n_layers=2, gqa=gqa, dtype=torch.float64)
    graph = methods.HeadGraph.of(model)
    patcher = methods.EdgePatcher(model, graph, _batch(model, ioi))
    generator = torch.Generator().manual_seed(3)
    weights_KSR = torch.rand(3, graph.n_senders, graph.n_receivers, generator=generator)
    weights_KSR[0] = 0  # the clean circuit beside patched ones
    weights_KSR[2, :, graph.head_receivers(0)] = 0  # one circuit leaves a layer-0 head intact
    together = patcher.run_many(weights_KSR)
    for k in range(3):
        torch.testing.assert_close(together[k], patcher.run(weights_KSR[k]))
    torch.testing.assert_close(together[0], patcher.clean_logits_BV)
    with pytest.raises(ValueError, match="circuits, senders, receivers"):
        patcher.run_many(weights_KSR[0])


def test_speculative_acdc_decides_exactly_like_one_edge_at_a_time(ioi, model64) -> None:
    graph = methods.HeadGraph.of(model64)
    patchers = [methods.EdgePatcher(model64, graph, _batch(model64, ioi))]
    for loss in ("kl", "task"):
        single = methods.prune(patchers, tau=0.003, loss=loss, edges_per_pass=1)
        batched = methods.prune(patchers, tau=0.003, loss=loss, edges_per_pass=8)
        assert 0 < int(single.kept_SR.sum()) < int(graph.allowed_SR().sum())
        assert torch.equal(batched.kept_SR, single.kept_SR)
        assert batched.n_evaluations == single.n_evaluations == single.n_passes
        assert batched.n_passes < single.n_passes
        assert batched.loss == pytest.approx(single.loss, abs=1e-12)


def test_acdc_threshold_extremes(ioi, model64) -> None:
    graph = methods.HeadGraph.of(model64)
    patchers = [methods.EdgePatcher(model64, graph, _batch(model64, ioi))]
    allowed = graph.allowed_SR()
    keep_all = methods.prune(patchers, tau=0.0)
    assert torch.equal(keep_all.kept_SR, allowed)
    assert keep_all.n_evaluations == int(allowed.sum()) + 1
    keep_none = methods.prune(patchers, tau=1e9)
    assert not keep_none.kept_SR.any()
    # Only the logits' edges are tried: afterwards every node is disconnected.
    assert keep_none.n_evaluations == int(allowed[:, graph.logits_receiver].sum()) + 1


def test_acdc_loss_bookkeeping_matches_a_fresh_evaluation(ioi, model64) -> None:
    graph = methods.HeadGraph.of(model64)
    patchers = [methods.EdgePatcher(model64, graph, _batch(model64, ioi))]
    for loss in ("kl", "task"):
        run = methods.prune(patchers, tau=0.003, loss=loss)
        assert 0 < int(run.kept_SR.sum()) < int(graph.allowed_SR().sum())
        removed = (graph.allowed_SR() & ~run.kept_SR).double()
        assert circuit_loss(patchers, removed, 0, loss) == pytest.approx(run.loss, abs=1e-12)


def test_acdc_sweep_scores(ioi) -> None:
    model = _model(n_layers=2)
    task, data = ioi
    config = methods.ACDCConfig(thresholds=(0.3, 0.001, 1e9), batch_size=4, progress=False)
    result = methods.acdc(model, task, data, config)
    assert result.extra["thresholds"] == [0.001, 0.3, 1e9]
    assert result.extra["n_edges_kept"][-1] == 0
    assert set(_column(result, "score").tolist()) <= {0.0, 0.001, 0.3}
    assert result.graph_edges["score"].max() <= 0.3
    assert {"cache", "prune"} <= set(result.seconds)


def test_hisp_matches_finite_differences(ioi, model64) -> None:
    batch = _float64_batch(model64, ioi)
    grads_BH = gate_gradients(model64, batch)
    eps = 1e-5
    for prompt, head in [(0, 0), (3, 6), (5, 11)]:
        values = []
        for sign in (1, -1):
            gates = torch.ones(batch.size, 12, dtype=torch.float64)
            gates[prompt, head] += sign * eps
            with torch.no_grad():
                values.append(gated_metric(model64, batch, gates)[prompt])
        finite_difference = float(values[0] - values[1]) / (2 * eps)
        assert float(grads_BH[prompt, head]) == pytest.approx(finite_difference, rel=1e-6)
    task, data = ioi
    result = methods.hisp(model64, task, data, methods.HISPConfig(batch_size=4, progress=False))
    task_grads_BH = gate_gradients(model64, _batch(model64, ioi))
    torch.testing.assert_close(_column(result, "score"), task_grads_BH.abs().mean(0).double())


def test_gradients_work_on_frozen_loaded_models(ioi, tiny_gpt2_dir) -> None:
    model = load_model(tiny_gpt2_dir, device="cpu")
    assert not any(p.requires_grad for p in model.model.parameters())
    task, data = ioi
    for name in ("attribution-patching", "eap", "hisp"):
        method = methods.get(name)
        result = method.function(model, task, data, method.config(progress=False))
        assert len(result.node) == 8 and bool(_column(result, "score").isfinite().all())


def test_registered_in_the_pipeline(ioi) -> None:
    model = _model(n_layers=2)
    task, data = ioi
    config = PipelineConfig(capture=CaptureConfig(n_prompts=2 * N_PROMPTS, batch_size=4))
    context = MethodContext(model, task, data, config, progress=False)
    patching = {"activation-patching", "attribution-patching", "eap", "acdc", "hisp"}
    assert {name for name in methods.names() if methods.get(name).function} == patching
    for name in ("activation-patching", "eap"):
        result = methods.get(name).run(context, 0)
        assert result.method == name and len(result.node) == 8
        assert result.extra["method_config"]["batch_size"] == 4
        metrics = circuits.evaluate(result.node, ["L1H0", "L1H3"], n_heads_per_layer=4)
        assert 0 <= metrics.roc_auc <= 1
    assert result.edges is not None and (result.edges["head1"] < result.edges["head2"]).all()


def test_bad_inputs_are_named(ioi) -> None:
    task, data = ioi
    with pytest.raises(ValueError, match="thresholds"):
        methods.ACDCConfig(thresholds=(-1.0,))
    with pytest.raises(ValueError, match="ablation"):
        methods.ActivationPatchingConfig(ablation="zero")
    model = _model(n_layers=1)
    model.model.cfg.parallel_attn_mlp = True
    with pytest.raises(ValueError, match="node-level baseline"):
        methods.eap(model, task, data)
    model.model.cfg.parallel_attn_mlp = False
    mismatched = data.subset([0, 1])
    mismatched = tasks.TaskData(
        task=mismatched.task,
        positives=mismatched.positives,
        negatives=mismatched.negatives,
        corrupted=[mismatched.corrupted[0], mismatched.corrupted[1] + " and more"],
        answer_ids=mismatched.answer_ids,
        wrong_ids=mismatched.wrong_ids,
        lengths=mismatched.lengths,
    )
    with pytest.raises(ValueError, match="different lengths"):
        make_batches(model, task, mismatched, batch_size=2)


@pytest.fixture(scope="module")
def gqa64() -> HookedModel:
    """Grouped-query attention (4 query heads share 2 K/V heads), float64."""
    return _model(dtype=torch.float64, gqa=True)


def test_gqa_edge_into_a_shared_kv_head_reaches_one_query_head(ioi, gqa64) -> None:
    # L1H0 and L1H1 share a K/V head: patching the edge into L1H0 must leave L1H1's z alone.
    graph = methods.HeadGraph.of(gqa64)
    patcher = methods.EdgePatcher(gqa64, graph, _batch(gqa64, ioi))
    senders, receivers = graph.labels()
    weights = torch.zeros(graph.n_senders, graph.n_receivers)
    weights[senders.index("L0H2"), receivers.index("L1H0")] = 1.0
    z_by_run = []
    for w in (torch.zeros_like(weights), weights):
        store: dict[str, torch.Tensor] = {}

        def save(z: torch.Tensor, hook, store=store) -> None:
            store["z"] = z.clone()

        with gqa64.hooks([("blocks.1.attn.hook_z", save)]):
            patcher.run(w)
        z_by_run.append(store["z"])
    clean_z, patched_z = z_by_run
    assert not torch.allclose(patched_z[:, :, 0], clean_z[:, :, 0])
    torch.testing.assert_close(patched_z[:, :, 1:], clean_z[:, :, 1:])
    assert not gqa64.model.cfg.ungroup_grouped_query_attention  # restored after each pass


def _ungrouped_twin(model: HookedModel) -> HookedModel:
    """The same function without grouped-query attention: each K/V head repeated."""
    cfg = copy.deepcopy(model.model.cfg.to_dict())
    repeats = cfg["n_heads"] // cfg["n_key_value_heads"]
    cfg["n_key_value_heads"] = None
    twin = HookedTransformer(HookedTransformerConfig.from_dict(cfg)).eval()
    state = {
        key.replace("attn._", "attn.") if "attn._" in key else key: (
            torch.repeat_interleave(value, repeats, dim=0) if "attn._" in key else value
        )
        for key, value in model.model.state_dict().items()
    }
    twin.load_state_dict(state)
    return HookedModel(twin, model.tokenizer, attn_kernel=model.attn_kernel)


def test_gqa_edges_equal_exhaustive_patching_of_the_ungrouped_twin(ioi, gqa64) -> None:
    # Exhaustive single-edge patching and EAP on the GQA model equal those on the ordinary
    # multi-head model that computes the same function, edge by edge.
    twin = _ungrouped_twin(gqa64)
    graph = methods.HeadGraph.of(gqa64)
    batches = [_float64_batch(model, ioi) for model in (gqa64, twin)]
    patchers = [
        methods.EdgePatcher(m, graph, b) for m, b in zip((gqa64, twin), batches, strict=True)
    ]
    torch.testing.assert_close(patchers[0].clean_logits_BV, patchers[1].clean_logits_BV)
    allowed = graph.allowed_SR()
    for s, r in allowed.nonzero().tolist():
        weights = torch.zeros(graph.n_senders, graph.n_receivers)
        weights[s, r] = 1.0
        torch.testing.assert_close(patchers[0].run(weights), patchers[1].run(weights))
    effects = [edge_effects(m, graph, b) for m, b in zip((gqa64, twin), batches, strict=True)]
    torch.testing.assert_close(effects[0], effects[1])
    # And EAP is the exact derivative of the GQA model's edge patching.
    senders, receivers = graph.labels()
    eps = 1e-4
    for upstream, downstream in [("embed", "L0H1"), ("L0H3", "L2H0"), ("MLP0", "L1H1")]:
        s, r = senders.index(upstream), receivers.index(downstream)
        values = []
        for sign in (1, -1):
            weights = torch.zeros(graph.n_senders, graph.n_receivers)
            weights[s, r] = sign * eps
            values.append(batches[0].metric(patchers[0].run(weights)).mean())
        finite_difference = float(values[0] - values[1]) / (2 * eps)
        effect = float(effects[0][s, r]) / batches[0].size
        assert effect == pytest.approx(finite_difference, rel=1e-6, abs=1e-12)


def test_gqa_acdc_and_eap_run_through_the_pipeline(ioi, gqa64) -> None:
    task, data = ioi
    config = PipelineConfig(capture=CaptureConfig(n_prompts=2 * N_PROMPTS, batch_size=6))
    context = MethodContext(gqa64, task, data, config, progress=False)
    for name in ("eap", "acdc"):
        result = methods.get(name).run(context, 0)
        assert result.node["score"].notna().all() and len(result.node) == 12
