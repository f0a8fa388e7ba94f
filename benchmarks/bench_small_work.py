"""Small CPU work under contention: SAE training on an organism-sized input with one torch
thread (what `train_discrete_sae` picks for small work) vs the machine's default threads.

    .venv/bin/python benchmarks/bench_small_work.py [--busy 2] [--repeats 5] [--out FILE]

The shared machines have 2 cores and other jobs. `--busy N` starts N busy-looping processes
for the duration, so the timing shows what contention does to a multi-threaded small job:
its threads wait for each other at every op (a barrier per op of a 10 x 16 x 64 problem).
"""

from __future__ import annotations

import argparse
import json
import multiprocessing
import os
import statistics
import time
from pathlib import Path

import torch

import saes.training
from saes import SAETrainingConfig, train_discrete_sae

SHAPE = (10, 16, 64)  # organism: 10 training prompts x 16 heads x d_model 64
CONFIG = SAETrainingConfig(n_train_prompts=None)


def _spin(stop: multiprocessing.synchronize.Event) -> None:
    while not stop.is_set():
        pass


def seconds(threads: str, acts_PHD: torch.Tensor) -> float:
    """Wall seconds of one training run; `threads`: `picked` (the library's choice) or `all`."""
    limit = saes.training.SMALL_WORK_ELEMENTS
    if threads == "all":
        saes.training.SMALL_WORK_ELEMENTS = 0  # never counts as small: the default threads
    try:
        start = time.perf_counter()
        train_discrete_sae(acts_PHD, CONFIG, seed=0, progress=False)
        return time.perf_counter() - start
    finally:
        saes.training.SMALL_WORK_ELEMENTS = limit


def main() -> None:
    """Alternate the two settings `--repeats` times under `--busy` spinning processes."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--busy", type=int, default=2, help="busy-looping processes")
    parser.add_argument("--repeats", type=int, default=5)
    parser.add_argument("--out", type=Path, default=None, help="write the results as JSON")
    args = parser.parse_args()
    acts_PHD = torch.randn(*SHAPE, generator=torch.Generator().manual_seed(0))
    seconds("picked", acts_PHD)  # warm-up
    stop = multiprocessing.Event()
    spinners = [multiprocessing.Process(target=_spin, args=(stop,)) for _ in range(args.busy)]
    for process in spinners:
        process.start()
    try:
        runs: dict[str, list[float]] = {"picked": [], "all": []}
        for _ in range(args.repeats):
            for threads in runs:
                runs[threads].append(seconds(threads, acts_PHD))
    finally:
        stop.set()
        for process in spinners:
            process.join()
    result = {
        "shape": SHAPE,
        "n_epochs": CONFIG.n_epochs,
        "busy_processes": args.busy,
        "cpu_count": os.cpu_count(),
        "torch_threads": torch.get_num_threads(),
        "median_s": {threads: statistics.median(values) for threads, values in runs.items()},
        "runs_s": runs,
    }
    for threads, median in result["median_s"].items():
        print(f"{threads:>6} threads: median {median:.2f} s over {args.repeats} runs")
    print(
        f"{args.busy} busy processes on {os.cpu_count()} cores; torch default threads "
        f"{torch.get_num_threads()}"
    )
    if args.out is not None:
        args.out.write_text(json.dumps(result, indent=2) + "\n", encoding="utf-8")


if __name__ == "__main__":
    main()
