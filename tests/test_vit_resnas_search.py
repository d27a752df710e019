"""`nas search space=vit_resnas`: the supernet trained once with multi-architectural
sampling, children searched by evolution, the search resumed, the best child exported."""

from __future__ import annotations

from pathlib import Path

import optuna
import pytest

from nas.artifacts import checkpoint_path as supernet_checkpoint_path
from nas.cli import main
from tests.conftest import exported_accuracy

pytestmark = pytest.mark.e2e  # real searches, processes or servers: the end-to-end tier

DB = Path("nas-runs/nas.db")
ARTIFACTS = Path("nas-runs/artifacts")
TINY_VIT = [
    "space=vit_resnas",
    "supernet.epochs=2",
    "supernet.calibration_batches=2",
    "trials=6",
    "evolution.population_size=3",
    "evolution.parents=2",
]
# Scores the exported child on the validation split in a fresh interpreter.


def run(capsys: pytest.CaptureFixture[str], *args: str) -> tuple[int, str, str]:
    code = main(list(args))
    out, err = capsys.readouterr()
    return code, out, err


def test_search_resumes_without_retraining_and_exports_the_best_child(
    capsys: pytest.CaptureFixture[str],
) -> None:
    code, out, err = run(capsys, "search", *TINY_VIT)
    assert code == 0, err
    assert "supernet epoch 2/2" in out and "Pareto front" in out
    study = optuna.load_study(study_name="vit_resnas-digits", storage=f"sqlite:///{DB}")
    trials = study.get_trials()
    assert [t.state.name for t in trials] == ["COMPLETE"] * 6
    assert all(t.values[1] == t.user_attrs["flops"] for t in trials)
    checkpoint = supernet_checkpoint_path(ARTIFACTS, "vit_resnas-digits")
    stamp = checkpoint.stat().st_mtime_ns

    code, out, _ = run(capsys, "search", *TINY_VIT, "trials=8")
    assert code == 0
    assert "supernet epoch" not in out  # the finished supernet is reused, not retrained
    assert checkpoint.stat().st_mtime_ns == stamp
    assert len(study.get_trials()) == 8

    code, out, err = run(capsys, "export", "study=vit_resnas-digits", "trial=best", "out=child.py")
    assert code == 0, err
    recorded = study.get_trials()[int(out.split()[1])].values[0]
    assert exported_accuracy("child") == pytest.approx(recorded, abs=1e-9)
