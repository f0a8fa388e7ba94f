"""Per-head capture speed and peak memory of the eager, sdpa and flex attention kernels.

A random-weight model of a real shape (`--shape`, default GPT-2 small: 12 layers, 12 heads,
d_model 768; vocabulary shrunk, which does not touch attention; context widened to the
longest sequence) captures mean-pooled head results for random full-length prompts, with
the same `hook_z` hooks under every kernel. Each (device, dtype, kernel, seq_len) case runs
in a fresh process so that peak memory is its own: on CUDA `torch.cuda.max_memory_allocated`
above the loaded model, on CPU the growth of the process's peak resident set (ru_maxrss)
above the loaded model. Times are medians of `--repeats` runs after `--warmup` runs (flex
compiles in warm-up); on CUDA each run is timed with events after a synchronise.

On CPU, flex's compiled kernels bring a second OpenMP thread pool whose busy-waiting
threads starve ATen's matmuls on small machines (measured: 2-5x slower, erratic), so the
cases run with OMP_WAIT_POLICY=PASSIVE unless `--omp-wait-policy inherit` is given.

    python benchmarks/bench_capture.py --out results/bench_capture.json
    python benchmarks/bench_capture.py --devices cuda --seq-lens 2048 --dtypes bfloat16
"""

from __future__ import annotations

import argparse
import json
import multiprocessing
import os
import platform
import resource
import warnings
from dataclasses import asdict, dataclass
from pathlib import Path

import torch


@dataclass(frozen=True)
class Case:
    """One measurement: a kernel at a sequence length on a device."""

    device: str
    dtype: str
    shape: str
    kernel: str
    seq_len: int
    n_prompts: int
    batch_size: int
    warmup: int
    repeats: int
    d_vocab: int
    n_ctx: int
    seed: int


def _peak_bytes(device: str) -> int:
    """Peak memory so far: CUDA allocator peak, or the process's peak RSS on CPU."""
    if device.startswith("cuda"):
        return torch.cuda.max_memory_allocated(device)
    # ru_maxrss is in KiB on Linux, bytes on macOS.
    scale = 1 if platform.system() == "Darwin" else 1024
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * scale


def run_case(case: Case) -> dict:
    """Time capture_heads for one case (call in a fresh process for clean peak memory)."""
    warnings.filterwarnings("ignore")
    from common import median_seconds, random_model, timed

    from interp import capture_heads

    model = random_model(
        case.shape,
        device=case.device,
        dtype=getattr(torch, case.dtype),
        attn_kernel=case.kernel,
        seed=case.seed,
        d_vocab=case.d_vocab,
        n_ctx=case.n_ctx,
    )
    generator = torch.Generator().manual_seed(case.seed)
    tokens = torch.randint(0, case.d_vocab, (case.n_prompts, case.seq_len), generator=generator)
    cuda = case.device.startswith("cuda")
    if cuda:
        torch.cuda.synchronize(case.device)
        torch.cuda.reset_peak_memory_stats(case.device)
        baseline = torch.cuda.memory_allocated(case.device)
    else:
        baseline = _peak_bytes(case.device)

    def capture() -> None:
        capture_heads(model, tokens, batch_size=case.batch_size, progress=False)

    first_s, _ = timed(capture, case.device)  # the first warm-up run (flex compiles here)
    median_s, times_s = median_seconds(capture, case.device, case.warmup - 1, case.repeats)
    return {
        **asdict(case),
        "first_run_s": first_s,
        "times_s": times_s,
        "median_s": median_s,
        "tokens_per_s": case.n_prompts * case.seq_len / median_s,
        "peak_extra_mib": (_peak_bytes(case.device) - baseline) / 2**20,
    }


def _run_isolated(case: Case) -> dict:
    """run_case in a spawned process; a failure is reported, not raised."""
    context = multiprocessing.get_context("spawn")
    with context.Pool(1) as pool:
        try:
            return pool.apply(run_case, (case,))
        except Exception as err:  # the table must still print the cases that worked
            return {**asdict(case), "error": f"{type(err).__name__}: {err}"}


