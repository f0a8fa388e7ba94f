"""Per-stage timing of the SAE circuit pipeline, and edge scoring at GPT-2-XL shapes.

Part 1 runs ``circuits.prepare`` + ``circuits.run_trials`` on a random model with GPT-2
small's shape (12 layers x 12 heads, d_model 768, GPT-2 vocabulary) over IOI prompts
(default 500 = 250 positives + 250 negatives) and reports seconds per stage. Each repeat
also times bare forward passes over the same prompts in the same batches (to logits, and
through the blocks only) and reports the pipeline's cost in those units, so the ratio is
measured under the same machine load as the pipeline itself.
Part 2 times node and edge scoring on synthetic codes of GPT-2-XL's shape (48 x 25 = 1200
heads, 200 codes, 500 prompts) and records the peak memory of the counting (tracemalloc
sees numpy's buffers), against the dense co-occurrence tensors the seed code would need.

    .venv/bin/python benchmarks/bench_pipeline.py --threads 1 --repeats 3 \
        --out benchmarks/results/bench_pipeline.json
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import time
import tracemalloc
from dataclasses import replace
from pathlib import Path

import numpy as np
import pandas as pd
import torch
from common import random_model

# Stages that the issue-9 target counts: capture + SAE + node and edge scores + evaluation.
PIPELINE_STAGES = ("capture", "sae", "codes", "node_scoring", "edge_scoring", "evaluation")


def bare_forward_seconds(
    model: object, prompts: list[str], batch_size: int, logits: bool
) -> tuple[float, float]:
    """Wall and process CPU seconds of plain forward passes over ``prompts``, batched as the
    capture batches them."""
    start, start_cpu = time.perf_counter(), time.process_time()
    tokens_PS, mask_PS = model.to_tokens(prompts)
    order = torch.argsort(mask_PS.sum(dim=1), descending=True, stable=True)
    with torch.inference_mode():
        for index in order.split(batch_size):
            width = int(mask_PS[index].sum(dim=1).max())
            mask = mask_PS[index, :width]
            model.run(
                tokens_PS[index, :width],
                None if bool(mask.all()) else mask,
                return_type="logits" if logits else None,
            )
    return time.perf_counter() - start, time.process_time() - start_cpu


def bench_pipeline(n_prompts: int, seed: int, faithfulness: bool, repeats: int) -> pd.DataFrame:
    """Seconds per stage of SAE runs on IOI with GPT-2 small's shape, and bare forwards."""
    from circuits import tasks
    from circuits.config import default_config
    from circuits.pipeline import prepare, run_trials

    model = random_model("gpt2-small", seed=seed)
    config = default_config("ioi")
    config = replace(
        config,
        capture=replace(config.capture, n_prompts=n_prompts),
        evaluation=replace(config.evaluation, faithfulness=faithfulness),
    )
    truth = tasks.get("ioi").ground_truth("acdc")
    rows = []
    for repeat in range(repeats):
        context = prepare(model, "ioi", config, seed=seed, progress=False)
        prompts = list(context.data.positives) + list(context.data.negatives)
        if repeat == 0:  # warm-up: first-call allocations and kernel selection
            bare_forward_seconds(model, prompts[: config.capture.batch_size], 32, logits=True)
        row: dict[str, float] = {"repeat": repeat}
        for name, logits in (("bare_forward_logits", True), ("bare_forward_blocks", False)):
            wall, cpu = bare_forward_seconds(model, prompts, config.capture.batch_size, logits)
            row[name], row[f"{name} (CPU)"] = wall, cpu
        start_cpu = time.process_time()
        trials = run_trials(context, "sae", n_trials=1, seed=seed, ground_truth=truth)
        # run_trials: the counted stages, plus faithfulness with --faithfulness.
        row["pipeline (CPU)"] = time.process_time() - start_cpu
        row.update(trials.results[0].seconds)
        row["pipeline"] = sum(row[stage] for stage in PIPELINE_STAGES)
        for clock in ("", " (CPU)"):
            for name in ("bare_forward_logits", "bare_forward_blocks"):
                row[f"pipeline / {name}{clock}"] = row[f"pipeline{clock}"] / row[f"{name}{clock}"]
        rows.append(row)
    return pd.DataFrame(rows).set_index("repeat")


