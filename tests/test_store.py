"""The store's handling of untrusted values and URLs."""

from __future__ import annotations

import optuna
import pytest

from nas import store
from nas.core.errors import StudyError


def test_redact_hides_the_password() -> None:
    assert store.redact("postgresql://user:s3cret@db.example/nas") == (
        "postgresql://user:***@db.example/nas"
    )
    assert "s3cret" not in store.redact("not a url s3cret")
    assert "pw" not in store.redact("me:pw@nohost")
    assert store.redact("notaurl") == "notaurl"  # a mistyped word is shown as typed


def test_default_artifacts_live_next_to_the_sqlite_file() -> None:
    assert str(store.default_artifact_dir("sqlite:////data/x/nas.db")) == "/data/x/artifacts"
    assert store.default_artifact_dir("postgresql://h/db") == store.DEFAULT_HOME / "artifacts"


def _study_with(**attrs: object) -> optuna.Study:
    study = optuna.create_study()
    for key, value in attrs.items():
        study.set_user_attr(key, value)
    return study


@pytest.mark.parametrize(
    "spec",
    [
        None,
        "1x8x8",
        {"in_channels": 1, "num_classes": 10},
        {"in_channels": 1, "num_classes": 10, "image_size": "8"},
        {"in_channels": True, "num_classes": 10, "image_size": 8},
        {"in_channels": 1, "num_classes": 10, "image_size": 10**9},
        {"in_channels": 1, "num_classes": 10, "image_size": 8, "code": "os.system"},
    ],
)
def test_malformed_data_spec_is_refused(spec: object) -> None:
    with pytest.raises(StudyError):
        store.read_data_spec(_study_with(**{store.ATTR_DATA_SPEC: spec}))


@pytest.mark.parametrize(
    ("space", "identity"),
    [
        ("nope", {"model": {}}),
        (["nasnet"], {"model": {}}),
        ("nasnet", {"model": "cells_per_stage=1"}),
        ("nasnet", None),
        ("nasnet", {"model": {"cells_per_stage": -1}}),
        ("nasnet", {"model": {"__class__": 1}}),
    ],
)
def test_malformed_space_is_refused(space: object, identity: object) -> None:
    study = _study_with(**{store.ATTR_SPACE: space, store.ATTR_IDENTITY: identity})
    with pytest.raises(StudyError):
        store.read_space(study)


def test_unknown_study_suggests_close_match() -> None:
    storage = optuna.storages.RDBStorage("sqlite:///s.db")
    optuna.create_study(study_name="nasnet-digits", storage=storage)
    with pytest.raises(StudyError, match="Did you mean 'nasnet-digits'"):
        store.load_study(storage, "nasnet-digit")
    assert store.load_study(storage, None).study_name == "nasnet-digits"  # the only one


def test_a_bare_postgresql_url_uses_the_driver_the_extra_installs(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    import importlib.util

    real = importlib.util.find_spec
    installed = {"psycopg2"}  # as after pip install 'nas[postgres]'
    monkeypatch.setattr(
        importlib.util,
        "find_spec",
        lambda name, *a: real(name, *a) if name in installed else None,
    )
    url = "postgresql://nas:p%40ss@db.example:5432/studies"
    assert store.with_installed_driver(url) == (
        "postgresql+psycopg2://nas:p%40ss@db.example:5432/studies"
    )
    assert store.with_installed_driver("postgresql+psycopg://u@h/db") == (
        "postgresql+psycopg://u@h/db"  # a driver named is kept, installed or not
    )
    installed.clear()
    with pytest.raises(StudyError) as caught:
        store.open_storage(url)
    message = str(caught.value)
    assert "needs a postgresql driver (psycopg or psycopg2)" in message
    assert "pip install 'nas[postgres]'" in message and "p%40ss" not in message
    with pytest.raises(StudyError, match=r"needs a mysql driver .* pip install pymysql"):
        store.open_storage("mysql://u@h/db")


def test_a_bare_postgresql_url_opens_a_real_server(postgres_url: str) -> None:
    from sqlalchemy.engine import make_url

    bare = make_url(postgres_url).set(drivername="postgresql")
    storage = store.open_storage(bare.render_as_string(hide_password=False))
    optuna.create_study(study_name="bare", storage=storage)
    assert store.study_names(storage) == ["bare"]
