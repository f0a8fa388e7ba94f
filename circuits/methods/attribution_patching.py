"""Attribution patching per head (Nanda 2023; Syed, Rager & Conmy 2023, node level).

First-order estimate of activation patching: for head `h`,

    effect_h ~= mean_x  sum_pos  dm/dz_h(x_clean) . (z_h_ref - z_h(x_clean))

with `m` the task metric on the clean prompt and `z_h_ref` the same reference activation
patching uses (`counterfactual`: the paired corrupted prompt's z; `mean`: the per-position mean over
corrupted prompts). One clean forward + backward and one corrupted forward per batch, for all
heads at once. Score: `|effect_h|`.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import torch

from circuits.methods.patching import (
    AblationConfig,
    PatchBatch,
    patching_method,
    patching_result,
    prepare_batches,
    progress_bar,
    reference_z,
)
from circuits.methods.result import ScoreResult
from circuits.tasks import Task, TaskData
from circuits.timing import timed
from interp.models import HookedModel

__all__ = ["AttributionPatchingConfig", "attribution_patching", "clean_z_gradients"]


@dataclass(frozen=True)
class AttributionPatchingConfig(AblationConfig):
    """Options of attribution patching (the reference z as activation patching's)."""


@patching_method("attribution-patching", AttributionPatchingConfig)
def attribution_patching(
    model: HookedModel,
    task: Task,
    data: TaskData,
    config: AttributionPatchingConfig | None = None,
) -> ScoreResult:
    """Per-head gradient x (reference - clean) z estimate of the patching effect."""
    config = config or AttributionPatchingConfig()
    device = model.device
    batches, mean, seconds = prepare_batches(model, task, data, config)
    n_layers, n_heads = model.n_layers, model.n_heads
    effects_H = torch.zeros(n_layers * n_heads, dtype=torch.float64)
    for batch in progress_bar(batches, "attribution patching", config):
        with timed(seconds, "reference", device):
            ref_z = reference_z(model, batch, mean)
        with timed(seconds, "clean_forward_backward", device):
            clean_z, grads = clean_z_gradients(model, batch)
        with timed(seconds, "attribution", device):
            for layer in range(n_layers):
                diff_BSHE = ref_z[layer] - clean_z[layer]
                effect = torch.einsum("bshe,bshe->h", grads[layer], diff_BSHE)
                effects_H[layer * n_heads : (layer + 1) * n_heads] += effect.double().cpu()
    effects_H /= len(data)
    return patching_result(
        "attribution-patching", effects_H.abs(), model, seconds, config, effects_H=effects_H
    )


def clean_z_gradients(
    model: HookedModel, batch: PatchBatch
) -> tuple[list[torch.Tensor], list[torch.Tensor]]:
    """Every layer's clean `z` and the gradient of the summed per-prompt metric w.r.t. it."""
    z_store: list[Any] = [None] * model.n_layers

    def leaf(x: torch.Tensor, hook: Any) -> torch.Tensor:
        # Loaded models have frozen weights: start the graph at the embedding instead.
        return x.detach().requires_grad_(True)

    def save(z_BSHE: torch.Tensor, hook: Any) -> None:
        z_store[hook.layer()] = z_BSHE

    hooks = [("blocks.0.hook_resid_pre", leaf)]
    hooks += [(f"blocks.{layer}.attn.hook_z", save) for layer in range(model.n_layers)]
    with torch.enable_grad(), model.hooks(hooks):
        _, metric_B = batch.clean_run(model)
        grads = torch.autograd.grad(metric_B.sum(), z_store)
    return [z.detach() for z in z_store], list(grads)
