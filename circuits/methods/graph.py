"""The head-granularity computational graph and edge-level patching, shared by EAP and ACDC.

Nodes (Conmy et al. 2023, without the Q/K/V split): the input embedding, every attention head,
every MLP and the logits. A *sender* writes into the residual stream (embedding, heads, MLPs);
a *receiver* reads from it (heads, MLPs, logits). There is an edge from every sender to every
receiver later in the forward pass: a head of layer `l` reads the embedding and the heads and
MLPs of layers `< l`; MLP `l` also reads the heads of layer `l`; the logits read everything.

A head's output is `z_h @ W_O[h]` (TransformerLens `hook_result`, no `b_O`: biases are the
same on clean and corrupted prompts, so they cancel in every difference used here).

Edge patching: with edge weights `w[s, r]` in [0, 1] (1 = edge removed), receiver `r` reads

    input_r = resid_r - sum_s w[s, r] * (out_s - out_s_corrupted)

where `resid_r` is the residual stream at `r` in the same (patched) pass and `out_s` the
sender's output in that pass. Each head gets its own input through TransformerLens's
`hook_attn_in` (`cfg.use_attn_in`), each MLP through `hook_mlp_in`, the logits through the
final residual stream (`HookedModel.per_head_inputs`). `w = 0` everywhere reproduces the
clean forward pass.

Grouped-query attention: each query head is a receiver with its own query, key and value
input (the shared K/V weights are applied per query head inside the patched pass), the
head-level graph of Conmy et al.; an edge into a whole K/V head is the sum of the edges into
its query heads.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import numpy as np
import pandas as pd
import torch
from transformer_lens.utilities.architectures import POST_NORM_ARCHITECTURES

from circuits.methods.patching import PatchBatch
from circuits.scoring import rank_scores
from interp.heads import head_labels
from interp.models import HookedModel

__all__ = [
    "EdgePatcher",
    "HeadGraph",
    "SenderGroup",
    "check_graph_model",
    "edge_frame",
    "group_output",
    "run_cached",
]


def check_graph_model(model: HookedModel) -> None:
    """Raise if the architecture breaks the residual-stream decomposition the graph assumes."""
    cfg = model.cfg
    problems = {
        "parallel attention and MLP (parallel_attn_mlp)": cfg.parallel_attn_mlp,
        "post-norm blocks": cfg.original_architecture in POST_NORM_ARCHITECTURES,
        "normalisation after attention (use_normalization_before_and_after)": (
            cfg.use_normalization_before_and_after
        ),
    }
    found = [name for name, present in problems.items() if present]
    if found:
        raise ValueError(
            f"model {model.name!r} has {', '.join(found)}; the edge-level baselines (eap, "
            "acdc) need pre-norm sequential blocks whose heads add z @ W_O to the residual "
            "stream. Use a node-level baseline (activation-patching, attribution-patching, "
            "hisp) for this model."
        )


@dataclass(frozen=True)
class SenderGroup:
    """Senders written by one component of the forward pass: embedding, a layer's heads, an MLP."""

    kind: str
    """`embed`, `heads` or `mlp`."""
    layer: int
    """Layer of the component (-1 for the embedding)."""
    senders: slice
    """Their sender indices."""
    order: int
    """Topological position: a receiver reads groups of smaller order."""
    receivers: slice
    """The same components' receiver indices (empty for the embedding)."""
    in_hook: str
    """Hook of their inputs: `blocks.{l}.hook_attn_in` (per head) or `blocks.{l}.hook_mlp_in`."""
    out_hook: str
    """Hook of their outputs: `blocks.{l}.attn.hook_z` or `blocks.{l}.hook_mlp_out`."""


