"""`nas search space=evonorm`: baselines first, candidates screened by protocol, the
front across hosts, equivalent layers not trained twice, resume, and export."""

from __future__ import annotations

from pathlib import Path

import optuna
import pytest

from nas.cli import main
from search_spaces.evonorm.graph import padded
from search_spaces.evonorm.space import EvoNormSpace
from tests.conftest import exported_accuracy

pytestmark = pytest.mark.e2e  # real searches: the end-to-end tier

DB = Path("nas-runs/nas.db")
SMALL = ["space=evonorm", "epochs=1", "evolution.population_size=5", "trials=7"]
X, ZERO, GAMMA, BETA, V = range(5)
PROTOCOLS = {"invalid", "non-finite", "stability", "quality"}


def _log_bn(filler: str) -> dict[str, object]:
    """The suggestions of log(BN(x)) (exploding gradients), with a dead filler node."""
    nodes = [
        (filler, (X,)),
        ("batch_mean", (X,)),
        ("neg", (6,)),
        ("add", (X, 7)),
        ("batch_std", (X,)),
        ("div", (8, 9)),
        ("mul", (10, GAMMA)),
        ("add", (11, BETA)),
        ("log", (12,)),
    ]
    return EvoNormSpace(groups=8).suggestions(padded(nodes, 10))


def test_search_screens_compares_with_baselines_resumes_and_exports(
    capsys: pytest.CaptureFixture[str],
) -> None:
    assert main(["search", *SMALL]) == 0
    out = capsys.readouterr().out
    assert "Pareto front of evonorm-digits" in out and "Baselines of evonorm-digits" in out
    assert "evonorm-b0: x / max(batch_std(x), v * x + instance_std(x))" in out
    study = optuna.load_study(study_name="evonorm-digits", storage=f"sqlite:///{DB}")
    trials = study.get_trials()
    assert [t.user_attrs.get("baseline") for t in trials[:3]] == [
        "bn-relu",
        "evonorm-b0",
        "evonorm-s0",
    ]
    rejected = [t for t in trials if "rejected" in t.user_attrs]
    assert all(t.user_attrs["rejected_by"] in PROTOCOLS for t in rejected)
    assert all(t.user_attrs["rejected"].startswith(t.user_attrs["rejected_by"]) for t in rejected)
    for trial in trials:
        if trial.state.name == "COMPLETE":
            curves = trial.user_attrs["host_curves"]
            assert trial.values == [curves["resnet"][-1], curves["mobilenet"][-1]]

    # Equivalent layers (another dead node) are not evaluated twice: an accepted one
    # takes the earlier result, a rejected one the earlier rejection.
    bn_relu = EvoNormSpace(groups=8).suggestions(
        EvoNormSpace(groups=8).named_architectures()["bn-relu"]
    )
    study.enqueue_trial({**bn_relu, "n5_op": "square"})
    study.enqueue_trial(_log_bn("abs"))
    study.enqueue_trial(_log_bn("tanh"))
    assert main(["search", *SMALL, "trials=10"]) == 0
    capsys.readouterr()
    trials = study.get_trials()
    assert len(trials) == 10
    assert [t.user_attrs.get("baseline") for t in trials].count("bn-relu") == 1  # not requeued
    reused, unstable, again = trials[7:10]
    assert reused.user_attrs["reused_from"] == 0 and reused.values == trials[0].values
    assert unstable.user_attrs["rejected_by"] == "stability"
    assert again.user_attrs["reused_from"] == 8
    assert again.user_attrs["rejected"] == unstable.user_attrs["rejected"]

    # Rejections are counted by protocol.
    assert main(["show", "study=evonorm-digits"]) == 0
    rejected = [t for t in trials if "rejected" in t.user_attrs]
    protocols = sorted({t.user_attrs["rejected_by"] for t in rejected})
    counts = "; ".join(
        f"{p}: {sum(t.user_attrs['rejected_by'] == p for t in rejected)}" for p in protocols
    )
    assert f"{len(rejected)} rejected ({counts})" in capsys.readouterr().out

    assert main(["export", "study=evonorm-digits", "trial=best", "out=layer.py"]) == 0
    out = capsys.readouterr().out
    number = int(out.split()[1])
    source = Path("layer.py").read_text()
    assert "class EvoNormLayer(nn.Module)" in source and "def forward" in source
    assert exported_accuracy("layer") == pytest.approx(study.get_trials()[number].values[0])
