"""The study store: Optuna's RDB storage (SQLAlchemy), the single source of truth.

What ``nas`` keeps beyond Optuna's own columns:

* study user attributes ``nas.space``, ``nas.identity`` (the settings a study cannot
  change without becoming a different experiment), ``nas.config`` (the resolved config
  of the run that created it) and ``nas.data_spec``;
* trial user attributes ``arch`` (encoded architecture), ``arch_str``, ``seed``,
  ``curve`` (validation accuracy per epoch), ``params``, ``flops``, and ``error`` or
  ``interrupted`` for failed trials. Trained weights are Optuna artifacts.

Everything read back from the store is untrusted and validated before use.
"""

from __future__ import annotations

import functools
import itertools
import json
import re
import warnings
from collections.abc import Iterator, Mapping, Sequence
from contextlib import contextmanager
from pathlib import Path
from typing import TYPE_CHECKING, Any

from nas.core.errors import (
    ArchitectureError,
    ConfigError,
    StudyError,
    close_match_hint,
    first_line,
)
from nas.core.files import file_in_the_way

if TYPE_CHECKING:
    import optuna

    from nas.core.dataspec import DataSpec
    from search_spaces.base import SearchSpace

DEFAULT_HOME = Path("nas-runs")
ATTR_SPACE = "nas.space"
ATTR_IDENTITY = "nas.identity"
ATTR_CONFIG = "nas.config"
ATTR_DATA_SPEC = "nas.data_spec"
ATTR_TRIALS = (
    "nas.trials"  # the latest requested total of finished trials (joining workers' budget)
)
SQLITE_BUSY_TIMEOUT_S = 60  # how long a writer waits for SQLite's lock
HEARTBEAT_INTERVAL_S = 10  # a running trial's worker proves it is alive this often
GRACE_PERIOD_S = 60  # silence after which a running trial counts as dead
MAX_RETRIES = 3  # re-runs of a trial whose worker died


def default_storage_url() -> str:
    return f"sqlite:///{DEFAULT_HOME / 'nas.db'}"


_PLAIN_WORD = re.compile(r"[A-Za-z0-9_./+-]{1,200}")


def redact(url: str) -> str:
    """The URL with its password hidden, safe to print or log."""
    from sqlalchemy.engine import make_url
    from sqlalchemy.exc import ArgumentError

    try:
        return make_url(url).render_as_string(hide_password=True)
    except ArgumentError:
        # Not a URL: shown as typed when it is one plain word (a mistyped name or path),
        # hidden when it has the separators a password could hide between.
        return url if _PLAIN_WORD.fullmatch(url) else "<unparseable storage URL>"


@functools.cache
def sqlite_path(url: str) -> Path | None:
    """The database file of a SQLite URL, or None for other backends / in-memory."""
    from sqlalchemy.engine import make_url

    parsed = make_url(url)
    if (
        parsed.get_backend_name() != "sqlite"
        or not parsed.database
        or parsed.database == ":memory:"
    ):
        return None
    return Path(parsed.database)


def default_artifact_dir(url: str) -> Path:
    """Next to the SQLite file, so that one folder holds a whole experiment."""
    db_file = sqlite_path(url)
    return (db_file.parent if db_file is not None else DEFAULT_HOME) / "artifacts"


def open_storage(
    url: str | None,
    *,
    heartbeat_interval: int = HEARTBEAT_INTERVAL_S,
    grace_period: int = GRACE_PERIOD_S,
    must_exist: bool = False,
) -> optuna.storages.RDBStorage:
    """Connect to (and if needed create) the RDB storage at ``url``.

    ``must_exist``: the commands that read a store (show, studies, export, plot, a
    joining worker) never create one; a missing store is a one-line ``StudyError``. A
    database that exists but holds no Optuna store (another application's) is refused
    at once, before anything is written to it, whoever opens it.
    """
    import optuna
    from sqlalchemy.engine import make_url
    from sqlalchemy.exc import ArgumentError, SQLAlchemyError

    url = url or default_storage_url()
    try:
        make_url(url)
    except ArgumentError:
        raise StudyError(
            f"storage={redact(url)!r} is not a SQLAlchemy URL. "
            "Examples: sqlite:///nas-runs/nas.db, postgresql://user@host/db."
        ) from None
    url = with_installed_driver(url)
    db_file = sqlite_path(url)
    if db_file is not None and must_exist and not db_file.is_file():
        raise StudyError(
            f"No study store at {db_file}: run `nas search` first, or pass the storage= "
            "of an existing store."
        )
    if db_file is None or db_file.is_file():
        _check_optuna_schema(url, must_exist=must_exist)
    if db_file is not None:
        _make_folder(db_file.parent, url)
        _use_write_ahead_log(db_file)
    # SQLite: wait for a lock instead of failing at once when another process writes.
    # Servers: test each pooled connection before use, so one the server dropped (a
    # restart, an idle timeout) is replaced instead of failing the next call.
    engine_kwargs: dict[str, Any] = (
        {"connect_args": {"timeout": SQLITE_BUSY_TIMEOUT_S}} if db_file else {"pool_pre_ping": True}
    )
    try:
        with warnings.catch_warnings():
            # Heartbeats and their retry callback are marked experimental by Optuna.
            warnings.simplefilter("ignore", optuna.exceptions.ExperimentalWarning)
            return _rdb_storage(url, engine_kwargs, heartbeat_interval, grace_period)
    except (SQLAlchemyError, ImportError, RuntimeError, ValueError) as error:
        raise StudyError(f"Cannot open storage {redact(url)}: {first_line(error)}") from None


