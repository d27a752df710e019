"""`nas search space=tas`: the teacher trained once, a TAS search and a distillation per
trial, the study resumed without retraining the teacher, an interrupted search resumed
from its own checkpoint, and a pruned network exported with its weights."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import optuna
import pytest

from nas.artifacts import checkpoint_path
from nas.cli import main
from tests.conftest import exported_accuracy, interrupt_search

pytestmark = pytest.mark.e2e  # real searches, processes or servers: the end-to-end tier

DB = Path("nas-runs/nas.db")
ARTIFACTS = Path("nas-runs/artifacts")
SMALL = ["space=tas", "epochs=1", "tas.search_epochs=2", "tas.teacher_epochs=1", "trials=2"]


def run(capsys: pytest.CaptureFixture[str], *args: str) -> tuple[int, str, str]:
    code = main(list(args))
    out, err = capsys.readouterr()
    return code, out, err


def test_search_reuses_the_teacher_and_exports_a_pruned_network(
    capsys: pytest.CaptureFixture[str],
) -> None:
    code, out, err = run(capsys, "search", *SMALL)
    assert code == 0, err
    assert "teacher epoch 1/1" in out and "search epoch 2/2" in out and "Pareto front" in out
    study = optuna.load_study(study_name="tas-digits", storage=f"sqlite:///{DB}")
    for trial in study.get_trials():
        assert trial.state.name == "COMPLETE"
        assert 0.1 <= trial.params["flops_ratio"] <= 0.7
        assert [epoch["epoch"] for epoch in trial.user_attrs["search"]] == [1, 2]
        assert len(trial.user_attrs["curve"]) == 1
        assert trial.values[1] == trial.user_attrs["flops"]
    teacher = checkpoint_path(ARTIFACTS, "tas-digits", "teacher")
    stamp = teacher.stat().st_mtime_ns

    code, out, _ = run(capsys, "search", *SMALL, "trials=3")
    assert code == 0
    assert "teacher epoch" not in out  # the finished teacher is reused, not retrained
    assert teacher.stat().st_mtime_ns == stamp
    assert len(study.get_trials()) == 3

    code, out, err = run(capsys, "export", "study=tas-digits", "trial=best", "out=pruned.py")
    assert code == 0, err
    recorded = study.get_trials()[int(out.split()[1])].values[0]
    assert exported_accuracy("pruned") == pytest.approx(recorded, abs=1e-9)


def test_an_interrupted_search_resumes_from_its_checkpoint(tmp_path: Path) -> None:
    args = [*SMALL, "trials=1", "epochs=2", "objectives=[accuracy]", "pruner=median"]
    interrupt_search(args, tmp_path, after="search epoch 1/2")
    finished = subprocess.run(
        [sys.executable, "-m", "nas", "search", *args],
        capture_output=True, text=True, timeout=600, check=True,
    )  # fmt: skip
    assert "retrying 1 trial" in finished.stdout
    assert "search epoch 2/2" in finished.stdout
    assert "search epoch 1/2" not in finished.stdout  # resumed from the search's checkpoint
    assert "teacher epoch" not in finished.stdout
    study = optuna.load_study(study_name="tas-digits", storage=f"sqlite:///{DB}")
    done = [t for t in study.get_trials() if t.state.name == "COMPLETE"]
    assert len(done) == 1 and done[0].user_attrs["retry_of"] == 0
    # The distillation curve reached Optuna's pruner epoch by epoch.
    assert sorted(done[0].intermediate_values) == [1, 2]


def test_a_teacher_from_a_file_is_used_and_a_bad_one_refused(
    capsys: pytest.CaptureFixture[str],
) -> None:
    from safetensors.torch import save_file

    from nas.data import load_dataset
    from search_spaces import create_space

    space = create_space("tas", preset="digits")
    teacher = space.build(space.largest(), load_dataset("digits").spec)
    save_file(dict(teacher.state_dict()), "teacher.safetensors")
    code, out, err = run(capsys, "search", *SMALL, "trials=1", "tas.teacher=teacher.safetensors")
    assert code == 0, err
    assert "teacher epoch" not in out and "search epoch 2/2" in out

    Path("broken.pt").write_bytes(b"not a checkpoint")
    code, out, err = run(capsys, "search", *SMALL, "study=other", "tas.teacher=broken.pt")
    assert code != 0
    assert "tas.teacher=broken.pt is not a readable weights file" in err
    assert "Traceback" not in err
