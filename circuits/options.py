"""Command-line options generated from the config dataclasses of ``circuits.config``.

One option per field (``--n-prompts``, ``--sae-l1-coefficient``, ...), its help text the
field's docstring, its type and choices from the annotation; so the CLI and the Python API
cannot drift apart.
"""

from __future__ import annotations

import argparse
import ast
import inspect
import itertools
import textwrap
import types
import typing
from collections.abc import Callable
from dataclasses import MISSING, fields, replace
from typing import TYPE_CHECKING, Any, Literal

from circuits.config import SECTIONS, PipelineConfig, default_config
from circuits.tasks.registry import names as task_names

if TYPE_CHECKING:
    from circuits.tasks import Task

__all__ = ["Destinations", "add_config_options", "field_docs", "resolve_config"]

Destinations = dict[str, tuple[str, str]]
"""Option dest -> (config section, field name)."""


def field_docs(cls: type) -> dict[str, str]:
    """Each dataclass field's docstring (the string literal after it), on one line."""
    tree = ast.parse(textwrap.dedent(inspect.getsource(cls)))
    body = tree.body[0].body  # type: ignore[attr-defined]
    docs = {}
    for node, following in itertools.pairwise(body):
        if (
            isinstance(node, ast.AnnAssign)
            and isinstance(node.target, ast.Name)
            and isinstance(following, ast.Expr)
            and isinstance(following.value, ast.Constant)
            and isinstance(following.value.value, str)
        ):
            docs[node.target.id] = " ".join(following.value.value.split())
    return docs


def _converter(annotation: Any, option: str) -> tuple[Callable[[str], Any], list[str] | None]:
    """A string -> value parser and the choices (for Literal types) of one field type."""
    args = typing.get_args(annotation)
    origin = typing.get_origin(annotation)
    if origin in (typing.Union, types.UnionType) and type(None) in args:
        inner = next(a for a in args if a is not type(None))
        parse, choices = _converter(inner, option)

        def optional(text: str) -> Any:
            return None if text.lower() == "none" else parse(text)

        return optional, None if choices is None else [*choices, "none"]
    if origin is Literal:
        return str, [str(a) for a in args]
    if annotation in (int, float, str):
        return annotation, None
    raise TypeError(f"option --{option}: field type {annotation!r} has no command-line form.")


# SAE options carry a prefix: their names (lr, k, device, dtype) are too generic on their own.
_PREFIX = {"sae": "sae-"}


def add_config_options(parser: argparse.ArgumentParser) -> Destinations:
    """Add one option per config field; return dest -> (section, field)."""
    destinations: Destinations = {}
    taken = {a.dest for a in parser._actions}
    per_task = {name: default_config(name) for name in task_names()}
    for section, cls in SECTIONS.items():
        group = parser.add_argument_group(f"{section} options ({cls.__name__})")
        docs = field_docs(cls)
        hints = typing.get_type_hints(cls)
        for item in fields(cls):
            option = _PREFIX.get(section, "") + item.name.replace("_", "-")
            dest = option.replace("-", "_")
            if dest in taken:
                raise RuntimeError(f"config option --{option} clashes with another option.")
            taken.add(dest)
            default = (
                item.default if item.default is not MISSING else item.default_factory()  # type: ignore[misc]
            )
            # A task whose own default differs (docstring's L1 coefficient) says so.
            own = [
                f"{task}: {value}"
                for task, config in per_task.items()
                if (value := getattr(getattr(config, section), item.name)) != default
            ]
            defaults = "; ".join([f"default: {default}", *own])
            help_text = f"{docs.get(item.name, '')} ({defaults})".replace("%", "%%")
            annotation = hints[item.name]
            if annotation is bool:
                group.add_argument(
                    f"--{option}",
                    dest=dest,
                    action=argparse.BooleanOptionalAction,
                    default=argparse.SUPPRESS,
                    help=help_text,
                )
            else:
                parse, choices = _converter(annotation, option)
                group.add_argument(
                    f"--{option}",
                    dest=dest,
                    type=parse,
                    choices=None if choices is None else [parse(c) for c in choices],
                    metavar=None if choices is None else "{" + ",".join(choices) + "}",
                    default=argparse.SUPPRESS,
                    help=help_text,
                )
            destinations[dest] = (section, item.name)
    return destinations


def resolve_config(
    task: Task | str, args: argparse.Namespace, destinations: Destinations
) -> PipelineConfig:
    """The task's default config with the options given on the command line applied;
    a bad value raises ``ValueError`` naming the option."""
    config = default_config(task)
    overrides: dict[str, dict[str, Any]] = {}
    for dest, (section, name) in destinations.items():
        if hasattr(args, dest):
            overrides.setdefault(section, {})[name] = getattr(args, dest)
    for section, values in overrides.items():
        config = replace(config, **{section: replace(getattr(config, section), **values)})
    return config