@dataclass(frozen=True)
class HeadGraph:
    """Sender and receiver indexing of a model's head-granularity graph.

    Senders: `embed` (0), heads layer-major (`1 + layer * n_heads + head`), then MLPs.
    Receivers: heads layer-major (`layer * n_heads + head`, the toolkit's head index), then
    MLPs, then `logits`. A head or MLP's sender index is its receiver index plus one.
    """

    n_layers: int
    n_heads: int
    has_mlp: bool

    @classmethod
    def of(cls, model: HookedModel) -> HeadGraph:
        """The graph of a model (checked to be supported)."""
        check_graph_model(model)
        return cls(model.n_layers, model.n_heads, not model.cfg.attn_only)

    @property
    def n_mlps(self) -> int:
        """MLP nodes (0 for attention-only models)."""
        return self.n_layers if self.has_mlp else 0

    @property
    def n_senders(self) -> int:
        """Embedding + heads + MLPs."""
        return 1 + self.n_layers * self.n_heads + self.n_mlps

    @property
    def n_receivers(self) -> int:
        """Heads + MLPs + logits."""
        return self.n_layers * self.n_heads + self.n_mlps + 1

    @property
    def logits_receiver(self) -> int:
        """Receiver index of the logits."""
        return self.n_receivers - 1

    @property
    def logits_order(self) -> int:
        """Topological position of the logits (after every sender)."""
        return 2 * self.n_layers + 1

    def head_receivers(self, layer: int) -> slice:
        """Receiver indices of a layer's heads."""
        return slice(layer * self.n_heads, (layer + 1) * self.n_heads)

    def mlp_receiver(self, layer: int) -> int:
        """Receiver index of a layer's MLP."""
        return self.n_layers * self.n_heads + layer

    def labels(self) -> tuple[list[str], list[str]]:
        """Sender labels and receiver labels (`embed`, `L{l}H{h}`, `MLP{l}`, `logits`)."""
        heads = head_labels(self.n_layers, self.n_heads)
        mlps = [f"MLP{i}" for i in range(self.n_mlps)]
        return ["embed", *heads, *mlps], [*heads, *mlps, "logits"]

    def groups(self) -> list[SenderGroup]:
        """Sender groups in forward order."""
        groups = [SenderGroup("embed", -1, slice(0, 1), 0, slice(0, 0), "", "")]
        for layer in range(self.n_layers):
            heads = self.head_receivers(layer)
            groups.append(
                SenderGroup(
                    "heads",
                    layer,
                    slice(heads.start + 1, heads.stop + 1),
                    2 * layer + 1,
                    heads,
                    f"blocks.{layer}.hook_attn_in",
                    f"blocks.{layer}.attn.hook_z",
                )
            )
            if self.has_mlp:
                mlp = self.mlp_receiver(layer)
                groups.append(
                    SenderGroup(
                        "mlp",
                        layer,
                        slice(mlp + 1, mlp + 2),
                        2 * layer + 2,
                        slice(mlp, mlp + 1),
                        f"blocks.{layer}.hook_mlp_in",
                        f"blocks.{layer}.hook_mlp_out",
                    )
                )
        return groups

    def receiver_order(self) -> torch.Tensor:
        """Topological position of every receiver (heads of layer l: 2l+1, MLP l: 2l+2)."""
        heads = 2 * torch.arange(self.n_layers).repeat_interleave(self.n_heads) + 1
        mlps = 2 * torch.arange(self.n_mlps) + 2
        return torch.cat([heads, mlps, torch.tensor([2 * self.n_layers + 1])])

    def sender_order(self) -> torch.Tensor:
        """Topological position of every sender (embedding 0, heads 2l+1, MLP l 2l+2)."""
        return torch.cat([torch.zeros(1, dtype=torch.long), self.receiver_order()[:-1]])

    def allowed_SR(self) -> torch.Tensor:
        """Boolean `[n_senders, n_receivers]`: True where the edge exists."""
        return self.sender_order()[:, None] < self.receiver_order()[None, :]

    def receiver_layer(self, receiver: int) -> int:
        """The block a receiver sits in (`n_layers` for the logits)."""
        if receiver == self.logits_receiver:
            return self.n_layers
        if receiver < self.n_layers * self.n_heads:
            return receiver // self.n_heads
        return receiver - self.n_layers * self.n_heads


