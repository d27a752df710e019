"""Shared fixtures: every test runs in its own working directory, so the default
SQLite store (nas-runs/nas.db) never leaks between tests."""

from __future__ import annotations

import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

# Small enough that a whole search of a few trials takes seconds on a CPU.
TINY_SEARCH = ["model.init_channels=4", "epochs=2", "trials=2", "train.batch_size=128"]


@pytest.fixture(autouse=True)
def _isolated_cwd(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    monkeypatch.chdir(tmp_path)
    return tmp_path


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
