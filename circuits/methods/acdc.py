"""ACDC at head granularity (Conmy et al. 2023, "Towards Automated Circuit Discovery").

Graph: `circuits.methods.graph` (embedding, heads, MLPs, logits; no Q/K/V split). Starting
from the full graph, receivers are visited in reverse topological order (logits, then each
layer's MLP and heads from the last layer down). Each incoming edge is patched with the
corrupted sender output and the change in loss measured, the edges in descending sender
index: the MLPs (latest layer first), then the heads (latest layer first, last head first),
then the embedding. That is not strictly reverse topological (MLP 0 of a layer-2 receiver
is tried before the heads of layer 1), and the order matters: an edge tried early is judged
against a circuit that still has every later-tried edge, so of two borderline edges the one
tried first is the one removed (organism-ioi, 250 pairs, default thresholds: trying heads
before MLPs moves L0H2, L0H3 and L2H2 from 0.1 to 0.3). The test per edge:

    remove the edge  if  L(circuit without edge) - L(circuit) < tau,

keeping it removed (and updating `L(circuit)`) if so. `L` is `kl`: the mean KL divergence
from the clean model's next-token distribution at the answer position (ACDC's default), or
`task`: `|mean metric(circuit) - mean metric(clean)|`. A head or MLP whose outgoing edges
are all gone by the time it is visited is disconnected from the logits: its incoming edges
are removed without evaluation, as ACDC does.

Because every receiver upstream of the one being visited is still intact, the residual stream
entering its block is the clean one: each evaluation runs only the blocks from the
receiver's layer on (the logits' edges need only the unembedding).

Speculative batches (`edges_per_pass`; by default 16 on a GPU and 1 on the CPU): most
edges are removed, so the next `K` edges of a receiver are evaluated together in one forward
pass of K copies of the prompts, circuit j having edges 1..j of them removed. Walking the K
losses in order gives ACDC's decisions exactly as one edge at a time would, up to the first
edge that is kept; the passes after it assumed it removed, so the next batch starts after
it. The result is the sequential one (up to float rounding in the batched matrix products);
the forward passes drop by up to K times, which is what makes ACDC affordable on a 30-layer
model on a GPU.

Threshold sweep: ACDC runs once per `tau`; a head's node score is the largest `tau` at which
it is still in the circuit (has an outgoing edge), 0 if at none; an edge's score is the
largest `tau` at which it is kept. Cost per `tau`: one evaluation per edge still reachable,
at most `E ~ (n_layers * n_heads)^2 / 2` forward passes of on average half the model over the
prompts (GPT-2 small: 11,611 edges).
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Literal

import torch
from tqdm.auto import tqdm

from circuits.methods.graph import EdgePatcher, HeadGraph, edge_frame
from circuits.methods.patching import (
    PatchingConfig,
    patching_method,
    patching_result,
    prepare_batches,
)
from circuits.methods.result import ScoreResult
from circuits.tasks import Task, TaskData, kl_divergence
from circuits.timing import timed
from interp.models import HookedModel

__all__ = ["ACDCConfig", "PruneResult", "acdc", "circuit_loss", "circuit_losses", "prune"]

ACDCLoss = Literal["kl", "task"]

DEFAULT_THRESHOLDS = (1e-4, 3e-4, 1e-3, 3e-3, 1e-2, 3e-2, 1e-1, 3e-1, 1.0)
GPU_EDGES_PER_PASS = 16
"""Speculative batch of ACDC on a GPU when `ACDCConfig.edges_per_pass` is None."""


@dataclass(frozen=True)
class ACDCConfig(PatchingConfig):
    """Options of ACDC."""

    thresholds: tuple[float, ...] = DEFAULT_THRESHOLDS
    """Values of tau swept (one full ACDC run each), in units of the loss."""
    loss: ACDCLoss = "kl"
    """`kl`: KL divergence from the clean model at the answer position; `task`: absolute
    change of the task metric."""
    edges_per_pass: int | None = None
    """Candidate edge removals evaluated together in one batched forward pass (speculative:
    exact ACDC decisions). None: 16 on a GPU, where a pass of 16 circuits costs little more
    than one; 1 on the CPU, where the work grows with the circuits and the candidates after
    a kept edge are wasted (organisms: 2.5-3x slower with 16)."""

    def __post_init__(self) -> None:
        super().__post_init__()
        if not self.thresholds or min(self.thresholds) < 0:
            raise ValueError(
                f"thresholds={self.thresholds}; give at least one tau >= 0, e.g. (0.01, 0.1)."
            )
        if self.loss not in ("kl", "task"):
            raise ValueError(f"loss={self.loss!r}; use 'kl' or 'task'.")
        if self.edges_per_pass is not None and self.edges_per_pass < 1:
            raise ValueError(f"edges_per_pass={self.edges_per_pass}; use at least 1.")


@dataclass(frozen=True)
class PruneResult:
    """One ACDC run at one threshold."""

    tau: float
    """The threshold."""
    kept_SR: torch.Tensor
    """Boolean `[senders, receivers]`: edges in the circuit."""
    loss: float
    """Loss of the final circuit."""
    n_evaluations: int
    """Circuits whose loss decided an edge (one per edge tried, as sequential ACDC)."""
    n_passes: int
    """Batched forward passes (over all prompts) spent."""


def circuit_loss(
    patchers: Sequence[EdgePatcher], removed_SR: torch.Tensor, start_layer: int, loss: ACDCLoss
) -> float:
    """Loss of the circuit without the `removed_SR` edges, over all prompts."""
    return circuit_losses(patchers, removed_SR[None], start_layer, loss)[0]


def circuit_losses(
    patchers: Sequence[EdgePatcher], removed_KSR: torch.Tensor, start_layer: int, loss: ACDCLoss
) -> list[float]:
    """Loss of each of K circuits (without its `removed_KSR[k]` edges), over all prompts,
    from one batched pass per batch of prompts."""
    n_circuits = removed_KSR.shape[0]
    total_K = torch.zeros(n_circuits, dtype=torch.float64)
    count = 0
    for patcher in patchers:
        logits_KBV = patcher.run_many(removed_KSR, start_layer)
        if loss == "kl":
            clean_KBV = patcher.clean_logits_BV.expand_as(logits_KBV)
            kl_KB = kl_divergence(logits_KBV.flatten(0, 1), clean_KBV.flatten(0, 1), reduce=False)
            total_K += kl_KB.view(n_circuits, -1).sum(dim=1).double().cpu()
        else:
            for k in range(n_circuits):
                change = patcher.batch.metric(logits_KBV[k]).float() - patcher.clean_metric_B
                total_K[k] += float(change.sum())
        count += patcher.batch.size
    if loss == "kl":
        return (total_K / count).tolist()
    return (total_K.abs() / count).tolist()


def prune(
    patchers: Sequence[EdgePatcher],
    tau: float,
    loss: ACDCLoss = "kl",
    progress: bool = False,
    edges_per_pass: int = 1,
) -> PruneResult:
    """One ACDC run: greedily remove every edge whose removal raises the loss by < tau,
    `edges_per_pass` candidate edges per batched forward pass (the same decisions)."""
    graph = patchers[0].graph
    allowed_SR = graph.allowed_SR()
    removed_SR = torch.zeros(allowed_SR.shape)
    current = circuit_loss(patchers, removed_SR, graph.n_layers, loss)
    n_evaluations = n_passes = 1
    order = _reverse_topological_receivers(graph)
    for receiver in tqdm(order, desc=f"acdc tau={tau:g}", disable=not progress, leave=False):
        senders = allowed_SR[:, receiver].nonzero()[:, 0].flip(0).tolist()
        if receiver != graph.logits_receiver:
            # A head or MLP's sender index is its receiver index + 1.
            out_edges = allowed_SR[receiver + 1] & (removed_SR[receiver + 1] == 0)
            if not bool(out_edges.any()):
                removed_SR[senders, receiver] = 1.0
                continue
        start_layer = graph.receiver_layer(receiver)
        next_edge = 0
        while next_edge < len(senders):
            batch = senders[next_edge : next_edge + edges_per_pass]
            # Circuit j: the current one with the batch's edges 1..j removed.
            removed_KSR = removed_SR.repeat(len(batch), 1, 1)
            for j, sender in enumerate(batch):
                removed_KSR[j:, sender, receiver] = 1.0
            losses = circuit_losses(patchers, removed_KSR, start_layer, loss)
            n_passes += 1
            for sender, candidate in zip(batch, losses, strict=True):
                next_edge += 1
                n_evaluations += 1
                if candidate - current >= tau:
                    break  # kept: the later circuits of this batch assumed it removed
                removed_SR[sender, receiver] = 1.0
                current = candidate
    kept_SR = allowed_SR & (removed_SR == 0)
    return PruneResult(
        tau=tau, kept_SR=kept_SR, loss=current, n_evaluations=n_evaluations, n_passes=n_passes
    )


def _reverse_topological_receivers(graph: HeadGraph) -> list[int]:
    """Logits, then per layer from the last: the MLP, then the heads (last head first)."""
    order = [graph.logits_receiver]
    for layer in reversed(range(graph.n_layers)):
        if graph.has_mlp:
            order.append(graph.mlp_receiver(layer))
        heads = graph.head_receivers(layer)
        order.extend(reversed(range(heads.start, heads.stop)))
    return order


@patching_method("acdc", ACDCConfig)
def acdc(
    model: HookedModel, task: Task, data: TaskData, config: ACDCConfig | None = None
) -> ScoreResult:
    """ACDC over a sweep of thresholds; head score = largest tau at which the head survives."""
    config = config or ACDCConfig()
    graph = HeadGraph.of(model)
    device = model.device
    batches, _, seconds = prepare_batches(model, task, data, config)
    with timed(seconds, "cache", device):
        patchers = [EdgePatcher(model, graph, batch) for batch in batches]
    n_heads_total = model.n_layers * model.n_heads
    node_scores_H = torch.zeros(n_heads_total, dtype=torch.float64)
    edge_scores_SR = torch.zeros(graph.n_senders, graph.n_receivers, dtype=torch.float64)
    edges_per_pass = config.edges_per_pass
    if edges_per_pass is None:
        edges_per_pass = GPU_EDGES_PER_PASS if device.type == "cuda" else 1
    runs = []
    for tau in sorted(config.thresholds):
        with timed(seconds, "prune", device):
            run = prune(
                patchers,
                tau,
                config.loss,
                progress=config.progress,
                edges_per_pass=edges_per_pass,
            )
        runs.append(run)
        present_H = run.kept_SR[1 : n_heads_total + 1].any(1)
        node_scores_H[present_H] = tau
        edge_scores_SR[run.kept_SR] = tau
    extra = {
        "thresholds": [run.tau for run in runs],
        "n_edges_kept": [int(run.kept_SR.sum()) for run in runs],
        "n_heads_kept": [int(run.kept_SR[1 : n_heads_total + 1].any(1).sum()) for run in runs],
        "loss": [run.loss for run in runs],
        "n_evaluations": [run.n_evaluations for run in runs],
        "n_passes": [run.n_passes for run in runs],
        "n_edges_total": int(graph.allowed_SR().sum()),
    }
    return patching_result(
        "acdc",
        node_scores_H,
        model,
        seconds,
        config,
        graph_edges=edge_frame(graph, edge_scores_SR),
        extra=extra,
    )