class EdgePatcher:
    """Forward passes of one batch in which chosen edges carry corrupted sender outputs.

    The clean and corrupted runs are cached once. `run_many` evaluates several circuits in
    one pass (the batch repeated once per circuit). A pass may start at a later block
    (`start_layer`) when no receiver before it has a patched edge: everything upstream is
    then exactly the clean run, which ACDC's reverse-topological sweep guarantees.
    """

    def __init__(self, model: HookedModel, graph: HeadGraph, batch: PatchBatch):
        self.model = model
        self.graph = graph
        self.batch = batch
        self.groups = graph.groups()
        n_layers = graph.n_layers
        with torch.no_grad():
            clean = run_cached(model, batch.clean_BS, n_layers, graph.has_mlp)
            corrupted = run_cached(model, batch.corrupted_BS, n_layers, graph.has_mlp)
            self.clean_delta = [
                group_output(model, group, clean) - group_output(model, group, corrupted)
                for group in self.groups
            ]
            """Per sender group, clean minus corrupted output `[batch, seq, group, d_model]`."""
            self.clean_logits_BV = model.answer_logits(clean["final"], batch.answer_pos_B)
            self.clean_metric_B = batch.metric(self.clean_logits_BV).float()
        self.resid_pre = clean["resid_pre"] + [clean["final"]]
        """Clean residual stream entering each block, then the final one."""
        self.z_corrupted = corrupted["z"]
        self.mlp_corrupted = corrupted["mlp_out"]

    def run(self, weights_SR: torch.Tensor, start_layer: int = 0) -> torch.Tensor:
        """Answer-position logits `[batch, vocab]`, edge `(s, r)` patched by `weights_SR[s, r]`."""
        return self.run_many(weights_SR[None], start_layer)[0]

    def run_many(self, weights_KSR: torch.Tensor, start_layer: int = 0) -> torch.Tensor:
        """Logits `[K, batch, vocab]` of K patched circuits in one forward pass of K copies
        of the batch, circuit k with edge `(s, r)` patched by `weights_KSR[k, s, r]`."""
        graph = self.graph
        if weights_KSR.ndim != 3 or weights_KSR.shape[1:] != (graph.n_senders, graph.n_receivers):
            raise ValueError(
                f"weights have shape {tuple(weights_KSR.shape)}; expected (K, "
                f"{graph.n_senders}, {graph.n_receivers}) = (circuits, senders, receivers)."
            )
        n_circuits = weights_KSR.shape[0]
        # Which weights are zero is decided on the CPU copy: no device sync per group.
        present_KSR = weights_KSR.detach().cpu() != 0
        weights_KSR = weights_KSR.to(device=self.model.device, dtype=self.model.dtype)
        live: dict[int, torch.Tensor] = {}

        def delta(index: int) -> torch.Tensor:
            """`[K or 1, batch, seq, group, d_model]`."""
            group = self.groups[index]
            return live[index] if group.layer >= start_layer else self.clean_delta[index][None]

        def incoming(receivers: slice, order: int) -> torch.Tensor | None:
            """`[K * batch, seq, receiver, d_model]`: what the patched edges take away."""
            total = None
            for index, group in enumerate(self.groups):
                if group.order >= order:
                    break
                if not bool(present_KSR[:, group.senders, receivers].any()):
                    continue
                w_KGR = weights_KSR[:, group.senders, receivers]
                part = torch.einsum("kbsgd,kgr->kbsrd", delta(index), w_KGR)
                total = part if total is None else total + part
            return None if total is None else total.flatten(0, 1)

        hooks: list[tuple[str, Any]] = []
        for index, group in enumerate(self.groups):
            if group.layer < start_layer or group.kind == "embed":
                continue
            hooks.append((group.in_hook, _subtract(incoming, group.receivers, group.order)))
            # A sender whose edges are all intact needs no live difference.
            if bool(present_KSR[:, group.senders].any()):
                hooks.append((group.out_hook, self._record(live, index, group, n_circuits)))
        tokens_BS = self.batch.clean_BS.repeat(n_circuits, 1)
        answer_pos_B = self.batch.answer_pos_B.repeat(n_circuits)
        with torch.no_grad(), self.model.per_head_inputs(), self.model.hooks(hooks):
            resid_BSD = self.model.run_from(
                self.resid_pre[start_layer].repeat(n_circuits, 1, 1), start_layer, tokens_BS
            )
            logits_in = incoming(slice(graph.logits_receiver, None), graph.logits_order)
            if logits_in is not None:
                resid_BSD = resid_BSD - logits_in[:, :, 0]
            logits_BV = self.model.answer_logits(resid_BSD, answer_pos_B)
        return logits_BV.unflatten(0, (n_circuits, -1))

    def _record(
        self, live: dict[int, torch.Tensor], index: int, group: SenderGroup, n_circuits: int
    ) -> Any:
        """A hook storing a group's output minus its corrupted output, in residual space,
        `[n_circuits, batch, seq, group, d_model]` (the pass runs the batch once per circuit)."""
        if group.kind == "heads":
            W_O = self.model.W_O(group.layer)
            z_corrupted = self.z_corrupted[group.layer]

            def heads(z_BSHE: torch.Tensor, hook: Any) -> None:
                z_KBSHE = z_BSHE.unflatten(0, (n_circuits, -1))
                live[index] = torch.einsum("kbshe,hed->kbshd", z_KBSHE - z_corrupted, W_O)

            return heads
        mlp_corrupted = self.mlp_corrupted[group.layer]

        def mlp(out_BSD: torch.Tensor, hook: Any) -> None:
            live[index] = (out_BSD.unflatten(0, (n_circuits, -1)) - mlp_corrupted)[..., None, :]

        return mlp


