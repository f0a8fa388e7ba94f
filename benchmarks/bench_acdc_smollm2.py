"""ACDC on SmolLM2-135M against its reference circuits, at a size one device session allows.

    python benchmarks/bench_acdc_smollm2.py --device cuda --n-pairs 25 \
        --thresholds 0.003 0.01 0.03 0.1 --edges-per-pass 32 --out results/acdc_smollm2.json

ACDC runs with speculative batches of `--edges-per-pass` candidate removals per forward
pass (exact ACDC decisions). With `--extrapolate`, the cost of one-edge-at-a-time ACDC is
first measured per start block (`bench_baselines.acdc_extrapolation`) and ACDC runs only if
that sweep fits `--max-seconds` (how the sequential version was costed). Reported per task:
node ROC AUC against the shipped reference, MIB's CPR and CMD (counterfactual ablation on
the same pairs), seconds, forward passes and edges evaluated, heads and edges kept.
"""

from __future__ import annotations

import argparse
import json
import time
from pathlib import Path

import torch
from bench_baselines import acdc_extrapolation

from circuits import evaluate, ground_truth, methods, tasks
from circuits.faithfulness import CircuitAblator, faithfulness_curve
from circuits.references import reference_path
from interp import load_model


def main() -> None:
    """Run ACDC per task where it fits the time budget; print and save the rows."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--device", default="cuda")
    parser.add_argument("--n-pairs", type=int, default=25)
    parser.add_argument("--thresholds", type=float, nargs="+", default=[0.01])
    parser.add_argument("--tasks", nargs="+", default=list(tasks.names()))
    parser.add_argument("--edges-per-pass", type=int, default=32)
    parser.add_argument("--extrapolate", action="store_true")
    parser.add_argument("--max-seconds", type=float, default=480.0)
    parser.add_argument("--out", type=Path, default=None)
    args = parser.parse_args()
    model = load_model("smollm2-135m", device=args.device)
    rows = []
    for name in args.tasks:
        task = tasks.get(name)
        data = task.generate(model.tokenizer, n=args.n_pairs, seed=0)
        truth = ground_truth.load_file(reference_path(name, model.name))
        row: dict[str, object] = {"task": name, "n_pairs": args.n_pairs}
        sweep = 0.0
        if args.extrapolate:
            cost = acdc_extrapolation(model, task, data, args.n_pairs, repeats=1)
            sweep = cost["extrapolated_wall_seconds_per_threshold"] * len(args.thresholds)
            row["extrapolated_sweep_s"] = sweep
            print(f"{name}: extrapolated one-edge-per-pass sweep {sweep:.0f} s", flush=True)
        if sweep <= args.max_seconds:
            config = methods.ACDCConfig(
                thresholds=tuple(args.thresholds),
                batch_size=args.n_pairs,
                edges_per_pass=args.edges_per_pass,
            )
            start = time.perf_counter()
            result = methods.acdc(model, task, data, config)
            if model.device.type == "cuda":
                torch.cuda.synchronize()
            scores_H = result.node["score"].to_numpy()
            ablator = CircuitAblator(model, task, data, ablation="counterfactual")
            curve = faithfulness_curve(ablator, scores_H)
            row |= {
                "seconds": time.perf_counter() - start,
                "roc_auc": evaluate(result.node, truth.heads).roc_auc,
                "cpr": curve.cpr,
                "cmd": curve.cmd,
                "seconds_by_stage": result.seconds,
                "n_heads_kept": result.extra["n_heads_kept"],
                "n_edges_kept": result.extra["n_edges_kept"],
                "n_passes": result.extra["n_passes"],
                "n_evaluations": result.extra["n_evaluations"],
            }
            print(row, flush=True)
        rows.append(row)
        if args.out is not None:  # after every task: a run cut short keeps what it has
            args.out.parent.mkdir(parents=True, exist_ok=True)
            report = {
                "thresholds": args.thresholds,
                "edges_per_pass": args.edges_per_pass,
                "device": str(model.device),
                "rows": rows,
            }
            args.out.write_text(json.dumps(report, indent=2) + "\n", encoding="utf-8")


if __name__ == "__main__":
    main()
