"""The notebooks execute top to bottom (nbclient) and match their sources.

Each notebook runs in a fresh kernel of *this* interpreter: a kernelspec pointing at
``sys.executable`` is written to a temporary ``JUPYTER_PATH``, so neither a user-level
``python3`` kernelspec nor ``ipykernel install`` matters. The kernel runs offline
(``HF_HUB_OFFLINE=1``) with an empty Hugging Face cache, so 02_reproduce_paper always takes
its organism path (the GPT-2 path would take many minutes on a CPU). Execution times are
printed in the terminal summary and stored in the pytest cache under ``notebooks/seconds``.
"""

from __future__ import annotations

import json
import runpy
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import nbformat
import pytest
from nbclient import NotebookClient

ROOT = Path(__file__).resolve().parents[1]
NOTEBOOKS = sorted((ROOT / "notebooks").glob("*.ipynb"))
KERNEL_NAME = "sae-circuits-toolkit-test"
CELL_TIMEOUT_S = 600

_SECONDS: dict[str, float] = {}


class _NotebookTimes:
    """Prints the notebooks' execution times after the test run."""

    def pytest_terminal_summary(self, terminalreporter: pytest.TerminalReporter) -> None:
        if _SECONDS:
            terminalreporter.write_sep("-", "notebook execution times")
            for name, seconds in sorted(_SECONDS.items()):
                terminalreporter.write_line(f"{name}: {seconds:.1f} s")


@pytest.fixture(scope="module")
def kernel_env(
    tmp_path_factory: pytest.TempPathFactory, request: pytest.FixtureRequest
) -> Iterator[None]:
    """Kernelspec for this interpreter and an offline environment, for the module's tests."""
    jupyter_dir = tmp_path_factory.mktemp("jupyter")
    spec_dir = jupyter_dir / "kernels" / KERNEL_NAME
    spec_dir.mkdir(parents=True)
    spec = {
        "argv": [sys.executable, "-m", "ipykernel_launcher", "-f", "{connection_file}"],
        "display_name": "sae-circuits-toolkit (tests)",
        "language": "python",
    }
    (spec_dir / "kernel.json").write_text(json.dumps(spec), encoding="utf-8")
    plugins = request.config.pluginmanager
    if not plugins.has_plugin("notebook-times"):
        plugins.register(_NotebookTimes(), "notebook-times")
    with pytest.MonkeyPatch.context() as patch:
        patch.setenv("JUPYTER_PATH", str(jupyter_dir))
        patch.setenv("HF_HUB_OFFLINE", "1")
        patch.setenv("HF_HOME", str(tmp_path_factory.mktemp("hf-home")))
        patch.setenv("OMP_WAIT_POLICY", "PASSIVE")
        yield
    if _SECONDS and request.config.cache is not None:
        request.config.cache.set("notebooks/seconds", dict(_SECONDS))


def test_notebooks_exist() -> None:
    names = {path.name for path in NOTEBOOKS}
    assert {
        "01_quickstart.ipynb",
        "02_reproduce_paper.ipynb",
        "03_attention_kernels.ipynb",
        "04_baselines.ipynb",
    } <= names


def test_notebooks_match_sources_and_have_no_outputs() -> None:
    build = runpy.run_path(str(ROOT / "notebooks" / "build.py"))
    assert build["main"](["--check"]) == 0, "run `python notebooks/build.py`"
    for path in NOTEBOOKS:
        notebook = nbformat.read(path, as_version=4)
        for cell in notebook.cells:
            if cell.cell_type == "code":
                assert not cell.outputs and cell.execution_count is None, path.name


@pytest.mark.slow
@pytest.mark.parametrize("path", NOTEBOOKS, ids=[path.stem for path in NOTEBOOKS])
def test_notebook_executes(path: Path, tmp_path: Path, kernel_env: None) -> None:
    notebook = nbformat.read(path, as_version=4)
    client = NotebookClient(
        notebook,
        timeout=CELL_TIMEOUT_S,
        kernel_name=KERNEL_NAME,
        resources={"metadata": {"path": str(tmp_path)}},
    )
    start = time.perf_counter()
    client.execute()
    _SECONDS[path.name] = time.perf_counter() - start
