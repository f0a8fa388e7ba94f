"""The training command: train, verify and write the model organisms (SIIT: `siit.py`).

Command: `python -m circuits.organisms.train --task ioi|greater-than|docstring|all --seed S`
(writes `interp/organisms/organism-<task>/`; docs/organisms.md lists the shipped commands).
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import sys
import tempfile
import time
from collections.abc import Sequence
from dataclasses import asdict, fields
from pathlib import Path
from typing import Any

import torch
from safetensors.torch import save_file

from circuits.organisms.siit import TrainConfig, Trainer
from circuits.organisms.tokenizer import TASKS, save_tokenizer
from circuits.organisms.verify import ground_truth, verify
from interp import HookedModel

DEFAULT_OUT = Path(__file__).resolve().parents[2] / "interp" / "organisms"
"""Where the shipped organisms live (`interp/organisms/`)."""
FINGERPRINT_STEPS = 2
"""Optimiser steps whose losses verification.json stores as a reproducibility fingerprint."""


def fingerprint(config: TrainConfig, steps: int = FINGERPRINT_STEPS) -> list[float]:
    """Total losses of the first `steps` optimiser steps of a fresh run of `config`.

    While `steps` stays inside the warm-up these steps do not depend on `config.steps`, so
    they are the first steps of the full run: a cheap check that training is reproducible.
    """
    trainer = Trainer(config, progress=False)
    return [float(trainer.step()["total"]) for _ in range(steps)]


def parse_args(argv: Sequence[str] | None) -> argparse.Namespace:
    """Command-line options: task, seed, output folder, and any TrainConfig field."""
    parser = argparse.ArgumentParser(
        prog="python -m circuits.organisms.train",
        description="Train the model organisms with strict interchange-intervention training.",
    )
    parser.add_argument("--task", required=True, choices=[*TASKS, "all"])
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--out", type=Path, default=DEFAULT_OUT)
    parser.add_argument("--quiet", action="store_true", help="no progress bars")
    parser.add_argument(
        "--threads",
        type=int,
        default=1,
        help="torch CPU threads (default 1: more threads need not give bit-identical runs)",
    )
    for field in fields(TrainConfig):
        if field.name not in ("task", "seed"):
            parser.add_argument(f"--{field.name.replace('_', '-')}", type=type(field.default))
    return parser.parse_args(argv)


def write_organism(
    trainer: Trainer, folder: Path, *, train_seconds: float, final: dict[str, float], command: str
) -> dict[str, Any]:
    """Verify a trained organism and write its whole folder (all files, or none replaced)."""
    config = trainer.config
    model = HookedModel(trainer.model, trainer.tokenizer, name=folder.name, attn_kernel="eager")
    result = verify(model, config.task, trainer.graph.heads)
    result["training"] = {
        "command": command,
        "seed": config.seed,
        "torch_threads": torch.get_num_threads(),
        "torch_version": torch.__version__,
        "seconds": round(train_seconds, 1),
        "final_report": final,
        "fingerprint": {"steps": FINGERPRINT_STEPS, "total_losses": fingerprint(config)},
        "config": asdict(config),
    }
    folder.parent.mkdir(parents=True, exist_ok=True)
    staging = Path(tempfile.mkdtemp(prefix=f".{folder.name}.", dir=folder.parent))
    staging.chmod(0o755)
    try:
        (staging / "config.json").write_text(json.dumps(trainer.cfg_dict, indent=2) + "\n")
        state = {k: v.detach().contiguous() for k, v in trainer.model.state_dict().items()}
        save_file(state, str(staging / "model.safetensors"))
        save_tokenizer(trainer.tokenizer, staging)
        truth = ground_truth(
            trainer.graph, n_layers=config.n_layers, n_heads=config.n_heads, seed=config.seed
        )
        truth.save(staging / "ground_truth.json")
        (staging / "verification.json").write_text(json.dumps(result, indent=2) + "\n")
        _replace_folder(staging, folder)
    finally:
        shutil.rmtree(staging, ignore_errors=True)
    return result


def _replace_folder(new: Path, folder: Path) -> None:
    """Put `new` in place of `folder` by renames (the old folder goes only once `new` is in)."""
    old = folder.with_name(f".{folder.name}.old")
    shutil.rmtree(old, ignore_errors=True)
    if folder.exists():
        os.replace(folder, old)
    os.replace(new, folder)
    shutil.rmtree(old, ignore_errors=True)


def main(argv: Sequence[str] | None = None) -> int:
    """Train, verify and write the organisms asked for; return the exit status."""
    argv = list(sys.argv[1:] if argv is None else argv)
    args = parse_args(argv)
    torch.set_num_threads(args.threads)
    overrides = {
        f.name: getattr(args, f.name)
        for f in fields(TrainConfig)
        if f.name not in ("task", "seed") and getattr(args, f.name) is not None
    }
    command = " ".join(["python -m circuits.organisms.train", *argv])
    for task in TASKS if args.task == "all" else (args.task,):
        config = TrainConfig(task=task, seed=args.seed, **overrides)
        start = time.time()
        trainer = Trainer(config, progress=not args.quiet)
        final = trainer.train()
        seconds = time.time() - start
        folder = args.out / f"organism-{task}"
        result = write_organism(
            trainer, folder, train_seconds=seconds, final=final, command=command
        )
        print(json.dumps({"organism": folder.name, "train_seconds": round(seconds, 1)}))
        print(json.dumps(result["summary"]))
    return 0


if __name__ == "__main__":
    sys.exit(main())
