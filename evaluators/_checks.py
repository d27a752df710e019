"""Validation of numeric training settings, shared by the evaluators' settings classes."""

from __future__ import annotations

import math

from nas.errors import ConfigError


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
            math.isfinite(value)
            and (value > low if low_open else value >= low)
            and (high is None or (value < high if high_open else value <= high))
        )
    if not ok:
        kind = "an integer" if integer else "a number"
        bound = f"> {low:g}" if low_open else f">= {low:g}"
        if high is not None:
            bound += f" and {'<' if high_open else '<='} {high:g}"
        raise ConfigError(f"{name} must be {kind} {bound}, but got {name}={value!r}.")
