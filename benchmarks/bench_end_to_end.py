"""The SAE pipeline end to end on random models of real shapes, and against EAP and ACDC.

For each `--shapes` entry (benchmarks/common.py: gpt2-small, gpt2-xl, attn-only-4l,
llama-3-8b) a random model is built directly on `--device` (optionally split over
`--n-devices` GPUs), then `circuits.run_trials` runs the SAE method on IOI prompts
(`--n-prompts`, half positive) after one warm-up run: capture, SAE training, codes, node and
edge scores, evaluation against the ACDC IOI heads (mapped proportionally onto the shape's
layers and heads). Each run gets fresh task data (generation is timed apart, as `data`);
`total` is the whole `run_trials` call, timed with CUDA events. Medians over `--repeats`.
Peak memory is the CUDA allocator's peak above the loaded model.

`--baselines` also times, on the same prompt pairs and machine, EAP (full runs, median) and
ACDC (extrapolated from measured evaluations per start block, as bench_baselines.py does:
one threshold with every edge evaluated), and prints the SAE method's speed-up over each.
`--scoring-only` times node and edge scoring alone on random codes of each shape's head
count (peak memory included), e.g. GPT-2 XL's 1200 heads on the GPU.

    python benchmarks/bench_end_to_end.py --shapes gpt2-small --baselines --out e2e.json
    python benchmarks/bench_end_to_end.py --shapes llama-3-8b --dtype bfloat16
"""

from __future__ import annotations

import argparse
import json
import platform
import statistics
import time
from dataclasses import replace
from pathlib import Path
from typing import Any

import numpy as np
import torch
from common import SHAPES, median_seconds, random_model, timed

from circuits import methods, tasks
from circuits.config import default_config
from circuits.pipeline import prepare, run_trials
from circuits.scoring import edge_scores, heads_from_edges, node_scores
from interp import HookedModel

STAGES = ("capture", "sae", "codes", "node_scoring", "edge_scoring", "evaluation")
"""Stages of one SAE run after model load (issue 9's pipeline target), besides `data`."""


def _peak_reset(device: torch.device) -> int:
    """Reset the CUDA peak counter; bytes allocated now (0 off CUDA)."""
    if device.type != "cuda":
        return 0
    torch.cuda.synchronize(device)
    torch.cuda.reset_peak_memory_stats(device)
    return torch.cuda.memory_allocated(device)


def _peak_mib(device: torch.device, baseline: int) -> float | None:
    return (torch.cuda.max_memory_allocated(device) - baseline) / 2**20 if baseline else None


