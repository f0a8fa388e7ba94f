"""`sae-calibrated`: the paper's discrete-SAE-code idea with statistics that measure the
difference between positives and negatives instead of how many codes a head uses.

What stays from O'Neill & Bui: each head's output on each prompt (mean over positions)
becomes integer codes of ONE discrete SAE shared by all heads; a head is scored by comparing
its codes on positives and negatives; no gradients, no patching.

What changes, and why (measurements in docs/calibrated.md):
1. Per-head whitening before the shared SAE: each head is centred on its own mean over the
   scored prompts, projected on its own top `calibrated_components` principal directions
   and scaled to unit variance along each (label-free). Mean output norms differ 25-100x
   between heads and each head writes in its own subspace, so one SAE over raw outputs
   gives the large heads a single code on every prompt; in whitened coordinates all heads
   share one scale and spread over many codes, and a change along a low-variance direction
   is as visible as one along the head's largest.
2. Several codes per (prompt, head): its `calibrated_codes` strongest latents (the paper's
   argmax code is the first), so a code records more than which of 200 cells the output
   fell in.
3. Scores from the code shift, `mean over positives of d(codes) - mean over negatives of
   d(codes)` with `d` the mean SAE decoder direction of a prompt's codes
   (`circuits.calibration.code_shift`). Its z-score against shuffled labels (column `z`)
   says whether a head's codes depend on the label at all; the node `score` is the shift
   mapped back to the head's own output units (each principal coordinate times the head's
   spread along it), which weighs a change by how much it moves what later layers read.

The node frame also carries the whitened shift, its p-value, the code-label mutual
information and the paper's count with its chance level E0 and excess (from the strongest
code), so every view can be compared on one run.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch

from circuits.calibration import (
    code_shift,
    expected_exclusive_codes,
    mutual_information,
    permutation_z,
)
from circuits.methods.context import MethodContext
from circuits.methods.registry import register
from circuits.methods.result import ScoreResult
from circuits.methods.sae import fit_sae
from circuits.scoring import node_scores, rank_scores
from circuits.timing import timed
from saes import top_codes

__all__ = ["WhitenedHeads", "sae_calibrated", "whiten_heads"]

_RANK_TOLERANCE = 1e-4
"""A principal direction whose spread is below this fraction of the head's largest is
treated as unused (rounding noise would otherwise be scaled up to unit variance)."""


@dataclass(frozen=True)
class WhitenedHeads:
    """Each head's outputs in its own principal coordinates, unit variance along each."""

    coords_PHR: torch.Tensor
    """Whitened coordinates `[prompt, head, component]` (0 on unused components)."""
    scale_HR: torch.Tensor
    """Each head's standard deviation along each principal direction (0 where unused)."""
    variance_kept_H: torch.Tensor
    """Fraction of each head's variance in the kept components."""


def whiten_heads(acts_PHD: torch.Tensor, n_components: int, seed: int = 0) -> WhitenedHeads:
    """Per head: centre on the mean over prompts, project on the top `n_components` principal
    directions (randomised SVD with a seeded sketch, exact when the head's outputs span at
    most `2 * n_components + 8` dimensions), scale each coordinate to unit variance."""
    n_prompts, _, d_model = acts_PHD.shape
    centred_HPD = (acts_PHD.float() - acts_PHD.float().mean(dim=0, keepdim=True)).transpose(0, 1)
    sketch = min(2 * n_components + 8, n_prompts, d_model)
    devices = [acts_PHD.device] if acts_PHD.device.type == "cuda" else []
    with torch.random.fork_rng(devices=devices):
        torch.manual_seed(seed)
        left_HPK, singular_HK, _ = torch.svd_lowrank(centred_HPD, q=sketch, niter=2)
    rank = min(n_components, sketch)
    scale_HR = singular_HK[:, :rank] / n_prompts**0.5
    used_HR = scale_HR > scale_HR[:, :1] * _RANK_TOLERANCE
    scale_HR = torch.where(used_HR, scale_HR, torch.zeros_like(scale_HR))
    coords_PHR = (left_HPK[:, :, :rank] * used_HR[:, None] * n_prompts**0.5).transpose(0, 1)
    total_H = centred_HPD.pow(2).sum(dim=(1, 2)) / n_prompts
    kept_H = scale_HR.pow(2).sum(dim=1)
    variance_kept_H = torch.where(total_H > 0, kept_H / total_H.clamp_min(1e-30), 1.0)
    return WhitenedHeads(coords_PHR.contiguous(), scale_HR, variance_kept_H)


@register("sae-calibrated")
def sae_calibrated(context: MethodContext, seed: int) -> ScoreResult:
    """Whitened heads, one shared discrete SAE, top-k codes, code shift between labels."""
    acts_PHD, is_positive_P = context.head_acts()
    config = context.config
    device = acts_PHD.device
    seconds: dict[str, float] = {}
    with timed(seconds, "whiten", device):
        whitened = whiten_heads(acts_PHD, config.scoring.calibrated_components, seed)
    with timed(seconds, "sae", device):
        sae = fit_sae(whitened.coords_PHR, config.sae, seed, context.progress)
    with timed(seconds, "codes", device):
        k = min(config.scoring.calibrated_codes, sae.cfg.d_sae)
        codes_PHK = top_codes(sae, whitened.coords_PHR, k).cpu()
    with timed(seconds, "node_scoring", device):
        directions_CR = sae.W_dec.detach()
        shift_H, z_H, p_H = permutation_z(
            lambda labels: code_shift(codes_PHK, directions_CR, labels),
            is_positive_P,
            n_permutations=config.scoring.n_permutations,
            seed=seed,
        )
        scale_HR = whitened.scale_HR.cpu()
        score_H = code_shift(codes_PHK, directions_CR, is_positive_P, scale_HD=scale_HR)
        strongest_PH = codes_PHK[..., 0]
        node = node_scores(strongest_PH, is_positive_P, context.model.n_heads)
        node = node.rename(columns={"score": "exclusive_codes"}).drop(columns="rank")
        node.insert(3, "score", score_H)
        node.insert(4, "rank", rank_scores(node["score"]))
        node["shift"] = shift_H
        node["z"] = z_H
        node["p_value"] = p_H
        node["spread"] = scale_HR.pow(2).sum(dim=1).sqrt().double().numpy()
        node["variance_kept"] = whitened.variance_kept_H.cpu().double().numpy()
        node["mutual_information"] = mutual_information(strongest_PH, is_positive_P)
        node["e0"] = expected_exclusive_codes(strongest_PH, is_positive_P)
        node["excess"] = node["exclusive_codes"] - node["e0"]
    return ScoreResult(
        method="sae-calibrated",
        node=node,
        seconds=seconds,
        extra={
            "n_codes_used": int(strongest_PH.unique().numel()),
            "codes_per_head": k,
            "components": int(whitened.scale_HR.shape[1]),
        },
    )
