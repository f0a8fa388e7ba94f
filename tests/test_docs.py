"""The API reference builds from the docstrings (pdoc, offline); the README example runs and
its result tables are the stored run's."""

from __future__ import annotations

import runpy
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]


def test_api_docs_build(tmp_path: Path) -> None:
    build = runpy.run_path(str(ROOT / "scripts" / "build_docs.py"))["build"]
    names = build(tmp_path)
    assert {"interp.models", "saes.coding", "circuits.pipeline", "circuits.tasks.ioi"} <= set(names)
    for name in names:
        assert (tmp_path / (name.replace(".", "/") + ".html")).is_file(), name
    assert 'id="score"' in (tmp_path / "circuits.html").read_text(encoding="utf-8")


def test_readme_example_runs(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    readme = (ROOT / "README.md").read_text(encoding="utf-8")
    example = readme.split("```python\n", 1)[1].split("```", 1)[0]
    monkeypatch.chdir(tmp_path)
    exec(compile(example, "README.md", "exec"), {"__name__": "readme_example"})
    assert "node ROC AUC" in capsys.readouterr().out


def test_readme_tables_are_the_stored_run() -> None:
    # The README's result tables are what scripts/readme_tables.py prints for the stored
    # results.json files of `make reproduce`: numbers are regenerated, never retyped.
    tables = runpy.run_path(str(ROOT / "scripts" / "readme_tables.py"))
    readme = (ROOT / "README.md").read_text(encoding="utf-8")
    by_model = tables["load"](ROOT / "benchmarks" / "results" / "readme")
    assert set(by_model) == {"organisms", "smollm2-135m"}
    for results in by_model.values():
        assert len(results) == 3  # ioi, greater-than, docstring
        assert tables["table"](results) in readme
