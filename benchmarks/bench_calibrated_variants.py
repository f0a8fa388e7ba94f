"""Design grid of `sae-calibrated` on SmolLM2: principal components kept per head x codes per
(prompt, head), node ROC AUC against the reference circuits and against planted heads.

    python benchmarks/bench_calibrated_variants.py --threads 2 \
        --out benchmarks/results/smollm2_calibrated_variants_cpu.json

Per variant (`--components` x `--codes`): the method's `score` (code shift in output units)
against each task's reference circuit (seed 0), and its `z` against 10 heads planted with a
positive-only shift of 0.5 and 1 standard deviation in the IOI activations (3 seeds), which
is what chose the defaults (docs/calibrated.md).
"""

from __future__ import annotations

import argparse
import json
from dataclasses import replace

import numpy as np
import torch

import circuits
from circuits import tasks
from circuits.config import default_config
from circuits.evaluation import roc_auc
from circuits.methods import MethodContext
from circuits.planted import plant_shift
from circuits.runs import own_ground_truth
from interp import load_model


def main() -> None:
    """Print and optionally write the grid."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--components", type=int, nargs="+", default=[16, 32, 64])
    parser.add_argument("--codes", type=int, nargs="+", default=[1, 4, 16])
    parser.add_argument("--shifts", type=float, nargs="+", default=[0.5, 1.0])
    parser.add_argument("--seeds", type=int, default=3)
    parser.add_argument("--threads", type=int, default=None)
    parser.add_argument("--out", default=None, help="JSON file for the results")
    args = parser.parse_args()
    if args.threads:
        torch.set_num_threads(args.threads)
    model = load_model("smollm2-135m")
    contexts, truths = {}, {}
    for name in ("ioi", "greater-than", "docstring"):
        task = tasks.get(name)
        data = task.generate(model.tokenizer, n=250, seed=0)
        contexts[name] = MethodContext(model, task, data, default_config(task))
        contexts[name].head_acts()
        truth = own_ground_truth(task, model)
        truths[name] = np.array(truth.head_mask(model.n_layers, model.n_heads))
    rows = []
    method = circuits.methods.get("sae-calibrated")
    for n_components in args.components:
        for n_codes in args.codes:
            row: dict[str, object] = {"components": n_components, "codes": n_codes}
            for name, context in contexts.items():
                scoring = replace(
                    context.config.scoring,
                    calibrated_components=n_components,
                    calibrated_codes=n_codes,
                )
                context.config = replace(context.config, scoring=scoring)
                node = method.run(context, 0).node
                row[name] = roc_auc(node["score"].to_numpy(), truths[name])
            ioi = contexts["ioi"]
            acts_PHD, is_positive_P = ioi.head_acts()
            for shift in args.shifts:
                aucs = []
                for seed in range(args.seeds):
                    heads = np.random.default_rng(seed).choice(acts_PHD.shape[1], 10, replace=False)
                    planted = plant_shift(acts_PHD.cpu(), heads.tolist(), shift, seed=seed)
                    ioi._acts = (planted.acts_PHD.to(acts_PHD.device), planted.is_positive_P)
                    node = method.run(ioi, seed).node
                    aucs.append(roc_auc(node["z"].to_numpy(), planted.truth_H.numpy()))
                ioi._acts = (acts_PHD, is_positive_P)
                row[f"planted {shift} SD"] = [float(np.mean(aucs)), float(np.std(aucs))]
            print(row, flush=True)
            rows.append(row)
    if args.out:
        with open(args.out, "w") as handle:
            json.dump({"model": "smollm2-135m", "rows": rows}, handle, indent=2)


if __name__ == "__main__":
    main()
