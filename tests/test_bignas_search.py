"""`nas search space=bignas`: train the supernet once, search its children, resume, export."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import optuna
import pytest
import torch
from conftest import interrupt_search
from safetensors.torch import load_file

from evaluators.weight_sharing import SUMMARY_ATTR
from nas.artifacts import checkpoint_path as supernet_checkpoint_path
from nas.cli import main
from nas.data import load_dataset
from nas.report import best_trials

pytestmark = pytest.mark.e2e  # real searches, processes or servers: the end-to-end tier

DB = Path("nas-runs/nas.db")
ARTIFACTS = Path("nas-runs/artifacts")
# A short supernet training and a handful of children keep each story to seconds.
TINY_BIGNAS = ["space=bignas", "supernet.epochs=2", "supernet.calibration_batches=2", "trials=4"]


def run(capsys: pytest.CaptureFixture[str], *args: str) -> tuple[int, str, str]:
    code = main(list(args))
    out, err = capsys.readouterr()
    return code, out, err


def load(name: str = "bignas-digits") -> optuna.Study:
    return optuna.load_study(study_name=name, storage=f"sqlite:///{DB}")


def test_search_trains_once_then_resumes_without_retraining(
    capsys: pytest.CaptureFixture[str],
) -> None:
    code, out, err = run(capsys, "search", *TINY_BIGNAS)
    assert code == 0, err
    assert "supernet epoch 2/2" in out and "Pareto front" in out
    checkpoint = supernet_checkpoint_path(ARTIFACTS, "bignas-digits")
    assert checkpoint.is_file()
    study = load()
    assert len(study.user_attrs[SUMMARY_ATTR]) == 2
    trials = study.get_trials()
    assert [t.state.name for t in trials] == ["COMPLETE"] * 4
    for trial in trials:
        assert trial.values[1] == trial.user_attrs["flops"]
        assert trial.user_attrs["latency_ms"] > 0 and "weights" in trial.user_attrs
    # The Pareto front is listed cheapest first, so accuracy rises down the table.
    front = best_trials(study)
    assert front
    assert [t.values[1] for t in front] == sorted(t.values[1] for t in front)
    assert [t.values[0] for t in front] == sorted(t.values[0] for t in front)

    code, out, _ = run(capsys, "show", "study=bignas-digits")
    assert code == 0 and "supernet: 2 epochs; validation accuracy of the biggest child" in out

    stamp = checkpoint.stat().st_mtime_ns
    code, out, _ = run(capsys, "search", *TINY_BIGNAS, "trials=6")
    assert code == 0
    assert "supernet epoch" not in out  # the finished supernet is reused, not retrained
    assert checkpoint.stat().st_mtime_ns == stamp
    assert [t.number for t in load().get_trials()] == list(range(6))


def test_exported_child_scores_what_the_trial_recorded(
    capsys: pytest.CaptureFixture[str], tmp_path: Path
) -> None:
    assert run(capsys, "search", *TINY_BIGNAS)[0] == 0
    code, out, err = run(capsys, "export", "study=bignas-digits", "trial=best", "out=child.py")
    assert code == 0, err
    study = load()
    number = int(out.split()[1])
    recorded = study.get_trials()[number].values[0]

    sys.path.insert(0, str(tmp_path))
    try:
        import child  # the generated file, imports only torch
    finally:
        sys.path.remove(str(tmp_path))
    model = child.build_network()
    model.load_state_dict(load_file("child.safetensors"), strict=True)
    model.eval()
    val = load_dataset("digits").val
    images = torch.stack([val[i][0] for i in range(len(val))])
    labels = torch.stack([torch.as_tensor(val[i][1]) for i in range(len(val))])
    with torch.no_grad():
        accuracy = int((model(images).argmax(1) == labels).sum()) / len(labels)
    assert accuracy == pytest.approx(recorded, abs=1e-9)


def test_constrained_coarse_to_fine_keeps_the_budget(capsys: pytest.CaptureFixture[str]) -> None:
    code, _, err = run(
        capsys,
        "search",
        *TINY_BIGNAS,
        "trials=6",
        "objectives=[accuracy]",
        "strategy=coarse_to_fine",
        "coarse_to_fine.coarse_trials=3",
        "constraints.max_flops=2e6",
    )
    assert code == 0, err
    trials = load().get_trials()
    assert all("constraint" in t.user_attrs for t in trials)
    feasible = [t for t in trials if t.user_attrs["flops"] <= 2e6]
    code, out, _ = run(capsys, "export", "study=bignas-digits", "trial=best", "out=c.py")
    if feasible:
        assert code == 0
        best = max(feasible, key=lambda t: t.value)
        assert out.startswith(f"trial {best.number} ")
    else:
        assert code == 2


def test_bad_supernet_setting_fails_before_anything_is_stored(
    capsys: pytest.CaptureFixture[str],
) -> None:
    code, _, err = run(capsys, "search", *TINY_BIGNAS, "supernet.lr=-1")
    assert code == 2 and "supernet.lr must be a number > 0, but got supernet.lr=-1.0." in err
    assert not DB.exists()


def test_supernet_evaluator_needs_a_weight_sharing_space(
    capsys: pytest.CaptureFixture[str],
) -> None:
    code, _, err = run(capsys, "search", "space=nasnet", "evaluator=supernet")
    assert code == 2 and "needs a weight-sharing space" in err


def test_ctrl_c_in_supernet_training_resumes_from_the_checkpoint(tmp_path: Path) -> None:
    args = ["space=bignas", "supernet.epochs=3", "supernet.calibration_batches=2", "trials=2"]
    err = interrupt_search(args, tmp_path, after="supernet epoch 1/3")
    assert "Resume with: nas search space=bignas" in err

    command = [sys.executable, "-m", "nas", "search", *args]
    done = subprocess.run(command, cwd=tmp_path, capture_output=True, text=True, timeout=300)
    assert done.returncode == 0, done.stderr
    assert "supernet epoch 1/3" not in done.stdout  # epoch 1 came from the checkpoint
    assert "supernet epoch 3/3" in done.stdout
    study = load()
    assert [r["epoch"] for r in study.user_attrs[SUMMARY_ATTR]] == [1.0, 2.0, 3.0]


def test_latency_objective_is_the_measured_latency(capsys: pytest.CaptureFixture[str]) -> None:
    code, out, err = run(
        capsys,
        "search",
        *TINY_BIGNAS,
        "supernet.epochs=1",
        "trials=2",
        "objectives=[accuracy,latency]",
        "strategy=random",
        "latency_threads=2",
    )
    assert code == 0, err
    assert "latency ms" in out  # the column says its unit
    for trial in load().get_trials():
        assert trial.values[1] == trial.user_attrs["latency_ms"] > 0
        assert trial.user_attrs["latency_threads"] == 2  # what the latency means


def test_the_same_command_in_two_fresh_folders_trains_the_same_supernet(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    """The supernet's initial weights come from the seed, not from whatever the process
    drew before building it: two fresh runs end with the same weights, bit for bit."""
    import torch

    from nas.core.checkpoint import load_checkpoint

    weights = []
    for folder in ("a", "b"):
        (tmp_path / folder).mkdir()
        monkeypatch.chdir(tmp_path / folder)
        if folder == "b":
            torch.rand(7)  # a process that drew random numbers first
        code, _, err = run(capsys, "search", *TINY_BIGNAS, "supernet.epochs=1", "trials=1")
        assert code == 0, err
        checkpoint = load_checkpoint(supernet_checkpoint_path(ARTIFACTS, "bignas-digits"))
        weights.append(checkpoint["supernet"])
    assert weights[0].keys() == weights[1].keys()
    assert all(torch.equal(weights[0][k], weights[1][k]) for k in weights[0])


def test_an_unreadable_supernet_checkpoint_is_recovered_from(
    capsys: pytest.CaptureFixture[str],
) -> None:
    """Issue 17: a corrupt local checkpoint falls back to the published copy; when that
    is corrupt too, both are set aside and the next run trains from scratch."""
    from nas.artifacts import published_checkpoint

    args = [*TINY_BIGNAS, "supernet.epochs=1"]
    code, _, err = run(capsys, "search", *args, "trials=1")
    assert code == 0, err
    local = supernet_checkpoint_path(ARTIFACTS, "bignas-digits")
    local.write_bytes(b"not a checkpoint")

    code, out, err = run(capsys, "search", *args, "trials=2")
    assert code == 0, err
    assert "the local supernet checkpoint is unreadable (kept as bignas-digits.ckpt.corrupt)" in out
    assert "resuming from the published copy (1 epochs" in out
    assert "supernet epoch 1/1" not in out  # nothing retrained

    published = published_checkpoint(load())
    assert published is not None
    (ARTIFACTS / published[0]).write_bytes(b"corrupt too")
    local.write_bytes(b"not a checkpoint")
    code, _, err = run(capsys, "search", *args, "trials=3")
    assert code == 1 and err.count("\n") == 1
    assert "and so is the copy published in the study" in err
    assert "run the same command again to train the supernet from scratch" in err

    code, out, err = run(capsys, "search", *args, "trials=3")
    assert code == 0, err
    assert "supernet epoch 1/1" in out  # trained anew, then published again
    assert published_checkpoint(load()) is not None
