"""Which torch devices this machine has: checked before any model loads (imports only torch)."""

from __future__ import annotations

import torch

__all__ = ["check_device"]


def check_device(device: str | torch.device) -> str:
    """``device`` as a string if this machine has it; else a ValueError that says so."""
    try:
        parsed = torch.device(device)
    except RuntimeError:
        raise ValueError(
            f"{device!r} is not a torch device; use cpu, cuda, cuda:N or mps"
        ) from None
    if parsed.type == "cuda":
        count = torch.cuda.device_count() if torch.cuda.is_available() else 0
        if (parsed.index or 0) >= count:
            raise ValueError(
                f"device {str(device)!r}: this machine has {count} usable CUDA device(s); use cpu"
            )
    if parsed.type == "mps" and not torch.backends.mps.is_available():
        raise ValueError(f"device {str(device)!r}: MPS is not available here; use cpu")
    return str(device)
