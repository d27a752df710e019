"""backend=ray: Ray Tune runs the trials, the SQL study holds them, nas show reads them."""

from __future__ import annotations

import os
import subprocess
import sys

import optuna
import pytest
import sqlalchemy

from tests.conftest import TINY_SEARCH

pytestmark = pytest.mark.e2e  # real searches, processes or servers: the end-to-end tier

pytest.importorskip("ray.tune")


def _nas(*args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "nas", *args],
        capture_output=True,
        text=True,
        timeout=400,
        env={**os.environ, "OMP_NUM_THREADS": "1"},
    )


@pytest.mark.timeout(450)
def test_ray_backend_fills_the_sql_study(postgres_url: str) -> None:
    # A server store, as Ray's workers on other machines need (SQLite with Ray runs in
    # benchmarks/ray_backend_overhead.py's smoke test).
    storage_url = postgres_url
    search = ["search", "space=nasnet", *TINY_SEARCH, f"storage={storage_url}", "backend=ray"]
    run = _nas(*search, "trials=3", "epochs=2", "ray_scheduler=asha")
    assert run.returncode == 0, run.stderr[-3000:]
    study = optuna.load_study(study_name="nasnet-digits", storage=storage_url)
    states = [t.state.name for t in study.get_trials()]
    assert len(states) == 3 and set(states) <= {"COMPLETE", "PRUNED"}, states
    assert "COMPLETE" in states
    for trial in study.get_trials():
        assert trial.user_attrs["arch"] and trial.user_attrs["curve"]
    password = sqlalchemy.engine.make_url(storage_url).password
    if password:
        assert password not in run.stdout + run.stderr

    shown = _nas("show", "study=nasnet-digits", f"storage={storage_url}")
    assert shown.returncode == 0 and "Best" in shown.stdout, shown.stderr
    # The same study resumes locally: one more trial, numbered after Ray's.
    more = _nas(*search[:-1], "trials=4", "epochs=2")
    assert more.returncode == 0, more.stderr[-3000:]
    study = optuna.load_study(study_name="nasnet-digits", storage=storage_url)
    assert [t.number for t in study.get_trials()] == [0, 1, 2, 3]
