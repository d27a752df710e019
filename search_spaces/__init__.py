"""Search spaces from the literature, behind one registry.

    >>> from search_spaces import list_spaces, create_space
    >>> list_spaces()
    ['nasnet']
    >>> space = create_space("nasnet", cells_per_stage=2)

Built-in families are imported lazily, on first use. A third-party space registers
itself with the ``@register_space`` decorator.
"""

from __future__ import annotations

import importlib
from collections.abc import Callable
from typing import Any, TypeVar

from nas.errors import unknown_choice
from search_spaces.base import DataSpec, SearchSpace, WeightSharingSpace

__all__ = [
    "DataSpec",
    "SearchSpace",
    "WeightSharingSpace",
    "create_space",
    "get_space_class",
    "list_spaces",
    "register_space",
]

# name -> module that registers it on import; keeps `import search_spaces` cheap.
_BUILTIN_MODULES: dict[str, str] = {
    "bignas": "search_spaces.bignas",
    "nasnet": "search_spaces.nasnet",
}
_REGISTRY: dict[str, type[SearchSpace[Any]]] = {}

SpaceT = TypeVar("SpaceT", bound=type[SearchSpace[Any]])


def register_space(cls: SpaceT) -> SpaceT:
    """Class decorator: make ``cls`` available under ``cls.name``."""
    name = getattr(cls, "name", None)
    if not isinstance(name, str) or not name:
        raise TypeError(f"{cls.__qualname__} must set a non-empty class attribute `name`.")
    existing = _REGISTRY.get(name)
    if existing is not None and existing is not cls:
        raise ValueError(f"Search space '{name}' is already registered by {existing!r}.")
    _REGISTRY[name] = cls
    return cls


def list_spaces() -> list[str]:
    """Names of all registered search spaces, sorted."""
    return sorted(set(_BUILTIN_MODULES) | set(_REGISTRY))


def get_space_class(name: str) -> type[SearchSpace[Any]]:
    """The class registered as ``name``; ``ConfigError`` with a close match if unknown."""
    if name not in _REGISTRY and name in _BUILTIN_MODULES:
        importlib.import_module(_BUILTIN_MODULES[name])
    try:
        return _REGISTRY[name]
    except KeyError:
        raise unknown_choice("search space", name, list_spaces()) from None


def create_space(name: str, **options: Any) -> SearchSpace[Any]:
    """Instantiate the space ``name`` with its macro settings."""
    factory: Callable[..., SearchSpace[Any]] = get_space_class(name)
    return factory(**options)
