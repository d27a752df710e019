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


@pytest.mark.timeout(60)
def test_bignas_training_step_runs(capsys: pytest.CaptureFixture[str]) -> None:
    rows = _load("bignas_training_step").main(["--steps", "2", "--warmup", "1"])

    assert [row["variant"] for row in rows] == ["largest", "smallest", "sandwich"]
    assert [row["children"] for row in rows] == [1, 1, 4]
    for row in rows:
        assert row["supernet_ms"] > 0 and row["static_ms"] > 0 and row["ratio"] > 0
    assert [row["target"] for row in rows] == [1.03, 1.10, None]
    assert isinstance(rows[0]["passed"], bool) and rows[2]["passed"] is None
    assert "supernet ms" in capsys.readouterr().out


@pytest.mark.timeout(60)
def test_bignas_ranking_runs(capsys: pytest.CaptureFixture[str]) -> None:
    rows = _load("bignas_ranking").main(
        ["--children", "3", "--supernet-epochs", "1", "--epochs-alone", "1"]
    )

    *children, summary = rows
    assert [row["child"] for row in children] == ["smallest", "largest", "random-1"]
    assert len({row["arch"] for row in children}) == 3
    for row in children:
        assert row["flops"] > 0 and row["alone_s"] > 0
        assert 0.0 <= row["inherited_acc"] <= 1.0 and 0.0 <= row["alone_acc"] <= 1.0
    assert children[0]["flops"] < children[2]["flops"] < children[1]["flops"]
    assert summary["child"] == "summary"
    assert (summary["supernet_epochs"], summary["epochs_alone"]) == (1, 1)
    assert summary["supernet_s"] > 0 and summary["cost_ratio"] > 0
    assert summary["biggest_gap"] == summary["biggest_inherited"] - summary["biggest_alone"]
    assert "Kendall tau-b" in capsys.readouterr().out


@pytest.mark.timeout(60)
def test_lcpfn_speed_runs(capsys: pytest.CaptureFixture[str]) -> None:
    rows = _load("lcpfn_speed").main(["--curves", "10", "--repeats", "1", "--sizes", "small"])

    assert [row["size"] for row in rows] == ["small"]
    row = rows[0]
    assert row["curves"] == 10 and row["params"] > 0
    assert row["seconds"] > 0 and row["curves_per_s"] > 0
    assert row["target_s"] == 0.01 and isinstance(row["passed"], bool)
    assert "curves/s" in capsys.readouterr().out
