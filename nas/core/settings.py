"""Typed settings groups: one dataclass per space, evaluator or strategy.

The dataclass is the schema of its config group (``model.*``, ``train.*``, ...) and the
one place of its defaults; its ``__post_init__`` checks ranges with
``nas.core.validation``. Library users build it from keyword arguments with
:func:`make_settings`, which turns unknown keys into one-line errors.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Mapping
from typing import Any, TypeVar

from nas.core.errors import ConfigError, close_match_hint

T = TypeVar("T")


@dataclasses.dataclass(frozen=True)
class NoSettings:
    """The settings of something that has none."""


def make_settings(settings_class: type[T], options: Mapping[str, Any], group: str) -> T:
    """``settings_class(**options)``; ``ConfigError`` naming an unknown ``group.key``."""
    allowed = [f.name for f in dataclasses.fields(settings_class)]  # type: ignore[arg-type]
    for key in sorted(options):
        if key not in allowed:
            raise ConfigError(
                f"Unknown key '{group}.{key}'. Allowed keys under {group}: "
                f"{', '.join(allowed) or 'none'}." + close_match_hint(key, allowed)
            )
    try:
        return settings_class(**options)
    except ConfigError as error:
        raise error.in_group(group) from None
