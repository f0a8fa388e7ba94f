"""Build the API reference (HTML, offline) from the docstrings of interp, saes and circuits.

    python scripts/build_docs.py [--out site]     # what `make docs` runs; open site/index.html

pdoc only follows the submodules a package lists in `__all__`, so every module of the three
packages is named explicitly (found with pkgutil). `interp`, `saes`, `circuits` and
`circuits.tasks` export their public names lazily (a module `__getattr__`, so that light
submodules import fast), which pdoc cannot see; they are resolved before rendering so the
package pages list them.
"""

from __future__ import annotations

import argparse
import importlib
import pkgutil
import sys
import warnings
from pathlib import Path

PACKAGES = ("interp", "saes", "circuits")


def module_names(packages: tuple[str, ...] = PACKAGES) -> list[str]:
    """Every module of ``packages``, parents first."""
    names = []
    for package in packages:
        module = importlib.import_module(package)
        names.append(package)
        names.extend(info.name for info in pkgutil.walk_packages(module.__path__, f"{package}."))
    return names


def build(out: Path, packages: tuple[str, ...] = PACKAGES) -> list[str]:
    """Write the HTML reference of ``packages`` into ``out``; return the documented modules."""
    import pdoc
    import pdoc.render

    names = module_names(packages)
    for module_name in names:
        module = importlib.import_module(module_name)
        for name in getattr(module, "__all__", ()):
            if name not in vars(module):
                setattr(module, name, getattr(module, name))
    pdoc.render.configure(docformat="markdown", footer_text="sae-circuits-toolkit")
    with warnings.catch_warnings():
        # A package that lists a submodule in __all__ walks it too; the page is written once.
        warnings.filterwarnings("ignore", message="The module specification")
        pdoc.pdoc(*names, output_directory=Path(out))
    return names


def main(argv: list[str] | None = None) -> int:
    """Command line: build into --out (default: site/)."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--out", default="site", help="output folder (default: site)")
    args = parser.parse_args(argv)
    names = build(Path(args.out))
    print(f"wrote {len(names)} module pages to {args.out}/ (open {args.out}/index.html)")
    return 0


if __name__ == "__main__":
    sys.exit(main())
