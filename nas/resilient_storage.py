"""Optuna's RDB storage, with calls retried while the database is unreachable.

A worker that loses its database for a while (a server restart, a network blip, a
long SQLite lock) should wait and carry on rather than crash mid-trial. Every public
storage call is retried on connection-level errors with exponential back-off for up to
``OUTAGE_PATIENCE_S`` seconds; any other error (bad data, a finished trial) is raised
at once. A write whose reply was lost may in rare cases be applied twice; heartbeats and
the budget count from the store keep that from corrupting a study.
"""

from __future__ import annotations

import functools
import logging
import time
from collections.abc import Callable
from typing import Any, TypeVar

OUTAGE_PATIENCE_S = 300.0
_FIRST_WAIT_S = 0.5
_LONGEST_WAIT_S = 15.0
_logger = logging.getLogger("nas.store")

F = TypeVar("F", bound=Callable[..., Any])


def is_connection_error(error: BaseException) -> bool:
    """Whether ``error`` (or what caused it) says the database could not be reached."""
    from sqlalchemy.exc import DBAPIError, OperationalError

    while error is not None:
        if isinstance(error, OperationalError) or (
            isinstance(error, DBAPIError) and error.connection_invalidated
        ):
            return True
        error = error.__cause__  # type: ignore[assignment]
    return False


def retrying(method: F, patience: float = OUTAGE_PATIENCE_S) -> F:
    """``method`` retried on connection errors until ``patience`` seconds have passed."""

    @functools.wraps(method)
    def call(*args: Any, **kwargs: Any) -> Any:
        deadline = time.monotonic() + patience
        wait = _FIRST_WAIT_S
        while True:
            try:
                return method(*args, **kwargs)
            except Exception as error:
                if not is_connection_error(error) or time.monotonic() + wait > deadline:
                    raise
                _logger.warning(
                    "database unreachable (%s); retrying in %.1fs", method.__name__, wait
                )
                time.sleep(wait)
                wait = min(2 * wait, _LONGEST_WAIT_S)

    return call  # type: ignore[return-value]


@functools.cache
def resilient_rdb_storage_class() -> type:
    """``RDBStorage`` with every public call retried (built lazily: optuna loads slowly).

    A subclass rather than a wrapper, so that Optuna still recognises it as an RDB
    storage (and caches finished trials in front of it).
    """
    from optuna.storages import RDBStorage

    methods = {
        name: retrying(getattr(RDBStorage, name))
        for name in dir(RDBStorage)
        if not name.startswith("__")
        and name not in ("remove_session", "upgrade", "get_current_version", "get_head_version")
        and callable(getattr(RDBStorage, name))
        and not isinstance(RDBStorage.__dict__.get(name), (staticmethod, classmethod))
        and (not name.startswith("_") or name == "_get_stale_trial_ids")
    }
    return type("ResilientRDBStorage", (RDBStorage,), methods)
