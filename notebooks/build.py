"""Build the notebooks from their percent-format sources in notebooks/src/ (outputs stripped).

    python notebooks/build.py          # write notebooks/<name>.ipynb for every src/<name>.py
    python notebooks/build.py --check  # exit 1 if a committed notebook differs from its source

A source is a Python file split into cells by lines starting with ``# %%``; a cell whose
marker line is ``# %% [markdown]`` is Markdown, written as ``# ``-prefixed comment lines.
Cell ids are numbered, so the same source always gives the same notebook file.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

import nbformat

NOTEBOOKS_DIR = Path(__file__).resolve().parent
SOURCES_DIR = NOTEBOOKS_DIR / "src"
KERNELSPEC = {"name": "python3", "display_name": "Python 3", "language": "python"}


def _cells(source: str) -> list[tuple[str, str]]:
    """(kind, text) of each cell of a percent-format source."""
    cells: list[tuple[str, list[str]]] = []
    for line in source.splitlines():
        if line.startswith("# %%"):
            kind = "markdown" if line.strip() == "# %% [markdown]" else "code"
            cells.append((kind, []))
        elif cells:
            cells[-1][1].append(line)
        elif line.strip():
            raise ValueError(f"text before the first '# %%' marker: {line!r}")
    out = []
    for kind, lines in cells:
        if kind == "markdown":
            bad = [x for x in lines if x.strip() and not x.startswith("#")]
            if bad:
                raise ValueError(f"markdown cell line without '# ': {bad[0]!r}")
            lines = [x[2:] if x.startswith("# ") else x.lstrip("#") for x in lines]
        text = "\n".join(lines).strip("\n")
        if text:
            out.append((kind, text))
    return out


def build(source_path: Path) -> nbformat.NotebookNode:
    """The notebook of one source file, without outputs."""
    notebook = nbformat.v4.new_notebook()
    notebook.metadata = {
        "kernelspec": KERNELSPEC,
        "language_info": {"name": "python"},
    }
    for i, (kind, text) in enumerate(_cells(source_path.read_text(encoding="utf-8"))):
        make = nbformat.v4.new_markdown_cell if kind == "markdown" else nbformat.v4.new_code_cell
        cell = make(text)
        cell.id = f"cell-{i:02d}"
        notebook.cells.append(cell)
    nbformat.validate(notebook)
    return notebook


def render(notebook: nbformat.NotebookNode) -> str:
    """The file text of a notebook (nbformat's JSON layout, trailing newline)."""
    return nbformat.writes(notebook) + "\n"


def main(argv: list[str] | None = None) -> int:
    """Write (or with --check, compare) every notebook built from notebooks/src/*.py."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--check", action="store_true", help="compare instead of writing")
    args = parser.parse_args(argv)
    stale = []
    for source_path in sorted(SOURCES_DIR.glob("*.py")):
        target = NOTEBOOKS_DIR / f"{source_path.stem}.ipynb"
        text = render(build(source_path))
        if args.check:
            if not target.is_file() or target.read_text(encoding="utf-8") != text:
                stale.append(target.name)
        else:
            target.write_text(text, encoding="utf-8")
            print(f"wrote {target.relative_to(NOTEBOOKS_DIR.parent)}")
    if stale:
        print(f"out of date: {', '.join(stale)}; run `python notebooks/build.py`", file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