def bench_sae_pipeline(
    model: HookedModel, n_prompts: int, batch_size: int, repeats: int, seed: int
) -> dict[str, Any]:
    """Median seconds per stage of the SAE method (one warm-up run first)."""
    config = default_config("ioi")
    config = replace(
        config,
        capture=replace(config.capture, n_prompts=n_prompts, batch_size=batch_size),
        evaluation=replace(config.evaluation, faithfulness=False),
    )
    truth = tasks.get("ioi").ground_truth("acdc")
    # GPT-2 small's IOI heads, mapped proportionally onto this shape's layers and heads.
    heads = {(lyr * model.n_layers // 12, h * model.n_heads // 12) for lyr, h in truth.heads}
    truth = replace(
        truth, heads=heads, n_layers=model.n_layers, n_heads=model.n_heads, head_classes={}
    )
    device = model.device
    runs = []
    baseline = _peak_reset(device)
    for repeat in range(repeats + 1):
        context = prepare(model, "ioi", config, seed=seed + repeat, progress=False)
        total, trials = timed(
            lambda context=context: run_trials(
                context, "sae", n_trials=1, seed=seed, ground_truth=truth
            ),
            device,
        )
        if repeat:  # the first run is the warm-up
            runs.append({**trials.results[0].seconds, "total": total})
    stages = ["data", *STAGES, "total"]
    return {
        "median_s": {s: statistics.median(r.get(s, 0.0) for r in runs) for s in stages},
        "runs": runs,
        "peak_extra_mib": _peak_mib(device, baseline),
        "node_roc_auc": trials.node_metrics[0]["roc_auc"],
    }


def bench_baselines(
    model: HookedModel, n_prompts: int, batch_size: int, repeats: int, seed: int
) -> dict[str, Any]:
    """EAP (measured) and ACDC (extrapolated) on the SAE run's prompt pairs."""
    from bench_baselines import acdc_extrapolation

    task = tasks.get("ioi")
    data = task.generate(model.tokenizer, n=n_prompts // 2, seed=seed)
    method = methods.get("eap")
    function, config = method.function, method.config(batch_size=batch_size, progress=False)
    eap_s, eap_all = median_seconds(
        lambda: function(model, task, data, config), model.device, 1, repeats
    )
    acdc = acdc_extrapolation(model, task, data, batch_size, repeats)
    return {
        "n_pairs": len(data),
        "eap_median_s": eap_s,
        "eap_s": eap_all,
        "acdc_extrapolated_s": acdc["extrapolated_wall_seconds_per_threshold"],
        "acdc": acdc,
    }


def bench_scoring(
    n_heads_total: int, n_heads: int, n_prompts: int, device: torch.device, seed: int
) -> dict[str, Any]:
    """Node and edge scoring alone on uniform random codes (200 latents) on `device`."""
    generator = torch.Generator().manual_seed(seed)
    codes_PH = torch.randint(0, 200, (n_prompts, n_heads_total), generator=generator)
    codes_PH = codes_PH.to(device)
    is_positive_P = np.arange(n_prompts) < n_prompts // 2
    out: dict[str, Any] = {"n_heads": n_heads_total, "n_prompts": n_prompts}
    for name, run in (
        ("node", lambda: node_scores(codes_PH, is_positive_P, n_heads)),
        (
            "edge",
            lambda: heads_from_edges(
                edge_scores(codes_PH, is_positive_P, n_heads), n_heads, n_heads_total
            ),
        ),
    ):
        run()  # warm-up
        baseline = _peak_reset(device)
        out[f"{name}_s"] = timed(run, device)[0]
        out[f"{name}_peak_mib"] = _peak_mib(device, baseline)
    return out


def _table(rows: list[dict[str, Any]]) -> str:
    """One line per shape: stage medians, total, peak memory and method speed-ups."""
    columns = ["data", *STAGES, "total"]
    header = f"{'shape':<13}" + "".join(f"{c[:10]:>11}" for c in columns) + f"{'peak MiB':>10}"
    lines = [header, "-" * len(header)]
    for row in rows:
        if "pipeline" not in row:
            continue
        median = row["pipeline"]["median_s"]
        peak = row["pipeline"]["peak_extra_mib"]
        lines.append(
            f"{row['shape']:<13}"
            + "".join(f"{median[c]:>11.4f}" for c in columns)
            + (f"{peak:>10.0f}" if peak is not None else f"{'-':>10}")
        )
    for row in rows:
        if "baselines" in row:
            base, total = row["baselines"], row["pipeline"]["median_s"]["total"]
            eap, acdc = base["eap_median_s"], base["acdc_extrapolated_s"]
            lines.append(
                f"{row['shape']}: SAE {total:.3f} s; EAP {eap:.3f} s (SAE {eap / total:.1f}x "
                f"faster); ACDC extrapolated {acdc:.1f} s (SAE {acdc / total:.0f}x faster)"
            )
        if "scoring" in row:
            s = row["scoring"]
            lines.append(
                f"{row['shape']}: scoring {s['n_heads']} heads x {s['n_prompts']} prompts: "
                f"node {s['node_s']:.4f} s, edge {s['edge_s']:.3f} s, edge peak "
                f"{s['edge_peak_mib'] or float('nan'):.0f} MiB"
            )
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> None:
    """Run every shape, print the table, write the JSON."""
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--shapes", nargs="+", default=["gpt2-small"], choices=sorted(SHAPES))
    parser.add_argument("--device", default="cuda" if torch.cuda.is_available() else "cpu")
    parser.add_argument("--dtype", default="float32", help="model dtype: float32, bfloat16")
    parser.add_argument("--attn-kernel", default="sdpa", choices=["eager", "sdpa", "flex"])
    parser.add_argument("--n-devices", type=int, default=1, help="GPUs to split the model over")
    parser.add_argument("--n-prompts", type=int, default=500, help="positives + negatives")
    parser.add_argument("--batch-size", type=int, default=32, help="prompts per forward pass")
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--baselines", action="store_true", help="also EAP and ACDC")
    parser.add_argument("--scoring-only", action="store_true", help="only scoring on codes")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--out", type=Path, default=None, help="write the results as JSON here")
    args = parser.parse_args(argv)
    device = torch.device(args.device)
    rows = []
    for shape in args.shapes:
        row: dict[str, Any] = {"shape": shape, "args": {k: str(v) for k, v in vars(args).items()}}
        fields = SHAPES[shape]
        if args.scoring_only:
            n_total = fields["n_layers"] * fields["n_heads"]
            row["scoring"] = bench_scoring(
                n_total, fields["n_heads"], args.n_prompts, device, args.seed
            )
        else:
            _peak_reset(device)
            start = time.perf_counter()
            model = random_model(
                shape,
                device=args.device,
                dtype=getattr(torch, args.dtype),
                attn_kernel=args.attn_kernel,
                n_devices=args.n_devices,
                seed=args.seed,
            )
            _peak_reset(device)
            row["build_s"] = time.perf_counter() - start
            row["pipeline"] = bench_sae_pipeline(
                model, args.n_prompts, args.batch_size, args.repeats, args.seed
            )
            if args.baselines:
                row["baselines"] = bench_baselines(
                    model, args.n_prompts, args.batch_size, args.repeats, args.seed
                )
            del model
            if device.type == "cuda":
                torch.cuda.empty_cache()
        rows.append(row)
        print(_table(rows[-1:]), flush=True)
    print()
    print(_table(rows))
    if args.out is not None:
        environment = {
            "torch": torch.__version__,
            "platform": platform.platform(),
            "cuda": [torch.cuda.get_device_name(i) for i in range(torch.cuda.device_count())],
        }
        args.out.parent.mkdir(parents=True, exist_ok=True)
        args.out.write_text(json.dumps({"environment": environment, "rows": rows}, indent=2))
        print(f"wrote {args.out}")


if __name__ == "__main__":
    main()
