"""The package's shape: imports point one way (interp <- saes <- circuits), without cycles."""

from __future__ import annotations

import ast
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
PACKAGES = ("interp", "saes", "circuits")
LAYER = {"interp": 0, "saes": 1, "circuits": 2}
MAX_LINES = 450


def _module_name(path: Path) -> str:
    parts = path.relative_to(ROOT).with_suffix("").parts
    return ".".join(parts[:-1] if parts[-1] == "__init__" else parts)


def _modules() -> dict[str, Path]:
    return {
        _module_name(path): path
        for package in PACKAGES
        for path in sorted((ROOT / package).rglob("*.py"))
    }


def lazy_exports(modules: dict[str, Path]) -> dict[str, str]:
    """`package.Name` -> the module a package's ``_EXPORTS`` map loads it from on first use."""
    exports = {}
    for name, path in modules.items():
        for node in ast.parse(path.read_text(encoding="utf-8")).body:
            if (
                isinstance(node, ast.Assign)
                and any(isinstance(t, ast.Name) and t.id == "_EXPORTS" for t in node.targets)
                and isinstance(node.value, ast.Dict)
            ):
                table = ast.literal_eval(node.value)
                for module, names in table.items():
                    exports |= {f"{name}.{n}": f"{name}.{module}" for n in names}
    return exports


def import_graph(modules: dict[str, Path]) -> dict[str, set[str]]:
    """Module -> the project modules it imports (anywhere in its body, deferred or not);
    a name a package exports lazily counts as an import of the module that defines it."""
    exports = lazy_exports(modules)
    graph: dict[str, set[str]] = {name: set() for name in modules}
    for name, path in modules.items():
        for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
            if isinstance(node, ast.Import):
                targets = [alias.name for alias in node.names]
            elif isinstance(node, ast.ImportFrom) and node.module and not node.level:
                # `from package import module` imports that module; a name, its package.
                dotted = [f"{node.module}.{alias.name}" for alias in node.names]
                targets = [
                    name if name in modules else exports.get(name, node.module) for name in dotted
                ]
            else:
                continue
            graph[name] |= {target for target in targets if target in modules} - {name}
    return graph


def cycles(graph: dict[str, set[str]]) -> list[list[str]]:
    """Strongly connected components with more than one module (Tarjan)."""
    index: dict[str, int] = {}
    low: dict[str, int] = {}
    stack: list[str] = []
    on_stack: set[str] = set()
    found: list[list[str]] = []

    def visit(node: str) -> None:
        index[node] = low[node] = len(index)
        stack.append(node)
        on_stack.add(node)
        for target in sorted(graph[node]):
            if target not in index:
                visit(target)
                low[node] = min(low[node], low[target])
            elif target in on_stack:
                low[node] = min(low[node], index[target])
        if low[node] == index[node]:
            component = []
            while True:
                member = stack.pop()
                on_stack.discard(member)
                component.append(member)
                if member == node:
                    break
            if len(component) > 1:
                found.append(sorted(component))

    for node in sorted(graph):
        if node not in index:
            visit(node)
    return found


def test_cycle_finder_finds_a_planted_cycle() -> None:
    graph = {"a": {"b"}, "b": {"c"}, "c": {"a"}, "d": {"a"}}
    assert cycles(graph) == [["a", "b", "c"]]
    assert cycles({"a": {"b"}, "b": set()}) == []


def test_no_import_cycle_between_project_modules() -> None:
    graph = import_graph(_modules())
    assert graph["circuits.pipeline"] >= {"circuits.methods", "circuits.config"}
    # `from interp import HookedModel` resolves through interp's lazy exports.
    assert "interp.models" in graph["circuits.references"]
    assert cycles(graph) == []


def test_imports_point_one_way() -> None:
    upward = [
        f"{name} -> {target}"
        for name, targets in import_graph(_modules()).items()
        for target in targets
        if LAYER[target.split(".")[0]] > LAYER[name.split(".")[0]]
    ]
    assert upward == []


def test_the_method_registry_is_a_leaf() -> None:
    graph = import_graph(_modules())
    assert graph["circuits.methods.registry"] <= {
        "circuits.methods.context",  # type annotations only
        "circuits.methods.result",
    }


@pytest.mark.parametrize("name", sorted(_modules()))
def test_modules_stay_readable(name: str) -> None:
    lines = len(_modules()[name].read_text(encoding="utf-8").splitlines())
    assert lines <= MAX_LINES, f"{name} has {lines} lines; split it by job."


def test_no_lazy_export_is_shadowed_by_a_submodule() -> None:
    # Importing `pkg.name` binds the module to the package attribute `name`, hiding a lazily
    # exported function of that name (`saes.codes` was one before its module became coding).
    modules = _modules()
    clashes = [name for name in lazy_exports(modules) if name in modules]
    assert clashes == []