def bench_xl_scoring(n_prompts: int, n_codes: int, seed: int) -> pd.DataFrame:
    """Time and peak memory of node and edge scoring on synthetic GPT-2-XL-shaped codes."""
    from circuits.scoring import edge_scores, heads_from_edges, node_scores

    n_layers, n_heads = 48, 25
    rng = np.random.default_rng(seed)
    codes_PH = rng.integers(0, n_codes, size=(n_prompts, n_layers * n_heads))
    is_positive_P = np.arange(n_prompts) < n_prompts // 2
    rows = []
    for name, run in (
        ("node", lambda: node_scores(codes_PH, is_positive_P, n_heads)),
        ("edge", lambda: edge_scores(codes_PH, is_positive_P, n_heads)),
    ):
        tracemalloc.start()
        start = time.perf_counter()
        frame = run()
        elapsed = time.perf_counter() - start
        _, peak = tracemalloc.get_traced_memory()
        tracemalloc.stop()
        rows.append(
            {"scoring": name, "rows": len(frame), "seconds": elapsed, "peak_MB": peak / 2**20}
        )
        if name == "edge":
            start = time.perf_counter()
            heads_from_edges(frame, n_heads, n_layers * n_heads)
            rows.append(
                {
                    "scoring": "heads_from_edges",
                    "rows": n_layers * n_heads,
                    "seconds": time.perf_counter() - start,
                    "peak_MB": float("nan"),
                }
            )
    n_all = n_layers * n_heads
    dense_gb = 2 * n_all**2 * n_codes**2 * 8 / 2**30
    rows.append(
        {
            "scoring": "seed code dense (2 float64 tensors)",
            "rows": n_all * (n_all - 1) // 2,
            "seconds": float("nan"),
            "peak_MB": dense_gb * 1024,
        }
    )
    return pd.DataFrame(rows)


def main() -> None:
    """Run both benchmarks, print tables and write JSON."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--n-prompts", type=int, default=500, help="positives + negatives")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--repeats", type=int, default=1, help="pipeline runs (medians reported)")
    parser.add_argument(
        "--threads",
        type=int,
        default=None,
        help="torch intra-op CPU threads (default: torch's); 1 is far faster on a loaded machine",
    )
    parser.add_argument("--faithfulness", action="store_true", help="also time faithfulness")
    parser.add_argument("--skip-pipeline", action="store_true", help="only the XL scoring part")
    parser.add_argument("--out", default="benchmarks/results/bench_pipeline.json")
    args = parser.parse_args()
    if args.threads is not None:
        torch.set_num_threads(args.threads)

    report: dict[str, object] = {
        "machine": {
            "platform": platform.platform(),
            "processor": platform.processor(),
            "torch_threads": torch.get_num_threads(),
            "cpu_count": os.cpu_count(),
            "torch": torch.__version__,
            "numpy": np.__version__,
        },
        "n_prompts": args.n_prompts,
        "seed": args.seed,
    }
    if not args.skip_pipeline:
        runs = bench_pipeline(args.n_prompts, args.seed, args.faithfulness, args.repeats)
        load = os.getloadavg()[0]
        print(
            f"GPT-2-small-shaped random model, IOI, {args.n_prompts} prompts, "
            f"{torch.get_num_threads()} torch threads, load average {load:.1f}"
        )
        print(runs.T.assign(median=runs.median()).to_string(float_format="%.3f"))
        report["pipeline_runs"] = json.loads(runs.to_json(orient="records"))
        report["pipeline_median"] = runs.median().to_dict()
        report["load_average_1min_after_pipeline"] = load
    xl = bench_xl_scoring(args.n_prompts, 200, args.seed)
    print(f"\nGPT-2-XL shapes: 1200 heads, 200 codes (uniform random), {args.n_prompts} prompts")
    print(xl.to_string(index=False, float_format="%.2f"))
    report["xl_scoring"] = json.loads(xl.to_json(orient="records"))
    out = Path(args.out)
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(json.dumps(report, indent=2) + "\n", encoding="utf-8")
    print(f"\nwrote {out}")


if __name__ == "__main__":
    main()
