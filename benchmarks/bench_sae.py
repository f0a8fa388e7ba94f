"""Benchmark discrete-SAE training: our fast loop vs SAELens's SAETrainer vs a plain Adam loop.

Shapes are the seed paper's training sets: 10 prompts x all heads x d_model, for GPT-2 small
(10 x 144 x 768) and GPT-2 XL (10 x 1200 x 1600), 200 latents, full-batch Adam. Methods:
- fast:     `saes.train_discrete_sae` (hand-derived gradients, fused Adam), end to end;
- sae_lens: the same call with `trainer="sae_lens"` (SAELens SAETrainer on the registered class);
- plain:    a plain autograd loop: forward, loss, backward, torch.optim.Adam, renormalise.
Methods alternate within each repeat so machine noise hits them alike; the median is reported.
On CUDA, timings use events after a synchronize, following a warm-up run.

    python benchmarks/bench_sae.py --out results/bench_sae.json
    python benchmarks/bench_sae.py --devices cpu --threads 1 --xl-epochs 20 --xl-repeats 1
"""

from __future__ import annotations

import argparse
import contextlib
import dataclasses
import io
import json
import platform
import statistics
import sys
import time
from collections.abc import Callable
from pathlib import Path

import torch
import torch.nn.functional as F

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from saes import SAETrainingConfig, train_discrete_sae

SHAPES = {"small": (10, 144, 768), "xl": (10, 1200, 1600)}
METHODS = ("fast", "sae_lens", "plain")


def plain_adam_loop(acts_PHD: torch.Tensor, config: SAETrainingConfig, seed: int) -> None:
    """The baseline: what one writes by hand with autograd and torch.optim.Adam."""
    x = acts_PHD.reshape(-1, acts_PHD.shape[-1]).float()
    d_in, d_sae = x.shape[1], config.n_latents
    g = torch.Generator().manual_seed(seed)
    W_dec = F.normalize(torch.randn(d_sae, d_in, generator=g), dim=1).to(x.device)
    W_enc = W_dec.T.clone().requires_grad_()
    W_dec.requires_grad_()
    b_enc = torch.zeros(d_sae, device=x.device, requires_grad=True)
    b_dec = torch.zeros(d_in, device=x.device, requires_grad=True)
    optimizer = torch.optim.Adam([W_enc, b_enc, W_dec, b_dec], lr=config.lr)
    for _ in range(config.n_epochs):
        optimizer.zero_grad()
        acts = torch.relu((x - b_dec) @ W_enc + b_enc)
        recon = acts @ W_dec + b_dec
        loss = F.mse_loss(recon, x) + config.l1_coefficient * acts.sum(dim=-1).mean()
        loss.backward()
        optimizer.step()
        with torch.no_grad():
            W_dec /= W_dec.norm(dim=1, keepdim=True)


def run_method(method: str, acts: torch.Tensor, config: SAETrainingConfig, seed: int) -> None:
    """One training run of `method`; SAETrainer's progress bar is silenced."""
    if method == "plain":
        plain_adam_loop(acts, config, seed)
        return
    trainer = "sae_lens" if method == "sae_lens" else "fast"
    with contextlib.redirect_stderr(io.StringIO()):
        train_discrete_sae(acts, dataclasses.replace(config, trainer=trainer), seed)


def timed(fn: Callable[[], None], device: torch.device) -> float:
    """Seconds for fn(); CUDA events around a synchronised call on GPUs."""
    if device.type == "cuda":
        torch.cuda.synchronize(device)
        start, end = torch.cuda.Event(enable_timing=True), torch.cuda.Event(enable_timing=True)
        start.record()
        fn()
        end.record()
        torch.cuda.synchronize(device)
        return start.elapsed_time(end) / 1e3
    start_s = time.perf_counter()
    fn()
    return time.perf_counter() - start_s


