"""Validation of settings values: one style of check and of message for every settings group."""

from __future__ import annotations

import math
from collections.abc import Collection
from typing import Any

from nas.core.errors import ConfigError, close_match_hint


def check_number(
    name: str,
    value: object,
    *,
    integer: bool = False,
    low: float,
    low_open: bool = False,
    high: float | None = None,
    high_open: bool = False,
) -> None:
    """Raise ``ConfigError`` unless ``value`` is a finite number within the bounds."""
    ok = False
    # bool is an int subclass, but epochs=True is surely a mistake.
    if (
        isinstance(value, (int, float))
        and not isinstance(value, bool)
        and (isinstance(value, int) or not integer)
    ):
        ok = (
            # An int is always finite, and isfinite overflows on one of 400 digits.
            (isinstance(value, int) or math.isfinite(value))
            and (value > low if low_open else value >= low)
            and (high is None or (value < high if high_open else value <= high))
        )
    if not ok:
        kind = "an integer" if integer else "a number"
        bound = f"> {low:g}" if low_open else f">= {low:g}"
        if high is not None:
            bound += f" and {'<' if high_open else '<='} {high:g}"
        raise ConfigError(f"{name} must be {kind} {bound}, but got {name}={value!r}.", key=name)


def check_optional_number(name: str, value: object, **bounds: Any) -> None:
    """``check_number`` for a setting where None means "not set"."""
    if value is not None:
        check_number(name, value, **bounds)


def check_choice(name: str, value: object, allowed: Collection[str]) -> None:
    """Raise ``ConfigError`` unless ``value`` is one of ``allowed`` (with a close match)."""
    if not isinstance(value, str) or value not in allowed:
        options = sorted(allowed)
        raise ConfigError(
            f"{name} must be one of {', '.join(options)}, but got {name}={value!r}."
            + close_match_hint(str(value), options),
            key=name,
        )


def check_bool(name: str, value: object) -> None:
    """Raise ``ConfigError`` unless ``value`` is true or false."""
    if not isinstance(value, bool):
        raise ConfigError(f"{name} must be true or false, but got {name}={value!r}.", key=name)
