"""Shared fixtures: every test runs in its own working directory, so the default
SQLite store (nas-runs/nas.db) never leaks between tests."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
import uuid
from collections.abc import Iterator
from pathlib import Path

import pytest

# Small enough that a whole search of a few trials takes seconds on a CPU.
TINY_SEARCH = ["model.init_channels=4", "epochs=2", "trials=2", "train.batch_size=128"]


@pytest.fixture(autouse=True)
def _isolated_cwd(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    monkeypatch.chdir(tmp_path)
    return tmp_path


def default_sigint() -> None:
    signal.signal(signal.SIGINT, signal.SIG_DFL)


def interrupt_search(args: list[str], cwd: Path, *, after: str, wait: float = 180) -> str:
    """Run ``nas search ARGS``, press Ctrl-C once a log line contains ``after``; its stderr.

    The process must exit with 130 (interrupted) within a minute of the signal.
    """
    process = subprocess.Popen(
        [sys.executable, "-m", "nas", "search", *args],
        cwd=cwd,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        # A shell without job control starts background jobs with SIGINT ignored, and a
        # child inherits that: Ctrl-C must reach the search however the tests were started.
        preexec_fn=default_sigint,
    )
    assert process.stdout is not None
    deadline = time.monotonic() + wait
    for line in process.stdout:  # not a terminal: plain log lines
        if after in line or time.monotonic() > deadline:
            break
    process.send_signal(signal.SIGINT)
    _, err = process.communicate(timeout=60)
    assert process.returncode == 130, err
    return err


def start_worker(url: str, log: Path) -> subprocess.Popen[str]:
    """``nas worker study=nasnet-digits`` in a subprocess, the URL in its environment and
    its output in ``log``."""
    with log.open("w") as stream:
        return subprocess.Popen(
            [sys.executable, "-m", "nas", "worker", "study=nasnet-digits"],
            stdout=stream,
            stderr=subprocess.STDOUT,
            text=True,
            env={**os.environ, "OMP_NUM_THREADS": "1", "NAS_STORAGE": url},
        )


def wait_for(log: Path, text: str, process: subprocess.Popen[str], limit: float = 120) -> None:
    """Wait until ``text`` appears in ``log``; fail if ``process`` dies or time runs out."""
    deadline = time.monotonic() + limit
    while time.monotonic() < deadline:
        if log.exists() and text in log.read_text():
            return
        assert process.poll() is None, log.read_text()
        time.sleep(0.2)
    raise AssertionError(f"no '{text}' within {limit}s: {log.read_text()}")


# The admin URL of a PostgreSQL server whose role may create databases (.ci/postgres.sh
# prints one); without it the PostgreSQL variants skip, unless NAS_REQUIRE_POSTGRES=1
# (as in CI), where they fail instead.
POSTGRES_ENV = "NAS_TEST_POSTGRES_URL"


@pytest.fixture
def one_torch_thread() -> Iterator[None]:
    """Run single-threaded: small models gain little from threads, and two
    multi-threaded processes on a busy 2-core machine slow each other down tenfold.
    Modules use it with ``pytestmark = pytest.mark.usefixtures("one_torch_thread")``."""
    import torch

    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(threads)


@pytest.fixture(params=["sqlite", "postgresql"])
def storage_url(request: pytest.FixtureRequest) -> Iterator[str]:
    """A fresh, empty study store: an SQLite file, or a new PostgreSQL database."""
    if request.param == "sqlite":
        yield "sqlite:///nas-runs/nas.db"
    else:
        yield from _fresh_postgres_database()


@pytest.fixture
def postgres_url() -> Iterator[str]:
    """A new, empty PostgreSQL database (for what only a server can show)."""
    yield from _fresh_postgres_database()


def _fresh_postgres_database() -> Iterator[str]:
    admin = os.environ.get(POSTGRES_ENV)
    if not admin:
        if os.environ.get("NAS_REQUIRE_POSTGRES") == "1":
            pytest.fail(f"{POSTGRES_ENV} is not set but NAS_REQUIRE_POSTGRES=1")
        pytest.skip(f"no PostgreSQL server: set {POSTGRES_ENV} (see .ci/postgres.sh)")
    import sqlalchemy

    name = f"nas_test_{uuid.uuid4().hex[:12]}"
    engine = sqlalchemy.create_engine(admin, isolation_level="AUTOCOMMIT")
    with engine.connect() as connection:
        connection.execute(sqlalchemy.text(f'CREATE DATABASE "{name}"'))
    try:
        yield (
            sqlalchemy.engine.make_url(admin)
            .set(database=name)
            .render_as_string(hide_password=False)
        )
    finally:
        with engine.connect() as connection:
            connection.execute(sqlalchemy.text(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)'))
        engine.dispose()


# Scores an exported network (module NAME.py, weights NAME.safetensors in the working
# folder) on the digits' validation split, in a fresh interpreter.
_SCORE_EXPORT = """
import importlib, json, sys, torch
from safetensors.torch import load_file
from nas.data import load_dataset
sys.path.insert(0, ".")
name = sys.argv[1]
model = importlib.import_module(name).build_network()
model.load_state_dict(load_file(name + ".safetensors"), strict=True)
model.eval()
val = load_dataset("digits").val
images = torch.stack([val[i][0] for i in range(len(val))])
labels = torch.as_tensor([int(val[i][1]) for i in range(len(val))])
with torch.no_grad():
    print(json.dumps(int((model(images).argmax(1) == labels).sum()) / len(labels)))
"""


def exported_accuracy(name: str) -> float:
    """Validation accuracy of the exported ``name``.py / ``name``.safetensors on the
    digits, computed in a fresh interpreter."""
    import json

    scored = subprocess.run(
        [sys.executable, "-c", _SCORE_EXPORT, name],
        capture_output=True,
        text=True,
        check=True,
        timeout=600,
    )
    return float(json.loads(scored.stdout))
