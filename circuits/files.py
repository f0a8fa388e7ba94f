"""Result files: atomic writes, JSON-safe values, file-system-safe names, package versions."""

from __future__ import annotations

import json
import math
import os
import re
import tempfile
from collections.abc import Callable
from importlib import metadata
from pathlib import Path
from typing import Any

__all__ = ["jsonable", "safe_name", "versions", "write_atomic", "write_json"]


def write_atomic(path: Path, write: Callable[[Path], None]) -> None:
    """Write through a temporary file in the same folder, then rename over ``path``: a
    reader never sees a half-written file, and an interrupted run leaves the old one."""
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp_name = tempfile.mkstemp(prefix=f".{path.name}.", suffix=path.suffix, dir=path.parent)
    os.close(fd)
    tmp = Path(tmp_name)
    try:
        write(tmp)
        os.replace(tmp, path)
    finally:
        tmp.unlink(missing_ok=True)


def write_json(path: Path, value: Any) -> None:
    """``value`` as indented strict JSON (non-finite floats become null), atomically."""
    text = json.dumps(jsonable(value), indent=2, allow_nan=False) + "\n"
    write_atomic(path, lambda tmp: tmp.write_text(text, encoding="utf-8"))


def jsonable(value: Any) -> Any:
    """JSON-safe copy: numpy scalars to Python, non-finite floats to None."""
    if isinstance(value, dict):
        return {str(k): jsonable(v) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return [jsonable(v) for v in value]
    if hasattr(value, "item") and callable(value.item):
        value = value.item()
    if isinstance(value, float) and not math.isfinite(value):
        return None
    return value


def safe_name(name: str) -> str:
    """``name`` with every run of characters other than letters, digits, ``.``, ``_`` and
    ``-`` replaced by ``_`` (a model id such as ``owner/repo`` becomes one folder)."""
    return re.sub(r"[^A-Za-z0-9._-]+", "_", name).strip("_") or "model"


def versions() -> dict[str, str]:
    """Versions of the toolkit and the libraries its numbers depend on."""
    out = {}
    for package in ("sae-circuits-toolkit", "torch", "transformer_lens", "sae_lens", "numpy"):
        try:
            out[package] = metadata.version(package)
        except metadata.PackageNotFoundError:
            out[package] = "not installed"
    return out