# For a URL that names no driver: the modules that can serve it, SQLAlchemy's default
# first, and the pip command that installs one.
_DRIVERS = {
    "postgresql": (
        (("psycopg", "psycopg"), ("psycopg2", "psycopg2")),
        "pip install 'nas[postgres]'",
    ),
    "mysql": ((("mysqldb", "MySQLdb"), ("pymysql", "pymysql")), "pip install pymysql"),
}


def with_installed_driver(url: str) -> str:
    """``url`` with a driver this environment has, where it names none.

    SQLAlchemy picks one default driver per database (psycopg 3 for ``postgresql://``
    since 2.1, mysqlclient for ``mysql://``), so a bare URL fails where only another one
    is installed (the ``postgres`` extra installs psycopg2). The URL keeps its scheme when
    the default is there; a missing one, with no other, is a one-line ``StudyError``.
    """
    import importlib.util

    from sqlalchemy.engine import make_url

    parsed = make_url(url)
    backend, named = parsed.get_backend_name(), "+" in parsed.drivername
    if named or backend not in _DRIVERS:
        return url
    drivers, install = _DRIVERS[backend]
    for index, (driver, module) in enumerate(drivers):
        if importlib.util.find_spec(module) is not None:
            if index == 0:
                return url
            chosen = parsed.set(drivername=f"{backend}+{driver}")
            return chosen.render_as_string(hide_password=False)
    modules = " or ".join(module for _, module in drivers)
    raise StudyError(
        f"storage={redact(url)} needs a {backend} driver ({modules}), and none is "
        f"installed: {install}."
    )


def _rdb_storage(
    url: str, engine_kwargs: dict[str, Any], heartbeat_interval: int, grace_period: int
) -> optuna.storages.RDBStorage:
    import optuna

    from nas.resilient_storage import resilient_rdb_storage_class

    return resilient_rdb_storage_class()(
        url,
        engine_kwargs=engine_kwargs,
        # A worker records a heartbeat for its running trial; a trial whose worker
        # died (SIGKILL, lost machine) is failed after the grace period and queued
        # again with the same architecture, seed and reported curve.
        heartbeat_interval=heartbeat_interval,
        grace_period=grace_period,
        heartbeat_stale_trial_callback=optuna.storages.RetryHeartbeatStaleTrialCallback(
            max_retry=MAX_RETRIES, inherit_intermediate_values=True
        ),
    )


@contextmanager
def ask_lock(url: str) -> Iterator[None]:
    """Held around ``study.ask()``: one local worker at a time takes a queued trial.

    Optuna claims a queued (WAITING) trial with a read and then a write; PostgreSQL
    and MySQL lock the row in between, but Python's sqlite3 driver does not open a
    transaction for the read, so two workers on one SQLite file could both claim the
    same retry. SQLite stores are local files, so a file lock beside the database
    serialises the claims of every worker that shares it.
    """
    db_file = sqlite_path(url)
    if db_file is None:
        yield
        return
    import fcntl

    with open(db_file.with_name(db_file.name + ".ask-lock"), "a") as handle:
        fcntl.flock(handle, fcntl.LOCK_EX)
        try:
            yield
        finally:
            fcntl.flock(handle, fcntl.LOCK_UN)


