"""The registry of built-in tasks: names, lookup and listings."""

from __future__ import annotations

from collections.abc import Mapping
from types import MappingProxyType
from typing import Any

from circuits.tasks.base import Task, TaskInfo
from circuits.tasks.docstring import DocstringTask
from circuits.tasks.greater_than import GreaterThanTask
from circuits.tasks.ioi import IOITask

TASKS: Mapping[str, type[Task]] = MappingProxyType(
    {"ioi": IOITask, "greater-than": GreaterThanTask, "docstring": DocstringTask}
)


def names() -> tuple[str, ...]:
    """Names of the built-in tasks."""
    return tuple(TASKS)


def get(name: str, **options: Any) -> Task:
    """A built-in task by name (`ioi`, `greater-than`, `docstring`), configured by `options`."""
    key = name.strip().lower().replace("_", "-")
    if key not in TASKS:
        raise ValueError(
            f"unknown task {name!r}; built-in tasks are {', '.join(TASKS)} "
            "(user tasks: circuits.tasks.from_lists or from_file)."
        )
    try:
        return TASKS[key](**options)
    except TypeError as error:
        raise TypeError(
            f"task {key!r}: bad option ({error}); see {TASKS[key].__name__}."
        ) from error


def info(name: str) -> TaskInfo:
    """Name, description, metric and an example positive/negative of a built-in task."""
    return get(name).info()
