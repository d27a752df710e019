"""The same study round trip on SQLite and on a real PostgreSQL server, and clear errors."""

from __future__ import annotations

import os
from pathlib import Path

import optuna
import pytest
import sqlalchemy

from nas.cli import main
from tests.conftest import POSTGRES_ENV, TINY_SEARCH, start_worker, wait_for

pytestmark = pytest.mark.e2e  # real searches, processes or servers: the end-to-end tier


def test_search_resume_show_export_on_each_backend(
    capsys: pytest.CaptureFixture[str], storage_url: str
) -> None:
    search = ["search", "space=nasnet", *TINY_SEARCH, f"storage={storage_url}"]
    assert main([*search, "trials=2"]) == 0
    assert main([*search, "trials=3"]) == 0  # resumes: one more trial
    out = capsys.readouterr()
    study = optuna.load_study(study_name="nasnet-digits", storage=storage_url)
    assert [t.number for t in study.get_trials()] == [0, 1, 2]
    assert main(["show", "study=nasnet-digits", f"storage={storage_url}"]) == 0
    assert main(["export", "study=nasnet-digits", f"storage={storage_url}", "out=net.py"]) == 0
    shown = capsys.readouterr().out
    assert "Best" in shown and Path("net.py").is_file()
    password = sqlalchemy.engine.make_url(storage_url).password
    if password:
        assert password not in out.out + out.err + shown
    # A store without heartbeats-era tables, or a changed setting, still refuses clearly.
    assert main([*search, "trials=3", "epochs=5"]) == 2
    assert "pass study=NEW_NAME" in capsys.readouterr().err


def _postgres_admin() -> sqlalchemy.engine.URL:
    admin = os.environ.get(POSTGRES_ENV)
    if not admin:
        pytest.skip(f"no PostgreSQL server: set {POSTGRES_ENV}")
    return sqlalchemy.engine.make_url(admin)


def test_wrong_postgres_password_is_one_line_without_the_password(
    capsys: pytest.CaptureFixture[str],
) -> None:
    url = _postgres_admin().set(password="not-the-password-42")
    code = main(["studies", f"storage={url.render_as_string(hide_password=False)}"])
    err = capsys.readouterr().err
    assert code == 2 and err.count("\n") == 1, err
    assert "Cannot open storage" in err and "not-the-password-42" not in err
    assert "Traceback" not in err


def test_unreachable_server_is_one_line_error(capsys: pytest.CaptureFixture[str]) -> None:
    pytest.importorskip("psycopg2")
    code = main(["studies", "storage=postgresql+psycopg2://u:secret-pw@127.0.0.1:1/db"])
    err = capsys.readouterr().err
    assert code == 2 and err.count("\n") == 1 and "secret-pw" not in err, err
    assert "Cannot open storage postgresql+psycopg2://u:***@127.0.0.1:1/db" in err


@pytest.mark.timeout(300)
def test_a_worker_survives_a_database_outage(postgres_url: str, tmp_path: Path) -> None:
    import time

    from nas.config import compose_search
    from nas.search import prepare_study

    storage_url = postgres_url
    settings = ["space=nasnet", *TINY_SEARCH, "trials=2", "epochs=4", f"storage={storage_url}"]
    prepare_study(compose_search(settings))
    database = sqlalchemy.engine.make_url(storage_url).database
    admin = sqlalchemy.create_engine(os.environ[POSTGRES_ENV], isolation_level="AUTOCOMMIT")
    log = tmp_path / "worker.log"
    worker = start_worker(storage_url, log)
    wait_for(log, "trial 0 epoch 1/4", worker)
    with admin.connect() as connection:  # the database goes away for 5 seconds
        connection.execute(sqlalchemy.text(f'ALTER DATABASE "{database}" ALLOW_CONNECTIONS false'))
        connection.execute(
            sqlalchemy.text(
                "SELECT pg_terminate_backend(pid) FROM pg_stat_activity WHERE datname = :d"
            ),
            {"d": database},
        )
        time.sleep(5)
        connection.execute(sqlalchemy.text(f'ALTER DATABASE "{database}" ALLOW_CONNECTIONS true'))
    assert worker.wait(timeout=200) == 0, log.read_text()
    admin.dispose()
    output = log.read_text()
    assert "database unreachable" in output
    study = optuna.load_study(study_name="nasnet-digits", storage=storage_url)
    assert sorted(t.state.name for t in study.get_trials()) == ["COMPLETE"] * 2
