"""Per-stage timing of the SAE circuit pipeline, and edge scoring at GPT-2-XL shapes.

Part 1 runs ``circuits.prepare`` + ``circuits.run_trials`` on a random model with GPT-2
small's shape (12 layers x 12 heads, d_model 768, GPT-2 vocabulary) over IOI prompts
(default 500 = 250 positives + 250 negatives) and reports seconds per stage.
Part 2 times node and edge scoring on synthetic codes of GPT-2-XL's shape (48 x 25 = 1200
heads, 200 codes, 500 prompts) and records the peak memory of the counting (tracemalloc
sees numpy's buffers), against the dense co-occurrence tensors the seed code would need.

    .venv/bin/python benchmarks/bench_pipeline.py --out benchmarks/results/bench_pipeline.json
"""

from __future__ import annotations

import argparse
import json
import platform
import sys
import time
import tracemalloc
from dataclasses import replace
from pathlib import Path

import numpy as np
import pandas as pd
import torch

REPO = Path(__file__).resolve().parents[1]


def gpt2_small_shaped_model(seed: int) -> object:
    """A random HookedTransformer shaped like GPT-2 small, with the real GPT-2 tokenizer."""
    from transformer_lens import HookedTransformer, HookedTransformerConfig

    from interp import load_model

    sys.path.insert(0, str(REPO))
    from tests.conftest import build_gpt2_tokenizer

    tokenizer = build_gpt2_tokenizer()
    cfg = HookedTransformerConfig(
        n_layers=12,
        n_heads=12,
        d_model=768,
        d_head=64,
        d_mlp=3072,
        n_ctx=1024,
        d_vocab=len(tokenizer),
        act_fn="gelu_new",
        normalization_type="LN",
        seed=seed,
    )
    model = HookedTransformer(cfg)
    model.eval()
    tokenizer.pad_token = tokenizer.eos_token
    model.tokenizer = tokenizer
    hooked = load_model(model, attn_kernel="sdpa")
    hooked.name = "random-gpt2-small-shape"
    return hooked


def bench_pipeline(n_prompts: int, seed: int, faithfulness: bool) -> pd.DataFrame:
    """Seconds per stage of one SAE run on IOI with GPT-2 small's shape."""
    from circuits import tasks
    from circuits.pipeline import default_config, prepare, run_trials

    model = gpt2_small_shaped_model(seed)
    config = default_config("ioi")
    config = replace(
        config,
        capture=replace(config.capture, n_prompts=n_prompts),
        evaluation=replace(config.evaluation, faithfulness=faithfulness),
    )
    context = prepare(model, "ioi", config, seed=seed, progress=False)
    truth = tasks.get("ioi").ground_truth("acdc")
    trials = run_trials(context, "sae", n_trials=1, seed=seed, ground_truth=truth)
    seconds = trials.results[0].seconds
    rows = [{"stage": stage, "seconds": value} for stage, value in seconds.items()]
    rows.append({"stage": "total", "seconds": sum(seconds.values())})
    return pd.DataFrame(rows)


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
    parser.add_argument("--faithfulness", action="store_true", help="also time faithfulness")
    parser.add_argument("--skip-pipeline", action="store_true", help="only the XL scoring part")
    parser.add_argument("--out", default="benchmarks/results/bench_pipeline.json")
    args = parser.parse_args()

    report: dict[str, object] = {
        "machine": {
            "platform": platform.platform(),
            "processor": platform.processor(),
            "torch_threads": torch.get_num_threads(),
            "torch": torch.__version__,
            "numpy": np.__version__,
        },
        "n_prompts": args.n_prompts,
        "seed": args.seed,
    }
    if not args.skip_pipeline:
        stages = bench_pipeline(args.n_prompts, args.seed, args.faithfulness)
        print(f"GPT-2-small-shaped random model, IOI, {args.n_prompts} prompts, CPU")
        print(stages.to_string(index=False, float_format="%.3f"))
        report["pipeline_seconds"] = dict(zip(stages["stage"], stages["seconds"], strict=True))
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
