"""The registry of built-in tasks: names, lookup and listings.

Names map to the class that implements each task, imported on first use, so that listing
the names (the CLI's parser) loads no prompt generator and no torch.
"""

from __future__ import annotations

import importlib
from collections.abc import Mapping
from types import MappingProxyType
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from circuits.tasks.base import Task, TaskInfo

TASKS: Mapping[str, str] = MappingProxyType(
    {
        "ioi": "circuits.tasks.ioi:IOITask",
        "greater-than": "circuits.tasks.greater_than:GreaterThanTask",
        "docstring": "circuits.tasks.docstring:DocstringTask",
    }
)
"""Task name -> `module:Class` of its implementation."""


def names() -> tuple[str, ...]:
    """Names of the built-in tasks."""
    return tuple(TASKS)


def task_class(name: str) -> type[Task]:
    """The class of a built-in task (imported on first use)."""
    module, _, cls = TASKS[name].partition(":")
    return getattr(importlib.import_module(module), cls)


def get(name: str, **options: Any) -> Task:
    """A built-in task by name (`ioi`, `greater-than`, `docstring`), configured by `options`."""
    key = name.strip().lower().replace("_", "-")
    if key not in TASKS:
        raise ValueError(
            f"unknown task {name!r}; built-in tasks are {', '.join(TASKS)} "
            "(user tasks: circuits.tasks.from_lists or from_file)."
        )
    cls = task_class(key)
    try:
        return cls(**options)
    except TypeError as error:
        raise TypeError(f"task {key!r}: bad option ({error}); see {cls.__name__}.") from error


def info(name: str) -> TaskInfo:
    """Name, description, metric and an example positive/negative of a built-in task."""
    return get(name).info()
