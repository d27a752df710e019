"""Registries of named plug-ins: search spaces, evaluators.

A name resolves, in this order, to a class registered with the decorator, a built-in
(imported on first use, so listing names stays cheap), a class another package
declares as an entry point (``[project.entry-points."nas.spaces"]`` etc.), or a
``module:Class`` reference to any importable class. Whatever the source, the class
must subclass the registry's base; errors are one line with the allowed names.

Names read back from a study store are untrusted: a ``module:Class`` reference must be
a dotted Python name, and the class it names must subclass the base, or it is refused.
Importing it runs that installed module's code, as for an entry point.
"""

from __future__ import annotations

import importlib
import re
from collections.abc import Callable, Mapping
from importlib.metadata import entry_points
from typing import Any, Generic, TypeVar, cast

from nas.core.errors import ConfigError, close_match_hint

T = TypeVar("T")
ClassT = TypeVar("ClassT", bound=type)

_REFERENCE = re.compile(r"^[A-Za-z_][\w]*(\.[A-Za-z_]\w*)*:[A-Za-z_]\w*$")


def is_reference(name: str) -> bool:
    """Whether ``name`` is a ``module:Class`` reference rather than a registered name."""
    return ":" in name


class Registry(Generic[T]):
    """Named subclasses of ``base``.

    Args:
        kind: What the entries are, for messages ("search space").
        base: The class every entry subclasses.
        builtins: Name -> module that registers it when imported.
        group: The entry-point group other packages declare theirs in.
    """

    def __init__(self, *, kind: str, base: type, builtins: Mapping[str, str], group: str) -> None:
        self.kind, self.base, self.group = kind, base, group
        self._builtins = dict(builtins)
        self._registered: dict[str, type[T]] = {}

    def register(self, cls: ClassT) -> ClassT:
        """Class decorator: make ``cls`` available under its ``name`` attribute."""
        name = getattr(cls, "name", None)
        if not isinstance(name, str) or not name or is_reference(name):
            raise TypeError(f"{cls.__qualname__} must set a class attribute `name` (no ':').")
        existing = self._registered.get(name)
        if existing is not None and existing is not cls:
            raise ValueError(f"{self.kind} '{name}' is already registered by {existing!r}.")
        self._registered[name] = cls
        return cls

    def names(self) -> list[str]:
        """Every name that resolves without a ``module:Class`` reference, sorted."""
        plugins = {point.name for point in entry_points(group=self.group)}
        return sorted(set(self._builtins) | set(self._registered) | plugins)

    def get(self, name: str) -> type[T]:
        """The class for ``name`` (a name or a ``module:Class`` reference)."""
        if not isinstance(name, str):
            raise ConfigError(f"A {self.kind} is named by a string, got {name!r}.")
        if is_reference(name):
            return self._checked(self._import(name), name)
        if name not in self._registered and name in self._builtins:
            importlib.import_module(self._builtins[name])
        if name not in self._registered:
            for point in entry_points(group=self.group, name=name):
                return self._checked(self._load(point.load, name), name)
        try:
            return self._registered[name]
        except KeyError:
            allowed = self.names()
            raise ConfigError(
                f"Unknown {self.kind} '{name}'. Allowed: {', '.join(allowed)}, or "
                "module:Class for your own." + close_match_hint(name, allowed)
            ) from None

    def _import(self, reference: str) -> Any:
        if not _REFERENCE.match(reference):
            raise ConfigError(
                f"'{reference}' is not a {self.kind} reference; write module.path:ClassName."
            )
        module_name, _, attribute = reference.partition(":")

        def load() -> Any:
            return getattr(importlib.import_module(module_name), attribute)

        return self._load(load, reference)

    def _load(self, load: Callable[[], Any], name: str) -> Any:
        try:
            return load()
        except (ImportError, AttributeError) as error:
            raise ConfigError(
                f"Cannot load {self.kind} '{name}': {error}. Is its package installed?"
            ) from None

    def _checked(self, cls: Any, name: str) -> type[T]:
        if not (isinstance(cls, type) and issubclass(cls, self.base)):
            raise ConfigError(
                f"'{name}' is not a {self.kind}: it must be a subclass of "
                f"{self.base.__module__}.{self.base.__qualname__}."
            )
        return cast("type[T]", cls)
