"""Shared fixtures: every test runs in its own working directory, so the default
SQLite store (nas-runs/nas.db) never leaks between tests."""

from __future__ import annotations

from pathlib import Path

import pytest

# Small enough that a whole search of a few trials takes seconds on a CPU.
TINY_SEARCH = ["model.init_channels=4", "epochs=2", "trials=2", "train.batch_size=128"]


@pytest.fixture(autouse=True)
def _isolated_cwd(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    monkeypatch.chdir(tmp_path)
    return tmp_path
