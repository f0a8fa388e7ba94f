"""The API reference builds from the docstrings (pdoc, offline)."""

from __future__ import annotations

import runpy
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]


def test_api_docs_build(tmp_path: Path) -> None:
    build = runpy.run_path(str(ROOT / "scripts" / "build_docs.py"))["build"]
    names = build(tmp_path)
    assert {"interp.models", "saes.codes", "circuits.pipeline", "circuits.tasks.ioi"} <= set(names)
    for name in names:
        assert (tmp_path / (name.replace(".", "/") + ".html")).is_file(), name
    assert 'id="score"' in (tmp_path / "circuits.html").read_text(encoding="utf-8")
