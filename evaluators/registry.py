"""The evaluator registry: built-ins, entry points (``nas.evaluators``), ``module:Class``."""

from __future__ import annotations

from typing import Any

from evaluators.base import Evaluator
from nas.core.registry import Registry

EVALUATORS: Registry[Evaluator[Any]] = Registry(
    kind="evaluator",
    base=Evaluator,
    builtins={
        "evonorm": "evaluators.evonorm",
        "standalone": "evaluators.standalone",
        "supernet": "evaluators.weight_sharing",
        "tas": "evaluators.tas",
    },
    group="nas.evaluators",
)
register_evaluator = EVALUATORS.register


def list_evaluators() -> list[str]:
    """Names of all registered evaluators (built-in and installed plug-ins), sorted."""
    return EVALUATORS.names()


def get_evaluator_class(name: str) -> type[Evaluator[Any]]:
    """The class for ``name`` or ``module:Class``; ``ConfigError`` with a close match."""
    return EVALUATORS.get(name)
