"""The scoring-method registry: a leaf that imports none of the methods it holds.

Each method module registers itself (``@register(...)``) when ``circuits.methods`` imports
it, so ``get`` and ``names`` see every method without a plugin loader.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from circuits.methods.context import MethodContext
    from circuits.methods.result import ScoreResult

__all__ = ["Method", "MethodFn", "get", "names", "register"]

MethodFn = Callable[["MethodContext", int], "ScoreResult"]
"""A scoring method: (context, seed) -> ScoreResult with node (and optional edge) scores."""


@dataclass(frozen=True)
class Method:
    """A registered scoring method."""

    name: str
    """Name used by ``circuits.score(method=...)`` and the CLI's ``--methods``."""
    run: MethodFn
    """(context, seed) -> ScoreResult."""
    config: type | None
    """The method's own options dataclass; None when the PipelineConfig is all it reads."""
    deterministic: bool
    """Its scores do not depend on the seed (given the data): multi-trial runs run it once."""
    function: Callable[..., ScoreResult] | None = None
    """A patching method's direct form ``function(model, task, data, config)``, or None."""


_METHODS: dict[str, Method] = {}


def register(
    name: str,
    *,
    config: type | None = None,
    deterministic: bool = False,
    function: Callable[..., ScoreResult] | None = None,
) -> Callable[[MethodFn], MethodFn]:
    """Decorator registering a scoring method under ``name``."""

    def decorator(fn: MethodFn) -> MethodFn:
        if name in _METHODS and _METHODS[name].run is not fn:
            raise ValueError(f"method {name!r} is already registered; pick another name.")
        _METHODS[name] = Method(name, fn, config, deterministic, function)
        return fn

    return decorator


def get(name: str) -> Method:
    """The registered method called ``name``."""
    if name not in _METHODS:
        raise ValueError(f"unknown method {name!r}; registered: {', '.join(names())}.")
    return _METHODS[name]


def names() -> list[str]:
    """Names of the registered methods, sorted."""
    return sorted(_METHODS)
