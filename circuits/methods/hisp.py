"""Head importance scores (Michel, Levy & Neubig 2019, "Are Sixteen Heads Really Better than One?").

Every head's output is multiplied by a gate `xi_h` (here on `hook_z`, so on `z_h` at every
position, which scales `z_h @ W_O[h]` alike). The importance of head `h` is

    I_h = mean_x | d m(x) / d xi_h |   at xi = 1,

the absolute per-prompt gradient averaged over the clean prompts. Michel et al. use the
training loss; here `m` is the task metric on the clean prompts, so that the score measures
importance for the task (the KL to the clean model would have zero gradient at xi = 1).
Gates are per prompt, so one backward pass gives every prompt's own gradient; corrupted
prompts are not used.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import torch

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

__all__ = ["HISPConfig", "gate_gradients", "gated_metric", "hisp"]


@dataclass(frozen=True)
class HISPConfig(PatchingConfig):
    """Options of HISP (only the shared batch size and progress flag)."""


@patching_method("hisp", HISPConfig)
def hisp(
    model: HookedModel, task: Task, data: TaskData, config: HISPConfig | None = None
) -> ScoreResult:
    """Per-head mean |d metric / d head gate| over the clean prompts."""
    config = config or HISPConfig()
    device = model.device
    batches, _, seconds = prepare_batches(model, task, data, config)
    scores_H = torch.zeros(model.n_layers * model.n_heads, dtype=torch.float64)
    for batch in progress_bar(batches, "hisp", config):
        with timed(seconds, "forward_backward", device):
            grads_BH = gate_gradients(model, batch)
        scores_H += grads_BH.abs().sum(0).double().cpu()
    scores_H /= len(data)
    return patching_result("hisp", scores_H, model, seconds, config)


def gated_metric(model: HookedModel, batch: PatchBatch, gates_BH: torch.Tensor) -> torch.Tensor:
    """Per-prompt metric `[batch]` with head `h`'s `z` scaled by `gates_BH[:, h]`."""
    n_layers, n_heads = model.n_layers, model.n_heads
    gates_BLH = gates_BH.view(batch.size, n_layers, n_heads)

    def gate(z_BSHE: torch.Tensor, hook: Any) -> torch.Tensor:
        return z_BSHE * gates_BLH[:, hook.layer(), None, :, None]

    hooks = [(f"blocks.{layer}.attn.hook_z", gate) for layer in range(n_layers)]
    with model.hooks(hooks):
        return batch.clean_run(model)[1]


def gate_gradients(model: HookedModel, batch: PatchBatch) -> torch.Tensor:
    """Per-prompt gradient `[batch, layer*n_heads]` of the metric w.r.t. head gates at 1."""
    gates_BH = torch.ones(
        batch.size, model.n_layers * model.n_heads, device=model.device, dtype=model.dtype
    ).requires_grad_(True)
    with torch.enable_grad():
        metric = gated_metric(model, batch, gates_BH).sum()
        (grads_BH,) = torch.autograd.grad(metric, [gates_BH])
    return grads_BH