def _subtract(incoming: Any, receivers: slice, order: int) -> Any:
    """A hook subtracting the patched edges' contributions from a receiver input."""

    def hook(x: torch.Tensor, hook: Any) -> torch.Tensor:
        patch = incoming(receivers, order)
        if patch is None:
            return x
        # hook_attn_in is [batch, seq, head, d_model]; hook_mlp_in is [batch, seq, d_model].
        return x - (patch if x.ndim == 4 else patch[:, :, 0])

    return hook


def run_cached(
    model: HookedModel, tokens_BS: torch.Tensor, n_layers: int, has_mlp: bool
) -> dict[str, Any]:
    """Residual stream entering each block, final residual, every layer's z and MLP output."""
    store: dict[str, list[Any]] = {
        "resid_pre": [None] * n_layers,
        "z": [None] * n_layers,
        "mlp_out": [None] * n_layers,
    }

    def save(kind: str) -> Any:
        def hook(x: torch.Tensor, hook: Any) -> None:
            store[kind][hook.layer()] = x.detach()

        return hook

    hooks = []
    for layer in range(n_layers):
        hooks.append((f"blocks.{layer}.hook_resid_pre", save("resid_pre")))
        hooks.append((f"blocks.{layer}.attn.hook_z", save("z")))
        if has_mlp:
            hooks.append((f"blocks.{layer}.hook_mlp_out", save("mlp_out")))
    with model.hooks(hooks):
        final = model.final_resid(tokens_BS)
    return {**store, "final": final.detach()}


def group_output(model: HookedModel, group: SenderGroup, cache: dict[str, Any]) -> torch.Tensor:
    """A sender group's output `[batch, seq, group, d_model]` from a cached run."""
    if group.kind == "embed":
        return cache["resid_pre"][0][:, :, None]
    if group.kind == "mlp":
        return cache["mlp_out"][group.layer][:, :, None]
    W_O = model.W_O(group.layer)
    return torch.einsum("bshe,hed->bshd", cache["z"][group.layer], W_O)


def edge_frame(
    graph: HeadGraph, scores_SR: torch.Tensor, effects_SR: torch.Tensor | None = None
) -> pd.DataFrame:
    """Every edge of the graph: upstream, downstream, score, rank, and a signed effect if given."""
    senders, receivers = graph.labels()
    s_index, r_index = graph.allowed_SR().nonzero(as_tuple=True)
    frame = pd.DataFrame(
        {
            "upstream": np.asarray(senders, dtype=object)[s_index.numpy()],
            "downstream": np.asarray(receivers, dtype=object)[r_index.numpy()],
            "score": scores_SR[s_index, r_index].double().numpy(),
        }
    )
    frame["rank"] = rank_scores(frame["score"])
    if effects_SR is not None:
        frame["effect"] = effects_SR[s_index, r_index].double().numpy()
    return frame
