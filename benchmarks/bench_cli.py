"""Wall time of the `circuits` commands that must answer at once: help, listings, usage errors.

    .venv/bin/python benchmarks/bench_cli.py [--repeats 5] [--out benchmarks/results/bench_cli.json]

Each command runs in a fresh interpreter (as a user types it); the median of `--repeats`
runs is reported with the load average, since 2-core machines are shared. Target: under 2 s
each (issue 16); an unknown method name is slower, because naming the registered methods
imports them all.
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

COMMANDS = {
    "--help": ["--help"],
    "reproduce --help": ["reproduce", "--help"],
    "tasks": ["tasks"],
    "bad option value": ["reproduce", "ioi", "--n-prompts", "7"],
    "bad seed": ["reproduce", "ioi", "--seed", "-1"],
    "empty --methods": ["reproduce", "ioi", "--methods", ""],
    "unwritable --out": ["reproduce", "ioi", "--out", "/proc/none"],
    "missing CUDA (--device cuda:99)": ["reproduce", "ioi", "--device", "cuda:99"],
    "unknown method": ["reproduce", "ioi", "--methods", "nope"],
}


def seconds(argv: list[str], out: str) -> tuple[float, int]:
    """Wall seconds and exit code of `python -m circuits.cli ARGV` in a fresh interpreter."""
    if "--out" not in argv and argv[0] == "reproduce" and "--help" not in argv:
        argv = [*argv, "--out", out]
    start = time.perf_counter()
    done = subprocess.run(
        [sys.executable, "-m", "circuits.cli", *argv], capture_output=True, text=True
    )
    return time.perf_counter() - start, done.returncode


def main() -> None:
    """Run every command `--repeats` times; print and optionally save the medians."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--repeats", type=int, default=5)
    parser.add_argument("--out", type=Path, default=None, help="write the results as JSON")
    args = parser.parse_args()
    rows = {}
    with tempfile.TemporaryDirectory() as out:
        for name, argv in COMMANDS.items():
            runs = [seconds(argv, out) for _ in range(args.repeats)]
            rows[name] = {
                "median_s": statistics.median(s for s, _ in runs),
                "exit_code": runs[0][1],
            }
            print(f"{name:>34}: {rows[name]['median_s']:.2f} s (exit {runs[0][1]})")
    load = os.getloadavg()[0]
    print(f"load average {load:.2f} on {os.cpu_count()} cores")
    if args.out is not None:
        result = {"commands": rows, "load_average": load, "cpu_count": os.cpu_count()}
        args.out.write_text(json.dumps(result, indent=2) + "\n", encoding="utf-8")


if __name__ == "__main__":
    main()
