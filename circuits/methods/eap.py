"""Edge attribution patching (Syed, Rager & Conmy 2023) on the head-granularity graph.

For an edge from sender `u` (embedding, head, MLP) to receiver `d` (head, MLP, logits),

    effect(u -> d) = mean_x  sum_pos  (out_u(x_corrupted) - out_u(x_clean)) . dm/d input_d(x_clean)

the first-order estimate of patching that one edge (see `circuits.methods.graph`). `input_d`
is the receiver's own input: a head's is its copy of the residual stream in TransformerLens's
`hook_attn_in` (the gradient through its query, key and value inputs together, since the graph
has no Q/K/V split), an MLP's is `hook_mlp_in`, the logits' is the final residual stream.
One clean forward + backward and one corrupted forward per batch give every edge.

Edge score `|effect|`. Node score of a head: the sum of `|effect|` over every edge touching
it, in and out. The signed sum over a head's outgoing edges is its node-level attribution
patching effect in residual space (reported as `effect`).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import torch

from circuits.methods.graph import HeadGraph, edge_frame, group_output, run_cached
from circuits.methods.patching import (
    PatchBatch,
    PatchingConfig,
    patching_method,
    patching_result,
    prepare_batches,
    progress_bar,
)
from circuits.methods.result import ScoreResult
from circuits.tasks import Task, TaskData
from circuits.timing import timed
from interp.models import HookedModel

__all__ = ["EAPConfig", "eap", "edge_effects"]


@dataclass(frozen=True)
class EAPConfig(PatchingConfig):
    """Options of edge attribution patching (only the shared batch size and progress flag)."""


@patching_method("eap", EAPConfig)
def eap(
    model: HookedModel, task: Task, data: TaskData, config: EAPConfig | None = None
) -> ScoreResult:
    """Edge scores by gradient x activation difference; head scores from their edges."""
    config = config or EAPConfig()
    graph = HeadGraph.of(model)
    device = model.device
    batches, _, seconds = prepare_batches(model, task, data, config)
    effects_SR = torch.zeros(graph.n_senders, graph.n_receivers, dtype=torch.float64)
    for batch in progress_bar(batches, "eap", config):
        effects_SR += edge_effects(model, graph, batch, seconds).double().cpu()
    effects_SR /= len(data)
    effects_SR *= graph.allowed_SR()
    with timed(seconds, "node_scores", device):
        n_heads_total = model.n_layers * model.n_heads
        magnitude_SR = effects_SR.abs()
        # Head h is sender h + 1 and receiver h.
        outgoing_H = magnitude_SR[1 : n_heads_total + 1].sum(1)
        incoming_H = magnitude_SR[:, :n_heads_total].sum(0)
        node_effects_H = effects_SR[1 : n_heads_total + 1].sum(1)
    return patching_result(
        "eap",
        outgoing_H + incoming_H,
        model,
        seconds,
        config,
        effects_H=node_effects_H,
        graph_edges=edge_frame(graph, effects_SR.abs(), effects_SR),
    )


def edge_effects(
    model: HookedModel,
    graph: HeadGraph,
    batch: PatchBatch,
    seconds: dict[str, float] | None = None,
) -> torch.Tensor:
    """Summed (not averaged) edge effect estimates `[senders, receivers]` over one batch."""
    seconds = {} if seconds is None else seconds
    device = model.device
    with timed(seconds, "corrupted_forward", device), torch.no_grad():
        corrupted = run_cached(model, batch.corrupted_BS, graph.n_layers, graph.has_mlp)
    with timed(seconds, "clean_forward_backward", device):
        clean, grads = _receiver_gradients(model, graph, batch)
    with timed(seconds, "edge_scores", device), torch.no_grad():
        groups = graph.groups()
        receivers = {group.order: group.receivers for group in groups[1:]}
        receivers[graph.logits_order] = slice(graph.logits_receiver, None)
        effects_SR = torch.zeros(graph.n_senders, graph.n_receivers, device=device)
        for group in groups:
            delta_BSGD = group_output(model, group, corrupted) - group_output(model, group, clean)
            for order, grad_BSRD in grads.items():
                if order > group.order:
                    effects_SR[group.senders, receivers[order]] = torch.einsum(
                        "bsgd,bsrd->gr", delta_BSGD, grad_BSRD
                    )
    return effects_SR


def _receiver_gradients(
    model: HookedModel, graph: HeadGraph, batch: PatchBatch
) -> tuple[dict[str, Any], dict[int, torch.Tensor]]:
    """Clean cache, and by receiver order the metric's gradient at the receivers' inputs.

    Gradients are `[batch, seq, receivers, d_model]` (one receiver for an MLP or the logits).
    """
    groups = graph.groups()[1:]
    inputs: dict[str, torch.Tensor] = {}
    cache: dict[str, list[Any]] = {
        "resid_pre": [None],
        "z": [None] * graph.n_layers,
        "mlp_out": [None] * graph.n_layers,
    }

    def leaf(x: torch.Tensor, hook: Any) -> torch.Tensor:
        # Loaded models have frozen weights: start the graph at the embedding instead.
        cache["resid_pre"][0] = x.detach()
        return x.detach().requires_grad_(True)

    def save_input(x: torch.Tensor, hook: Any) -> None:
        inputs[hook.name] = x

    def save_output(kind: str) -> Any:
        def hook(x: torch.Tensor, hook: Any) -> None:
            cache[kind][hook.layer()] = x.detach()

        return hook

    hooks: list[tuple[str, Any]] = [("blocks.0.hook_resid_pre", leaf)]
    for group in groups:
        hooks.append((group.in_hook, save_input))
        hooks.append((group.out_hook, save_output("z" if group.kind == "heads" else "mlp_out")))
    with torch.enable_grad(), model.per_head_inputs(), model.hooks(hooks):
        final, metric_B = batch.clean_run(model)
        inputs_at = [inputs[group.in_hook] for group in groups]
        grads = torch.autograd.grad(metric_B.sum(), [*inputs_at, final])
    orders = [group.order for group in groups] + [graph.logits_order]
    # hook_attn_in has a head axis; MLP inputs and the final residual stream get one.
    return cache, {
        order: grad if grad.ndim == 4 else grad[:, :, None]
        for order, grad in zip(orders, grads, strict=True)
    }