def _make_folder(folder: Path, url: str) -> None:
    """Create the SQLite file's folder; a one-line error when the path cannot hold one
    (a parent that is a file, a read-only or virtual file system)."""
    try:
        folder.mkdir(parents=True, exist_ok=True)
    except OSError as error:
        blocking = file_in_the_way(folder)
        reason = f"{blocking} is a file" if blocking else error.strerror or type(error).__name__
        raise StudyError(
            f"Cannot create the folder {folder} for storage={redact(url)} ({reason}); "
            "point storage= at a writable path, e.g. sqlite:///nas-runs/nas.db."
        ) from None


# Tables every Optuna store has; a database with none of them is a new, empty store.
_OPTUNA_TABLES = frozenset({"studies", "trials", "version_info"})


def _check_optuna_schema(url: str, *, must_exist: bool) -> None:
    """A one-line ``StudyError`` unless the database at ``url`` is empty (where it may
    be created) or holds Optuna's tables; nothing is written."""
    import sqlalchemy
    from sqlalchemy.exc import SQLAlchemyError

    try:
        engine = sqlalchemy.create_engine(url)
        try:
            tables = set(sqlalchemy.inspect(engine).get_table_names())
        finally:
            engine.dispose()
    except (SQLAlchemyError, ImportError) as error:
        if sqlite_path(url) is None:
            return  # a server that does not answer: open_storage's own retries say so
        raise StudyError(f"Cannot read the store {redact(url)}: {first_line(error)}") from None
    if tables >= _OPTUNA_TABLES:
        return
    if tables:
        raise StudyError(
            f"{redact(url)} is a database but not an Optuna study store (its tables: "
            f"{', '.join(sorted(tables)[:5])}); pass the storage= of a nas store, or a new file."
        )
    if must_exist:
        raise StudyError(
            f"{redact(url)} holds no study store yet: run `nas search` first, or pass the "
            "storage= of an existing store."
        )


def _use_write_ahead_log(db_file: Path) -> None:
    """Switch an SQLite file to WAL: readers no longer block the writer, so several
    local workers share one file. The mode is stored in the file; it needs a local
    disk (not NFS), which is where SQLite belongs anyway."""
    import contextlib
    import sqlite3

    try:
        with contextlib.closing(sqlite3.connect(db_file, timeout=SQLITE_BUSY_TIMEOUT_S)) as db:
            db.execute("PRAGMA journal_mode=WAL")
    except sqlite3.Error as error:
        raise StudyError(f"Cannot open the SQLite store {db_file}: {error}") from None


def backend(storage: Any) -> Any:
    """The RDB storage itself, under the cache Optuna puts in front of it in a study."""
    return getattr(storage, "_backend", storage)


def write_trial_attrs(
    trial: optuna.Trial, attrs: Mapping[str, Any], *, heartbeat: bool = False
) -> None:
    """Store several user attributes of a running trial at once (one commit on nas's own
    storage; one per attribute on any other), plus its first heartbeat if asked."""
    if not attrs and not heartbeat:
        return
    storage = backend(trial.storage)
    batch = getattr(storage, "set_trial_user_attrs", None)
    if batch is not None and _has_upsert(storage.engine.name):
        batch(trial._trial_id, dict(attrs), heartbeat=heartbeat)
        trial._cached_frozen_trial.user_attrs.update(attrs)  # as trial.set_user_attr does
        return
    for key, value in attrs.items():
        trial.set_user_attr(key, value)
    if heartbeat and hasattr(storage, "record_heartbeat"):
        storage.record_heartbeat(trial._trial_id)


def tell(
    study: optuna.Study,
    trial: optuna.Trial,
    values: Sequence[float] | None = None,
    state: optuna.trial.TrialState | None = None,
) -> None:
    """``study.tell`` without reading the finished trial back: Optuna's public ``tell``
    returns a deep copy of it, one more database read per trial that nas never uses
    (``study.optimize`` calls the same internal function)."""
    try:
        from optuna.study._tell import _tell_with_warning
    except ImportError:  # another Optuna version: the public path
        study.tell(trial, values, state=state)
        return
    _tell_with_warning(study=study, trial=trial, value_or_values=values, state=state)


def _has_upsert(dialect: str) -> bool:
    """Whether the database has the INSERT-or-UPDATE that one-commit batches use."""
    import sqlite3

    return dialect in ("mysql", "postgresql") or (
        dialect == "sqlite" and sqlite3.sqlite_version_info >= (3, 24, 0)
    )


