"""Checks for architectures decoded from untrusted data (a database, a file).

Every message is one line that names the family, the field's path and the rule, and
shows at most a short, safe excerpt of the offending value.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from nas.core.errors import ArchitectureError, close_match_hint

MAX_REPR = 60  # characters of an offending value shown in a message


def show(value: object) -> str:
    """A short ``repr`` that never fails and never floods a message."""
    try:
        text = repr(value)
    except (ValueError, RecursionError):  # e.g. an int past Python's 4300-digit str limit
        return f"<unprintable {type(value).__name__}>"
    return text if len(text) <= MAX_REPR else text[: MAX_REPR - 3] + "..."


def invalid(family: str, path: str, rule: str, value: object) -> ArchitectureError:
    return ArchitectureError(f"Invalid {family} architecture: {path} {rule}, got {show(value)}.")


def check_keys(
    family: str, data: object, path: str, required: tuple[str, ...]
) -> Mapping[str, Any]:
    """``data`` as a mapping with exactly the ``required`` keys."""
    if not isinstance(data, Mapping):
        raise invalid(family, path, f"must be an object with keys {', '.join(required)}", data)
    extra = [k for k in data if k not in required]
    if extra:
        key = extra[0]
        hint = close_match_hint(key[:MAX_REPR], required) if isinstance(key, str) else ""
        raise ArchitectureError(
            f"Invalid {family} architecture: {path} has unknown key {show(key)}; "
            f"allowed keys: {', '.join(required)}.{hint}"
        )
    missing = [k for k in required if k not in data]
    if missing:
        raise ArchitectureError(
            f"Invalid {family} architecture: {path} is missing key '{missing[0]}' "
            f"(required: {', '.join(required)})."
        )
    return data
