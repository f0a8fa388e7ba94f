"""Reference circuits of real models by exhaustive causal analysis.

Real pretrained models other than GPT-2 / attn-only-4l have no published circuits, so the
toolkit builds its own references, the same way for every task:
1. per-head activation patching over every head: each head's `z` (all positions) replaced by
   that of the paired corrupted prompt, the effect being the change of the task metric;
2. heads ranked by |effect|; the reference is the top-k for the larger of two k: the smallest
   k whose circuit keeps at least `target` of the normalised metric when every other head is
   ablated counterfactually (its `z` from the paired corrupted prompt),
   f(k) = (m(top-k) - m(none)) / (m(all) - m(none)), and the number of heads whose own
   |effect| is at least `min_effect` of m(all) - m(none) (so no individually important head
   is left out of a small faithful set);
3. stored as a ground-truth file with provenance, the full effect vector and the curve f(k),
   so `circuits reproduce --model smollm2-135m` evaluates against it automatically.

Methods that are themselves activation patching are circular against these references;
they exist to judge the other methods. Run on a GPU:
`python -m circuits.references --model smollm2-135m --task all --device cuda`.
"""

from __future__ import annotations

import argparse
import datetime
import subprocess
import sys
from collections.abc import Sequence
from dataclasses import asdict, dataclass
from pathlib import Path

import numpy as np
from tqdm.auto import tqdm

from circuits import tasks as task_registry
from circuits.faithfulness import CircuitAblator, top_k_mask
from circuits.ground_truth import GroundTruth, Provenance
from circuits.ground_truth.loader import DATA_DIR
from circuits.methods.activation_patching import (
    ActivationPatchingConfig,
    activation_patching,
)
from circuits.tasks import Task
from interp import HookedModel, load_model, packaged

__all__ = ["ReferenceConfig", "build_reference", "reference_path"]


@dataclass(frozen=True)
class ReferenceConfig:
    """How a reference circuit is computed."""

    n_pairs: int = 250
    """Clean/corrupted prompt pairs (generated with `seed`)."""
    seed: int = 0
    """Seed of the task's prompt generator."""
    target: float = 0.8
    """Normalised metric the reference must keep under counterfactual ablation of the rest."""
    min_effect: float = 0.02
    """Heads whose single-head |effect| reaches this fraction of the metric's gap between
    the full model and all heads ablated are in the reference too."""
    batch_size: int = 32
    """Prompts per forward pass."""

    def __post_init__(self) -> None:
        if self.n_pairs < 2:
            raise ValueError(f"n_pairs={self.n_pairs}; use at least 2 prompt pairs.")
        if not 0 < self.target <= 1:
            raise ValueError(f"target={self.target}; give a fraction in (0, 1].")
        if self.batch_size < 1:
            raise ValueError(f"batch_size={self.batch_size}; use a positive batch size.")


def reference_path(task: str, model: str) -> Path:
    """Where the shipped reference of `task` on `model` lives."""
    return DATA_DIR / f"{task}.{model}.json"


