"""Planted-signal benchmark: does a method find heads whose outputs differ between labels?

Real captured activations of a task's prompts get random labels (half positive), and a
positive-only shift of `shift` standard deviations (along a random direction, in the head's
own spread along it) is planted in `--n-planted` random heads; node ROC AUC against the
planted heads, per method and shift, mean and std over seeds. The `sae-calibrated` row
ranks by its score (code shift in the head's output units) and `sae-calibrated z` by the
shift's z-score against shuffled labels; `means z (no codes)` is the signal pre-check's
z-score of the distance between the positive and negative mean outputs, what a test on the
raw outputs reaches.

    python benchmarks/bench_planted.py --model smollm2-135m --task ioi --device cuda
"""

from __future__ import annotations

import argparse
import json
import time

import numpy as np
import torch

import circuits
from circuits import tasks
from circuits.config import default_config
from circuits.evaluation import roc_auc
from circuits.methods import MethodContext
from circuits.planted import plant_shift
from circuits.signal import signal_check
from interp import load_model

SHIFTS = (0.0, 0.5, 1.0, 2.0, 4.0)
VIEWS = {"sae": ("sae", "score"), "sae-calibrated": ("sae-calibrated", "score")}
VIEWS["sae-calibrated z"] = ("sae-calibrated", "z")
VIEWS["norm"] = ("norm", "score")
VIEWS["means z (no codes)"] = ("signal pre-check", "z")


def main() -> None:
    """Print and optionally write AUC against planted heads per method and shift."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--model", default="organism-ioi")
    parser.add_argument("--task", default="ioi")
    parser.add_argument("--device", default=None)
    parser.add_argument("--n-planted", type=int, default=10)
    parser.add_argument("--seeds", type=int, default=5)
    parser.add_argument("--threads", type=int, default=None)
    parser.add_argument("--out", default=None, help="JSON file for the results")
    args = parser.parse_args()
    if args.threads:
        torch.set_num_threads(args.threads)
    model = load_model(args.model, device=args.device)
    task = tasks.get(args.task)
    data = task.generate(model.tokenizer, n=250, seed=0)
    context = MethodContext(model, task, data, default_config(task))
    acts_PHD, _ = context.head_acts()
    n_heads = acts_PHD.shape[1]
    planted_count = min(args.n_planted, n_heads // 4)
    rows: dict[str, dict[float, list[float]]] = {view: {} for view in VIEWS}
    start = time.perf_counter()
    for shift in SHIFTS:
        for seed in range(args.seeds):
            heads = np.random.default_rng(seed).choice(n_heads, planted_count, replace=False)
            planted = plant_shift(acts_PHD.cpu(), heads.tolist(), shift, seed=seed)
            context._acts = (planted.acts_PHD.to(acts_PHD.device), planted.is_positive_P)
            nodes = {
                method: circuits.methods.get(method).run(context, seed).node
                for method, _ in VIEWS.values()
                if method != "signal pre-check"
            }
            check = signal_check(planted.acts_PHD, planted.is_positive_P, seed=seed)
            nodes["signal pre-check"] = {"z": check.z_H}
            truth = planted.truth_H.numpy()
            for view, (method, column) in VIEWS.items():
                auc = roc_auc(np.asarray(nodes[method][column]), truth)
                rows[view].setdefault(shift, []).append(auc)
    print(
        f"{args.model} / {args.task}: {planted_count} planted heads of {n_heads}, "
        f"{args.seeds} seeds, {time.perf_counter() - start:.1f} s"
    )
    print("shift (SD) | " + " | ".join(VIEWS))
    for shift in SHIFTS:
        cells = [f"{np.mean(rows[v][shift]):.3f} ± {np.std(rows[v][shift]):.3f}" for v in VIEWS]
        print(f"{shift} | " + " | ".join(cells))
    if args.out:
        summary = {
            view: {str(s): [float(np.mean(v)), float(np.std(v))] for s, v in by_shift.items()}
            for view, by_shift in rows.items()
        }
        with open(args.out, "w") as handle:
            json.dump({"model": args.model, "task": args.task, "auc": summary}, handle, indent=2)


if __name__ == "__main__":
    main()