class Heartbeat:
    """One worker's heartbeat thread: records a heartbeat for the trial it runs now.

    Optuna's ``study.optimize`` does this itself; the ask/tell loop of ``nas`` must. One
    thread lives as long as the worker's loop (a thread per trial would cost a trial that
    costs nothing a start and a join). A heartbeat that fails (the database is away for
    a while) is retried at the next beat: the trial counts as dead only after the grace
    period of silence. No beat is recorded for a trial once ``watch`` has left it.
    """

    def __init__(self, study: optuna.Study) -> None:
        import threading

        self._storage: Any = study._storage  # Optuna exposes no public handle to it
        interval = getattr(self._storage, "get_heartbeat_interval", lambda: None)()
        self._interval: float = interval or 0
        self._changed = threading.Condition()  # held while a beat is written, too
        self._trial_id: int | None = None
        self._due = 0.0
        self._closed = False
        self._thread = threading.Thread(target=self._run, name="nas-heartbeat", daemon=True)

    @contextmanager
    def watch(self, trial: optuna.Trial, *, first_beat: bool = True) -> Iterator[None]:
        """Beat for ``trial`` while inside. With ``first_beat=False`` the first beat
        waits one interval: the caller records it with the trial's first attributes
        (``write_trial_attrs(..., heartbeat=True)``)."""
        import time

        if not self._interval:
            yield
            return
        with self._changed:
            self._trial_id = trial._trial_id
            self._due = time.monotonic() + (0 if first_beat else self._interval)
            self._changed.notify()
        if not self._thread.is_alive():
            self._thread.start()
        try:
            yield
        finally:
            with self._changed:  # waits for a beat being written
                self._trial_id = None

    def _run(self) -> None:
        import time

        with self._changed:
            while not self._closed:
                trial_id = self._trial_id
                wait = None if trial_id is None else self._due - time.monotonic()
                if trial_id is None or (wait is not None and wait > 0):
                    self._changed.wait(wait)
                    continue
                self._due = time.monotonic() + self._interval
                self._beat(trial_id)

    def _beat(self, trial_id: int) -> None:
        import contextlib

        from sqlalchemy.exc import SQLAlchemyError

        # A failed beat is retried at the next one; the grace period covers outages.
        with contextlib.suppress(SQLAlchemyError):
            self._storage.record_heartbeat(trial_id)

    def __enter__(self) -> Heartbeat:
        return self

    def __exit__(self, *exc: object) -> None:
        with self._changed:
            self._closed = True
            self._changed.notify()
        if self._thread.is_alive():
            self._thread.join()


def study_names(storage: optuna.storages.BaseStorage) -> list[str]:
    return [s.study_name for s in storage.get_all_studies()]


def load_study(storage: optuna.storages.BaseStorage, name: str | None) -> optuna.Study:
    """An existing study; ``StudyError`` naming the studies that do exist otherwise."""
    import optuna

    names = study_names(storage)
    if name is None:
        if len(names) == 1:
            name = names[0]
        else:
            raise StudyError(
                f"Pass study=NAME. The store holds: {', '.join(names) or 'no studies'}."
            )
    if name not in names:
        raise StudyError(
            f"No study '{name}' in the store. It holds: {', '.join(names) or 'no studies'}."
            + close_match_hint(name, names)
        )
    study = optuna.load_study(study_name=name, storage=storage)
    check_trials_readable(study, storage)
    return study


# What Optuna raises while decoding a stored parameter outside its distribution, e.g.
# a categorical index past the choices (IndexError) or a malformed distribution.
_DECODING_ERRORS = (IndexError, KeyError, TypeError, ValueError)


def check_trials_readable(study: optuna.Study, storage: optuna.storages.BaseStorage) -> None:
    """A one-line ``StudyError`` naming the first trial that Optuna cannot decode (a value
    edited out of its distribution), instead of Optuna's traceback at every later read."""
    try:
        study.get_trials(deepcopy=False)
    except _DECODING_ERRORS as error:
        number = _first_undecodable_trial(backend(storage), study.study_name)
        which = f"Trial {number}" if number is not None else "A trial"
        reason = str(error) or type(error).__name__
        raise StudyError(
            f"{which} of study '{study.study_name}' holds a value Optuna cannot decode "
            f"({reason}): the store was edited or damaged; restore it from a backup "
            "(nothing was changed)."
        ) from None