def build_reference(
    model: HookedModel,
    task: Task,
    config: ReferenceConfig | None = None,
    *,
    progress: bool = True,
) -> GroundTruth:
    """The reference circuit of `task` on `model` (see the module docstring)."""
    config = config or ReferenceConfig()
    data = task.generate(model.tokenizer, n=config.n_pairs, seed=config.seed)
    patching = activation_patching(
        model,
        task,
        data,
        ActivationPatchingConfig(
            ablation="counterfactual", batch_size=config.batch_size, progress=progress
        ),
    )
    effects_H = patching.node["effect"].to_numpy()
    importance_H = np.abs(effects_H)
    ablator = CircuitAblator(
        model, task, data, ablation="counterfactual", batch_size=config.batch_size
    )
    n_heads = len(effects_H)
    curve: dict[int, float] = {}
    n_faithful = n_heads
    for k in tqdm(range(1, n_heads + 1), desc="reference size", disable=not progress):
        curve[k] = ablator.kept(top_k_mask(importance_H, k))["kept_normalised"]
        if curve[k] >= config.target:
            n_faithful = k
            break
    gap = abs(ablator.full_metric - ablator.empty_metric)
    n_large = int((importance_H >= config.min_effect * gap).sum())
    chosen = max(n_faithful, n_large, 1)
    keep_H = top_k_mask(importance_H, chosen)
    if chosen not in curve:
        curve[chosen] = ablator.kept(keep_H)["kept_normalised"]
    heads = [divmod(int(h), model.n_heads) for h in np.flatnonzero(keep_H)]
    mean_kept = CircuitAblator(
        model, task, data, ablation="mean", batch_size=config.batch_size
    ).kept(keep_H)
    return GroundTruth(
        task=task.name,
        variant=model.name,
        model=model.name,
        heads=frozenset(heads),
        n_layers=model.n_layers,
        n_heads=model.n_heads,
        provenance=Provenance(
            source="sae-circuits-toolkit: exhaustive per-head activation patching; the top "
            "heads by |effect|, enough to be faithful under counterfactual ablation and to "
            "include every large-effect head",
            url="circuits/references.py",
            version=_version(),
            notes=(
                "Selection rule: the top-k heads by |activation-patching effect|, k the larger "
                f"of the smallest k keeping >= {config.target} of the normalised "
                f"{task.metric_name} with every other head's z taken from the paired corrupted "
                f"prompt ({n_faithful}) and the number of heads with |effect| >= "
                f"{config.min_effect} of the full-minus-empty gap ({n_large}). Patching-based "
                "methods are circular against this reference."
            ),
        ),
        extra={
            "model_provenance": _model_provenance(model.name),
            "config": asdict(config),
            "task_options": dict(data.metadata),
            "command": " ".join(["python -m circuits.references", *sys.argv[1:]]),
            "date": datetime.date.today().isoformat(),
            "device": str(model.device),
            "metric": task.metric_name,
            "full_metric": ablator.full_metric,
            "empty_metric": ablator.empty_metric,
            "kept_normalised": curve[chosen],
            "n_faithful": n_faithful,
            "n_large_effect": n_large,
            "kept_normalised_mean_ablation": mean_kept["kept_normalised"],
            "curve_kept_normalised": {str(k): curve[k] for k in sorted(curve)},
            "effects": [float(x) for x in effects_H],
            "effects_note": "per head, layer-major: mean of m(patched) - m(clean) over pairs",
        },
    )


def _model_provenance(name: str) -> dict[str, str]:
    """What identifies the weights: the packaged GGUF's sha256 where there is one."""
    spec = packaged.PACKAGED_MODELS.get(name)
    if spec is None:
        return {"model": name}
    gguf = packaged.gguf_path(spec)
    return {
        "model": name,
        "source": spec.source,
        "package": spec.requirement,
        "gguf_sha256": packaged.sha256(gguf),
    }


def _version() -> str:
    """The toolkit commit the reference was computed with (or 'unknown')."""
    try:
        commit = subprocess.run(
            ["git", "rev-parse", "--short", "HEAD"],
            capture_output=True,
            text=True,
            check=True,
            cwd=Path(__file__).parent,
        ).stdout.strip()
    except (OSError, subprocess.CalledProcessError):
        return "unknown"
    return f"commit {commit}"


def main(argv: Sequence[str] | None = None) -> int:
    """Compute and write reference circuits (see the module docstring)."""
    parser = argparse.ArgumentParser(
        prog="python -m circuits.references", description=__doc__.splitlines()[0]
    )
    parser.add_argument("--model", required=True, help="model name or checkpoint directory")
    parser.add_argument("--task", default="all", help="a task name or 'all'")
    parser.add_argument("--device", default=None, help="torch device (default: cuda if any)")
    parser.add_argument("--out", default=None, help="folder (default: the shipped ones)")
    for name, default in asdict(ReferenceConfig()).items():
        parser.add_argument(f"--{name.replace('_', '-')}", type=type(default), default=default)
    args = parser.parse_args(argv)
    names = task_registry.names() if args.task == "all" else (args.task,)
    config = ReferenceConfig(
        **{key: getattr(args, key) for key in asdict(ReferenceConfig()) if hasattr(args, key)}
    )
    model = load_model(args.model, device=args.device)
    for name in names:
        reference = build_reference(model, task_registry.get(name), config)
        path = reference_path(name, model.name)
        if args.out is not None:
            path = Path(args.out) / path.name
        reference.save(path)
        print(
            f"{name}: {len(reference.heads)} heads keep "
            f"{reference.extra['kept_normalised']:.3f} (counterfactual), "
            f"{reference.extra['kept_normalised_mean_ablation']:.3f} (mean) -> {path}",
            flush=True,
        )
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
