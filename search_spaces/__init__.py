"""Search spaces from the literature, behind one registry.

    >>> from search_spaces import list_spaces, create_space
    >>> list_spaces()
    ['bignas', 'evonorm', 'nasnet', 'tas', 'vit_resnas']
    >>> space = create_space("nasnet", cells_per_stage=2)

Built-in families are imported lazily, on first use. A space from another package is
found through its entry point (group ``nas.spaces``), its ``module:Class`` reference
(``space=my_package.spaces:MySpace``), or the ``@register_space`` decorator.
"""

from __future__ import annotations

from typing import Any

from nas.core.dataspec import DataSpec
from nas.core.registry import Registry
from search_spaces.base import (
    DifferentiableSpace,
    DifferentiableSupernet,
    SearchSpace,
    Supernet,
    WeightSharingSpace,
    check_supernet,
)

__all__ = [
    "DataSpec",
    "DifferentiableSpace",
    "DifferentiableSupernet",
    "SearchSpace",
    "Supernet",
    "WeightSharingSpace",
    "check_supernet",
    "create_space",
    "get_space_class",
    "list_spaces",
    "register_space",
]

SPACES: Registry[SearchSpace[Any]] = Registry(
    kind="search space",
    base=SearchSpace,
    builtins={
        "bignas": "search_spaces.bignas",
        "evonorm": "search_spaces.evonorm",
        "nasnet": "search_spaces.nasnet",
        "tas": "search_spaces.tas",
        "vit_resnas": "search_spaces.vit_resnas",
    },
    group="nas.spaces",
)
register_space = SPACES.register


def list_spaces() -> list[str]:
    """Names of all registered search spaces (built-in and installed plug-ins), sorted."""
    return SPACES.names()


def get_space_class(name: str) -> type[SearchSpace[Any]]:
    """The class for ``name`` or ``module:Class``; ``ConfigError`` with a close match."""
    return SPACES.get(name)


def create_space(name: str, **options: Any) -> SearchSpace[Any]:
    """Instantiate the space ``name`` with its settings (the ``model.*`` group)."""
    return get_space_class(name)(**options)
