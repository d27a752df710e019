"""One exception tree: every error a user can cause derives from :class:`NasError`.

The CLI prints ``str(error)`` as a single line and exits with ``error.exit_code``; no
traceback is shown for these. Messages state the rule, the value that broke it, and
what to do next.
"""

from __future__ import annotations

import difflib
import re
from collections.abc import Iterable


class NasError(Exception):
    """Base of all errors caused by user input, stored data or the environment."""

    exit_code = 1


class ConfigError(NasError):
    """A bad override, unknown key, or a value of the wrong type or range.

    ``key`` names the setting at fault where one does, so that a settings group can
    qualify it (``dropout`` -> ``model.dropout``) with :meth:`in_group`.
    """

    exit_code = 2

    def __init__(self, message: str, *, key: str | None = None) -> None:
        super().__init__(message)
        self.key = key

    def in_group(self, group: str) -> ConfigError:
        """The same error with its key written as ``group.key``."""
        message = str(self)
        if self.key is not None:
            message = re.sub(rf"\b{re.escape(self.key)}\b", f"{group}.{self.key}", message)
        return ConfigError(message, key=f"{group}.{self.key}" if self.key else None)


class DataError(NasError):
    """A data set is missing, malformed, or unknown."""

    exit_code = 2


class ArchitectureError(NasError):
    """An architecture value is malformed (for example read back from a database)."""


class CapabilityError(NasError):
    """A search space or evaluator was asked for something it declares it cannot do."""

    exit_code = 2


class CandidateRejected(NasError):
    """An evaluator refuses a candidate by design (it failed a screening test).

    The trial is recorded with the reason as a rejected candidate, never as a failure;
    ``protocol`` names the test that refused it (``stability``, ``quality``...), so that
    a study counts its rejections by protocol (without one, by reason).
    """

    def __init__(self, message: str, *, protocol: str | None = None) -> None:
        super().__init__(message)
        self.protocol = protocol


class WeightsError(NasError):
    """Weights to start a network from do not fit it (names or shapes differ)."""


class StudyError(NasError):
    """The study store holds something that conflicts with the request."""

    exit_code = 2


def first_line(error: BaseException) -> str:
    """The first line of an error's message (libraries' messages span many), or the
    error's type name when it has none."""
    return (str(error).splitlines() or [type(error).__name__])[0]


def close_match_hint(value: str, allowed: Iterable[str]) -> str:
    """Return ``" Did you mean 'x'?"`` for the closest allowed value, or ``""``."""
    matches = difflib.get_close_matches(str(value), [str(a) for a in allowed], n=1, cutoff=0.5)
    return f" Did you mean '{matches[0]}'?" if matches else ""


def unknown_choice(kind: str, value: object, allowed: Iterable[str]) -> ConfigError:
    """Build the standard 'unknown X' error listing the allowed values and a close match."""
    allowed = sorted(allowed)
    return ConfigError(
        f"Unknown {kind} '{value}'. Allowed: {', '.join(allowed)}."
        + close_match_hint(str(value), allowed)
    )
