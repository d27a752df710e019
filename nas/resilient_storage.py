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
from collections.abc import Callable
from typing import Any, TypeVar, cast

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
    """``method`` retried on connection errors until ``patience`` seconds have passed,
    waiting 0.5 s, 1 s, 2 s ... (at most 15 s) in between (tenacity). The first attempt
    runs outside tenacity: it is most of the calls, and tenacity's bookkeeping per call
    would be a noticeable part of a cheap trial."""
    import tenacity

    def warn(state: tenacity.RetryCallState) -> None:
        wait = state.next_action.sleep if state.next_action else 0.0
        _logger.warning("database unreachable (%s); retrying in %.1fs", method.__name__, wait)

    retried = tenacity.retry(
        retry=tenacity.retry_if_exception(is_connection_error),
        wait=tenacity.wait_exponential(multiplier=_FIRST_WAIT_S, max=_LONGEST_WAIT_S),
        stop=tenacity.stop_after_delay(patience),
        before_sleep=warn,
        reraise=True,
    )(method)

    @functools.wraps(method)
    def call(*args: Any, **kwargs: Any) -> Any:
        try:
            return method(*args, **kwargs)
        except Exception as error:
            if not is_connection_error(error):
                raise
            _logger.warning("database unreachable (%s); retrying", method.__name__)
        return retried(*args, **kwargs)

    return cast(F, call)


def set_trial_user_attrs(
    storage: Any, trial_id: int, attrs: dict[str, Any], *, heartbeat: bool = False
) -> None:
    """Several user attributes of a running trial (and, with ``heartbeat``, its first
    heartbeat) in one transaction: one state check, one upsert of every attribute, one
    commit; a cheap trial's cost is mostly such round trips.

    Raises:
        optuna.exceptions.UpdateFinishedTrialError: The trial is already finished.
    """
    import json

    import sqlalchemy
    from optuna.exceptions import UpdateFinishedTrialError
    from optuna.storages._rdb.storage import _create_scoped_session

    rows = [
        {"trial_id": trial_id, "key": key, "value_json": json.dumps(value)}
        for key, value in attrs.items()
    ]
    dialect = storage.engine.name
    with _create_scoped_session(storage.scoped_session, True) as session:
        state = session.execute(
            sqlalchemy.text("SELECT state FROM trials WHERE trial_id = :trial_id"),
            {"trial_id": trial_id},
        ).scalar_one()
        if state not in ("RUNNING", "WAITING"):
            raise UpdateFinishedTrialError(f"Trial {trial_id} has already finished.")
        if rows:
            session.execute(sqlalchemy.text(_upsert(dialect)), rows)
        if heartbeat:  # unless the heartbeat thread was first
            session.execute(sqlalchemy.text(_first_heartbeat(dialect)), {"trial_id": trial_id})


def _first_heartbeat(dialect: str) -> str:
    """A trial's heartbeat row with the database's time, unless it has one already."""
    if dialect == "mysql":
        return (
            "INSERT IGNORE INTO trial_heartbeats (trial_id, heartbeat) "
            "VALUES (:trial_id, CURRENT_TIMESTAMP)"
        )
    return (
        "INSERT INTO trial_heartbeats (trial_id, heartbeat) VALUES (:trial_id, CURRENT_TIMESTAMP) "
        "ON CONFLICT (trial_id) DO NOTHING"
    )


def _upsert(dialect: str) -> str:
    """INSERT-or-UPDATE of a trial's user attribute: one fixed statement, compiled once."""
    insert = "INSERT INTO trial_user_attributes (trial_id, key, value_json) VALUES "
    if dialect == "mysql":
        return insert + (
            "(:trial_id, :key, :value_json) AS new "
            "ON DUPLICATE KEY UPDATE value_json = new.value_json"
        )
    # SQLite (3.24 and newer) and PostgreSQL.
    return insert + (
        "(:trial_id, :key, :value_json) ON CONFLICT (trial_id, key) "
        "DO UPDATE SET value_json = excluded.value_json"
    )


def count_trials(storage: Any, study_id: int, *, below_number: int | None = None) -> dict[str, int]:
    """Trials of a study by state name, counted by the database (no trial is loaded).

    With ``below_number``, unfinished trials (RUNNING, WAITING) count only if their number
    is smaller: the trials ahead of trial ``below_number`` in the queue.
    """
    import sqlalchemy
    from optuna.storages._rdb import models
    from optuna.storages._rdb.storage import _create_scoped_session
    from optuna.trial import TrialState

    trial = models.TrialModel
    with _create_scoped_session(storage.scoped_session) as session:
        query = session.query(trial.state, sqlalchemy.func.count(trial.trial_id)).filter(
            trial.study_id == study_id
        )
        if below_number is not None:
            finished = [TrialState.COMPLETE, TrialState.PRUNED, TrialState.FAIL]
            query = query.filter(
                sqlalchemy.or_(trial.state.in_(finished), trial.number < below_number)
            )
        return {state.name: int(n) for state, n in query.group_by(trial.state).all()}


@functools.cache
def resilient_rdb_storage_class() -> type:
    """``RDBStorage`` with every public call retried (built lazily: optuna loads slowly),
    ``set_trial_user_attrs`` for several attributes in one commit and ``count_trials``.

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
    methods["set_trial_user_attrs"] = retrying(set_trial_user_attrs)
    methods["count_trials"] = retrying(count_trials)
    return type("ResilientRDBStorage", (RDBStorage,), methods)
