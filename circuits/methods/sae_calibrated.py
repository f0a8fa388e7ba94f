"""`sae-calibrated`: the paper's discrete-SAE-code idea with statistics that measure the
difference between positives and negatives instead of how many codes a head uses.

What stays from O'Neill & Bui: each head's output on each prompt (mean over positions)
becomes one integer code, the argmax latent of ONE discrete SAE shared by all heads; a head
is scored by comparing its codes on positives and negatives; no gradients, no patching.

What changes, and why (measurements in docs/calibrated.md):
1. Per-head standardisation before the shared SAE: each head's outputs are centred on its
   own mean over the scored prompts and divided by its own RMS deviation `s_h`. Mean
   output norms differ 25-100x between heads, so without it the large heads get a single
   code on every prompt and any change inside them is invisible. Label-free.
2. Score: how far the head's codes move between positives and negatives, in the head's
   own units: `s_h * || mean_pos d(code) - mean_neg d(code) ||`, with `d(c)` the SAE's
   decoder direction of code c (`circuits.calibration.code_shift`). The paper's count of
   positive-only codes is mostly the number of distinct codes a head uses (rank
   correlation 0.97-0.98 with its label-free expectation E0); the shift is zero for a head
   whose code distribution does not depend on the label, and it weighs a change by how
   much it moves the head's output, which is what the rest of the model reads.

The node frame also carries the shift's z-score and p-value against shuffled labels (is
the difference real?), the code-label mutual information, and the paper's count with its
chance level E0 and excess, so every view can be compared on one run.
"""

from __future__ import annotations

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
from saes import codes

__all__ = ["sae_calibrated", "standardise_heads"]


def standardise_heads(acts_PHD: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """Each head centred on its mean over prompts and scaled to unit RMS deviation; also
    returns the scales `s_H`."""
    acts = acts_PHD.float()
    mean_1HD = acts.mean(dim=0, keepdim=True)
    spread_H = (acts - mean_1HD).pow(2).mean(dim=(0, 2)).sqrt()
    # A head that never changes stays at zero instead of dividing by zero.
    safe_H = spread_H.clamp_min(torch.finfo(acts.dtype).tiny)
    return (acts - mean_1HD) / safe_H[None, :, None], spread_H


@register("sae-calibrated")
def sae_calibrated(context: MethodContext, seed: int) -> ScoreResult:
    """Standardised heads, one shared discrete SAE, code shift between labels per head."""
    acts_PHD, is_positive_P = context.head_acts()
    config = context.config
    device = acts_PHD.device
    seconds: dict[str, float] = {}
    with timed(seconds, "standardise", device):
        standard_PHD, scale_H = standardise_heads(acts_PHD)
    with timed(seconds, "sae", device):
        sae = fit_sae(standard_PHD, config.sae, seed, context.progress)
    with timed(seconds, "codes", device):
        codes_PH = codes(sae, standard_PHD, dead_rows=config.scoring.dead_rows).cpu()
    with timed(seconds, "node_scoring", device):
        directions_CD = sae.W_dec.detach()
        shift_H, z_H, p_H = permutation_z(
            lambda labels: code_shift(codes_PH, directions_CD, labels),
            is_positive_P,
            n_permutations=config.scoring.n_permutations,
            seed=seed,
        )
        node = node_scores(codes_PH, is_positive_P, context.model.n_heads)
        node = node.rename(columns={"score": "exclusive_codes"}).drop(columns="rank")
        node.insert(3, "score", shift_H * scale_H.cpu().double().numpy())
        node.insert(4, "rank", rank_scores(node["score"]))
        node["shift"] = shift_H
        node["scale"] = scale_H.cpu().double().numpy()
        node["z"] = z_H
        node["p_value"] = p_H
        node["mutual_information"] = mutual_information(codes_PH, is_positive_P)
        node["e0"] = expected_exclusive_codes(codes_PH, is_positive_P)
        node["excess"] = node["exclusive_codes"] - node["e0"]
    return ScoreResult(
        method="sae-calibrated",
        node=node,
        seconds=seconds,
        extra={"n_codes_used": int(codes_PH.unique().numel())},
    )