def bench_shape(
    name: str,
    device: torch.device,
    methods: list[str],
    epochs: int,
    repeats: int,
    warmup_epochs: int,
    seed: int,
) -> list[dict]:
    """Median seconds per method for one shape on one device."""
    shape = SHAPES[name]
    acts = torch.randn(*shape, generator=torch.Generator().manual_seed(seed)).to(device)
    config = SAETrainingConfig(n_epochs=epochs, n_train_prompts=None, device=str(device))
    warm = dataclasses.replace(config, n_epochs=warmup_epochs)
    for method in methods:
        run_method(method, acts, warm, seed)
    times: dict[str, list[float]] = {m: [] for m in methods}
    for _ in range(repeats):
        for method in methods:
            times[method].append(timed(lambda m=method: run_method(m, acts, config, seed), device))
    rows = []
    for method in methods:
        median = statistics.median(times[method])
        rows.append(
            {
                "shape": name,
                "acts_PHD": list(shape),
                "device": str(device),
                "method": method,
                "epochs": epochs,
                "repeats": repeats,
                "median_s": median,
                "min_s": min(times[method]),
                "all_s": times[method],
                "ms_per_epoch": 1e3 * median / epochs,
                "est_500_epochs_s": 500 * median / epochs,
            }
        )
    plain = next((r["median_s"] for r in rows if r["method"] == "plain"), None)
    for row in rows:
        row["speedup_vs_plain"] = plain / row["median_s"] if plain else None
    return rows


def print_table(rows: list[dict]) -> None:
    """Plain-text results table."""
    header = (
        f"{'shape':6} {'device':7} {'method':9} {'epochs':>6} {'median s':>9} "
        f"{'ms/epoch':>9} {'500-ep s':>9} {'vs plain':>8}"
    )
    print(header)
    print("-" * len(header))
    for r in rows:
        speedup = f"{r['speedup_vs_plain']:.2f}x" if r["speedup_vs_plain"] else "-"
        print(
            f"{r['shape']:6} {r['device']:7} {r['method']:9} {r['epochs']:>6} "
            f"{r['median_s']:>9.2f} {r['ms_per_epoch']:>9.2f} {r['est_500_epochs_s']:>9.1f} "
            f"{speedup:>8}"
        )


def main(argv: list[str] | None = None) -> None:
    """Parse options, run every (device, shape), print the table, write JSON."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    default_devices = "cpu,cuda" if torch.cuda.is_available() else "cpu"
    parser.add_argument("--devices", default=default_devices, help="comma list: cpu,cuda")
    parser.add_argument("--shapes", default="small,xl", help=f"comma list of {list(SHAPES)}")
    parser.add_argument("--methods", default=",".join(METHODS), help=f"comma list of {METHODS}")
    parser.add_argument("--epochs", type=int, default=500, help="epochs for the small shape")
    parser.add_argument("--xl-epochs", type=int, default=None, help="epochs for xl (--epochs)")
    parser.add_argument("--repeats", type=int, default=3, help="timed runs per method")
    parser.add_argument("--xl-repeats", type=int, default=None, help="runs for xl (--repeats)")
    parser.add_argument("--warmup-epochs", type=int, default=5, help="epochs of the warm-up run")
    parser.add_argument("--threads", type=int, default=None, help="torch CPU threads (default)")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--out", type=Path, default=None, help="write results as JSON here")
    args = parser.parse_args(argv)

    if args.threads is not None:
        torch.set_num_threads(args.threads)
    methods = args.methods.split(",")
    unknown = set(methods) - set(METHODS) | set(args.shapes.split(",")) - set(SHAPES)
    if unknown:
        parser.error(f"unknown method or shape {sorted(unknown)}")
    rows: list[dict] = []
    for device_name in args.devices.split(","):
        device = torch.device(device_name)
        if device.type == "cuda" and not torch.cuda.is_available():
            parser.error("--devices has cuda but no CUDA device is available")
        for shape in args.shapes.split(","):
            xl = shape == "xl"
            epochs = (args.xl_epochs or args.epochs) if xl else args.epochs
            repeats = (args.xl_repeats or args.repeats) if xl else args.repeats
            rows += bench_shape(
                shape, device, methods, epochs, repeats, args.warmup_epochs, args.seed
            )
            print_table([r for r in rows if r["shape"] == shape and r["device"] == str(device)])
            print(flush=True)
    print_table(rows)
    if args.out is not None:
        args.out.parent.mkdir(parents=True, exist_ok=True)
        environment = {
            "torch": torch.__version__,
            "cpu_threads": torch.get_num_threads(),
            "platform": platform.platform(),
            "processor": platform.processor(),
            "cuda": torch.cuda.get_device_name() if torch.cuda.is_available() else None,
        }
        payload = {"args": {k: str(v) for k, v in vars(args).items()}, "env": environment}
        args.out.write_text(json.dumps({**payload, "results": rows}, indent=2))
        print(f"wrote {args.out}")


if __name__ == "__main__":
    main()