def _first_undecodable_trial(rdb: Any, study_name: str) -> int | None:
    """The number of the first trial Optuna fails to decode, read one by one (counting
    the trials would decode them all)."""
    study_id = rdb.get_study_id_from_name(study_name)
    for number in itertools.count():
        try:
            trial_id = rdb.get_trial_id_from_study_id_trial_number(study_id, number)
        except KeyError:  # past the last trial
            return None
        try:
            rdb.get_trial(trial_id)
        except _DECODING_ERRORS:
            return number
    return None  # unreachable: count() never ends


def _differences(
    stored: Mapping[str, Any], wanted: Mapping[str, Any], prefix: str = ""
) -> list[str]:
    diffs: list[str] = []
    for key in sorted(set(stored) | set(wanted)):
        a, b = stored.get(key), wanted.get(key)
        if isinstance(a, Mapping) and isinstance(b, Mapping):
            diffs += _differences(a, b, f"{prefix}{key}.")
        elif json.dumps(a, sort_keys=True) != json.dumps(b, sort_keys=True):
            diffs.append(f"{prefix}{key}={json.dumps(a)} (asked {json.dumps(b)})")
    return diffs


def check_compatible(study: optuna.Study, identity: Mapping[str, Any]) -> None:
    """``StudyError`` if the stored study was made with other defining settings."""
    stored = study.user_attrs.get(ATTR_IDENTITY)
    if not isinstance(stored, Mapping):
        raise StudyError(
            f"Study '{study.study_name}' was not created by nas (no {ATTR_IDENTITY} attribute). "
            "Pass study=NEW_NAME to start a new study."
        )
    diffs = _differences(stored, identity)
    if diffs:
        raise StudyError(
            f"Study '{study.study_name}' was created with {'; '.join(diffs)}. "
            "Drop those overrides to resume it, or pass study=NEW_NAME to start a new study."
        )


def read_data_spec(study: optuna.Study) -> DataSpec:
    """The stored input description of a study, validated."""
    from nas.core.dataspec import DataSpec

    raw = study.user_attrs.get(ATTR_DATA_SPEC)
    fields = ("in_channels", "num_classes", "image_size")
    limits = {"in_channels": 64, "num_classes": 100_000, "image_size": 4096}
    if not isinstance(raw, Mapping) or set(raw) != set(fields):
        raise StudyError(f"Study '{study.study_name}' has a malformed {ATTR_DATA_SPEC} attribute.")
    for key in fields:
        value = raw[key]
        if type(value) is not int or not 1 <= value <= limits[key]:
            raise StudyError(
                f"Study '{study.study_name}' stores {key}={value!r}; expected an int in "
                f"[1, {limits[key]}]."
            )
    return DataSpec(**{key: raw[key] for key in fields})


def read_space(study: optuna.Study) -> SearchSpace[Any]:
    """Rebuild the study's search space from its stored (validated) settings."""
    from search_spaces import create_space

    name = study.user_attrs.get(ATTR_SPACE)
    identity = study.user_attrs.get(ATTR_IDENTITY)
    options = identity.get("model") if isinstance(identity, Mapping) else None
    if not isinstance(name, str) or not isinstance(options, Mapping):
        raise StudyError(f"Study '{study.study_name}' has a malformed space={name!r} record.")
    if not all(isinstance(k, str) for k in options):
        raise StudyError(f"Study '{study.study_name}' has malformed model settings.")
    try:
        return create_space(name, **dict(options))
    except ConfigError as error:
        raise StudyError(f"Study '{study.study_name}' stores space={name!r}: {error}") from None


def read_architecture(space: SearchSpace[Any], trial: optuna.trial.FrozenTrial) -> Any:
    """The trial's architecture, decoded and validated (it is untrusted input)."""
    if "arch" not in trial.user_attrs:
        raise StudyError(f"Trial {trial.number} has no stored architecture.")
    try:
        return space.decode(trial.user_attrs["arch"])
    except ArchitectureError as error:
        raise StudyError(f"Trial {trial.number} stores an invalid architecture: {error}") from None


def violation(trial: optuna.trial.FrozenTrial) -> float:
    """How far a trial is from its budgets (``constraint`` attribute; 0 when all are met).

    The attribute is untrusted: anything but a list of numbers counts as infeasible.
    """
    values = trial.user_attrs.get("constraint", [])
    if not isinstance(values, list) or not all(
        isinstance(v, (int, float)) and not isinstance(v, bool) for v in values
    ):
        return float("inf")
    return float(sum(max(0.0, float(v)) for v in values))
