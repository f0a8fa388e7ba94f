"""Stage timing shared by the pipeline and the methods."""

from __future__ import annotations

import time
from collections.abc import Iterator
from contextlib import contextmanager

import torch


@contextmanager
def timed(seconds: dict[str, float], stage: str, device: torch.device) -> Iterator[None]:
    """Add the wall time of the block to `seconds[stage]` (CUDA work synchronised)."""
    if device.type == "cuda":
        torch.cuda.synchronize(device)
    start = time.perf_counter()
    try:
        yield
    finally:
        if device.type == "cuda":
            torch.cuda.synchronize(device)
        seconds[stage] = seconds.get(stage, 0.0) + time.perf_counter() - start
