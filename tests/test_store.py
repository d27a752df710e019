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
