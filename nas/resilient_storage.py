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
    waiting 0.5 s, 1 s, 2 s ... (at most 15 s) in between (tenacity)."""
    import tenacity

    def warn(state: tenacity.RetryCallState) -> None:
        wait = state.next_action.sleep if state.next_action else 0.0
        _logger.warning("database unreachable (%s); retrying in %.1fs", method.__name__, wait)

    retry = tenacity.retry(
        retry=tenacity.retry_if_exception(is_connection_error),
        wait=tenacity.wait_exponential(multiplier=_FIRST_WAIT_S, max=_LONGEST_WAIT_S),
        stop=tenacity.stop_after_delay(patience),
        before_sleep=warn,
        reraise=True,
    )
    return cast(F, functools.wraps(method)(retry(method)))


def set_trial_user_attrs(
    storage: Any, trial_id: int, attrs: dict[str, Any], *, heartbeat: bool = False
) -> None:
    """Several user attributes of a trial (and, with ``heartbeat``, its first heartbeat)
    in one transaction: the trial looked up once, the attributes upserted in one
    statement, one commit; a cheap trial's cost is mostly such round trips."""
    import json

    from optuna.storages._rdb import models
    from optuna.storages._rdb.storage import _create_scoped_session

    attribute = models.TrialUserAttributeModel
    rows = [
        {"trial_id": trial_id, "key": key, "value_json": json.dumps(value)}
        for key, value in attrs.items()
    ]
    with _create_scoped_session(storage.scoped_session, True) as session:
        trial = models.TrialModel.find_or_raise_by_id(trial_id, session)
        storage.check_trial_is_updatable(trial_id, trial.state)
        if rows and _has_upsert(storage.engine.name):
            session.execute(_upsert(storage.engine.name, attribute, rows))
        else:  # another database: Optuna's own path, one statement per attribute
            for key, value in attrs.items():
                storage._set_trial_attr_without_commit(session, attribute, trial_id, key, value)
        if heartbeat and models.TrialHeartbeatModel.where_trial_id(trial_id, session) is None:
            session.add(models.TrialHeartbeatModel(trial_id=trial_id))


def _has_upsert(dialect: str) -> bool:
    import sqlite3

    return dialect in ("mysql", "postgresql") or (
        dialect == "sqlite" and sqlite3.sqlite_version_info >= (3, 24, 0)
    )


def _upsert(dialect: str, model: Any, rows: list[dict[str, Any]]) -> Any:
    """One INSERT ... ON CONFLICT (trial, key) UPDATE statement for ``rows``."""
    from sqlalchemy.dialects import mysql, postgresql, sqlite

    if dialect == "mysql":
        insert = mysql.insert(model).values(rows)
        return insert.on_duplicate_key_update(value_json=insert.inserted.value_json)
    insert_class = postgresql.insert if dialect == "postgresql" else sqlite.insert
    statement = insert_class(model).values(rows)
    return statement.on_conflict_do_update(
        index_elements=[model.trial_id, model.key],
        set_={"value_json": statement.excluded.value_json},
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
