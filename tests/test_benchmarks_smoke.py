"""The benchmarks still run: each one at toy size, checking the rows' shape, not speed."""

from __future__ import annotations

import importlib.util
from pathlib import Path
from types import ModuleType

import pytest

BENCHMARKS = Path(__file__).resolve().parent.parent / "benchmarks"


def _load(name: str) -> ModuleType:
    # benchmarks/ is a folder of scripts, not a package.
    spec = importlib.util.spec_from_file_location(f"benchmarks_{name}", BENCHMARKS / f"{name}.py")
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


@pytest.mark.timeout(60)
def test_store_overhead_runs(capsys: pytest.CaptureFixture[str]) -> None:
    rows = _load("store_overhead").main(["--trials", "3", "--epochs", "1", "--repeats", "1"])

    assert [row["variant"] for row in rows] == ["optuna", "nas", "nas+weights"]
    for row in rows:
        assert row["trials"] == 3
        assert row["total_s"] > 0 and row["ms_per_trial"] > 0 and row["ratio"] > 0
    assert rows[0]["ratio"] == 1.0
    assert "ms/trial" in capsys.readouterr().out


@pytest.mark.timeout(60)
def test_standalone_throughput_runs(capsys: pytest.CaptureFixture[str]) -> None:
    rows = _load("standalone_throughput").main(["--trials", "1", "--epochs", "1"])

    assert [row["variant"] for row in rows] == ["nas", "plain"]
    for row in rows:
        assert (row["trials"], row["epochs"]) == (1, 1)
        assert row["s_per_trial"] > 0 and row["images_per_s"] > 0 and row["ratio"] > 0
        assert 0.0 <= row["val_acc"] <= 1.0
    assert rows[1]["ratio"] == 1.0
    assert "nas/plain" in capsys.readouterr().out