def _table(rows: list[dict]) -> str:
    """A plain-text table of the measurements."""
    header = (
        f"{'device':<7}{'dtype':>9}{'seq':>6}{'kernel':>8}{'prompts':>9}{'median s':>11}"
        f"{'tok/s':>10}{'peak MiB':>10}{'1st run s':>11}"
    )
    lines = [header, "-" * len(header)]
    for row in rows:
        case = f"{row['device']:<7}{row['dtype']:>9}{row['seq_len']:>6}{row['kernel']:>8}"
        if "error" in row:
            lines.append(f"{case}  {row['error']}")
            continue
        lines.append(
            f"{case}{row['n_prompts']:>9}{row['median_s']:>11.3f}{row['tokens_per_s']:>10.0f}"
            f"{row['peak_extra_mib']:>10.1f}{row['first_run_s']:>11.2f}"
        )
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> None:
    """Run every case, print the table, write the JSON."""
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--shape", default="gpt2-small", help="a shape of benchmarks/common.py")
    parser.add_argument("--seq-lens", type=int, nargs="+", default=[128, 1024])
    parser.add_argument("--dtypes", nargs="+", default=["float32"], help="e.g. float32 bfloat16")
    parser.add_argument("--kernels", nargs="+", default=["eager", "sdpa", "flex"])
    parser.add_argument(
        "--devices", nargs="+", default=["cpu", "cuda"] if torch.cuda.is_available() else ["cpu"]
    )
    parser.add_argument("--cpu-prompts", type=int, default=2, help="prompts per CPU case")
    parser.add_argument("--cuda-prompts", type=int, default=64, help="prompts per CUDA case")
    parser.add_argument("--batch-size", type=int, default=8)
    parser.add_argument("--warmup", type=int, default=1, help="untimed runs first (>= 1)")
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--d-vocab", type=int, default=1024)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--out", type=Path, default=Path("results/bench_capture.json"))
    parser.add_argument(
        "--omp-wait-policy",
        default="PASSIVE",
        help="OMP_WAIT_POLICY for the measuring processes, or 'inherit' to leave it alone",
    )
    args = parser.parse_args(argv)
    if args.omp_wait_policy != "inherit":
        # Spawned children inherit the variable before their OpenMP runtimes start.
        os.environ["OMP_WAIT_POLICY"] = args.omp_wait_policy

    if args.warmup < 1:
        parser.error("--warmup must be at least 1 (the first run compiles flex)")
    rows = []
    for device in args.devices:
        n_prompts = args.cuda_prompts if device.startswith("cuda") else args.cpu_prompts
        for dtype in args.dtypes:
            for seq_len in args.seq_lens:
                for kernel in args.kernels:
                    case = Case(
                        device=device,
                        dtype=dtype,
                        shape=args.shape,
                        kernel=kernel,
                        seq_len=seq_len,
                        n_prompts=n_prompts,
                        batch_size=min(args.batch_size, n_prompts),
                        warmup=args.warmup,
                        repeats=args.repeats,
                        d_vocab=args.d_vocab,
                        n_ctx=max(args.seq_lens),
                        seed=args.seed,
                    )
                    rows.append(_run_isolated(case))
                    print(_table(rows[-1:]).splitlines()[-1], flush=True)
    print()
    print(_table(rows))
    environment = {
        "torch": torch.__version__,
        "python": platform.python_version(),
        "machine": platform.machine(),
        "cpu_threads": torch.get_num_threads(),
        "omp_wait_policy": os.environ.get("OMP_WAIT_POLICY"),
        "cuda": torch.cuda.get_device_name(0) if torch.cuda.is_available() else None,
        "model": f"random {args.shape} shape, context {max(args.seq_lens)}",
        "memory": "CUDA: max_memory_allocated above the loaded model; "
        "CPU: growth of peak RSS above the loaded model",
    }
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps({"environment": environment, "results": rows}, indent=2))
    print(f"\nwrote {args.out}")


if __name__ == "__main__":
    main()
