"""`nas plot`: the front, history, curves and importance of a stored study as HTML or PNG."""

from __future__ import annotations

import json
import sqlite3
from pathlib import Path

import optuna
import pytest
from optuna.distributions import CategoricalDistribution, FloatDistribution

from nas import store
from nas.cli import main
from nas.plots import PLOT_KINDS, curves_figure

URL = "sqlite:///nas-runs/nas.db"
State = optuna.trial.TrialState


def run(capsys: pytest.CaptureFixture[str], *args: str) -> tuple[int, str, str]:
    code = main(list(args))
    out, err = capsys.readouterr()
    return code, out, err


def arch_str(number: int) -> str:
    """A readable architecture, as the search stores for each trial."""
    return f"normal[b0=sep_conv_5x5({number})+identity(0)] concat(2)"


def make_study(name: str, objectives: list[str], pruner: str = "lcpfn") -> optuna.Study:
    """A study as nas search leaves it: complete trials with curves, two stopped early by
    the pruner, one rejected."""
    Path("nas-runs").mkdir(exist_ok=True)
    directions = ["maximize"] + ["minimize"] * (len(objectives) - 1)
    study = optuna.create_study(study_name=name, storage=URL, directions=directions)
    study.set_user_attr(store.ATTR_IDENTITY, {"objectives": objectives})
    study.set_user_attr(store.ATTR_CONFIG, {"pruner": pruner})
    distributions = {
        "op": CategoricalDistribution(["conv", "pool", "skip"]),
        "width": FloatDistribution(0.25, 1.0),
    }
    for number in range(8):
        params = {"op": ["conv", "pool", "skip"][number % 3], "width": 0.25 + number / 10}
        curve = [0.2 + 0.08 * epoch + 0.01 * number for epoch in range(4)]
        attrs: dict[str, object] = {"curve": curve, "arch_str": arch_str(number)}
        state, values = State.COMPLETE, [curve[-1], 1000.0 * (number + 1)][: len(objectives)]
        if number in (3, 6):  # stopped by the pruner after 2 epochs
            state, values, attrs["curve"] = State.PRUNED, None, curve[:2]
        if number == 7:
            state, values, attrs = State.PRUNED, None, {"rejected": "unstable", "curve": [0.1]}
        study.add_trial(
            optuna.trial.create_trial(
                params=params,
                distributions=distributions,
                values=values,
                state=state,
                user_attrs=attrs,
            )
        )
    return study


@pytest.mark.parametrize("kind", PLOT_KINDS)
@pytest.mark.parametrize("suffix", [".html", ".png"])
def test_every_kind_is_written_in_both_formats(
    capsys: pytest.CaptureFixture[str], kind: str, suffix: str
) -> None:
    make_study("front", ["accuracy", "flops"])
    out = Path(f"plots/{kind}{suffix}")
    code, printed, err = run(capsys, "plot", "study=front", f"kind={kind}", f"out={out}")
    assert code == 0, err
    assert f"{kind} of 'front' -> {out}" in printed
    data = out.read_bytes()
    if suffix == ".png":
        assert data.startswith(b"\x89PNG") and len(data) > 10_000
    else:
        assert b"plotly" in data and b"accuracy" in data


def test_the_curves_mark_where_the_pruner_stopped_trials() -> None:
    study = make_study("curves", ["accuracy"])
    figure = curves_figure(study, "plotly")
    marks = [trace for trace in figure.data if trace.name == "stopped by pruner=lcpfn"]
    assert len(marks) == 1
    assert list(marks[0].x) == [2, 2] and list(marks[0].text) == ["trial 3", "trial 6"]
    drawn = {trace.name for trace in figure.data}
    assert "trial 7" not in drawn  # rejected: not a learning curve
    assert {f"trial {n}" for n in range(7)} <= drawn
    assert "(x: stopped by pruner=lcpfn)" in figure.layout.title.text


@pytest.mark.parametrize(
    ("objectives", "args", "message"),
    [
        (["accuracy"], ["kind=pareto", "out=p.png"], "kind=pareto needs a study with several"),
        (["accuracy"], ["kind=pie", "out=p.png"], "kind must be one of"),
        (["accuracy"], ["kind=history", "out=p.pdf"], "must end in .html"),
        (["accuracy"], ["kind=history", "out=/proc/p.png"], "Cannot write out=/proc/p.png"),
    ],
)
def test_a_plot_that_cannot_be_drawn_is_one_line(
    capsys: pytest.CaptureFixture[str], objectives: list[str], args: list[str], message: str
) -> None:
    make_study("s", objectives)
    code, _, err = run(capsys, "plot", "study=s", *args)
    assert code == 2 and message in err
    assert err.count("\n") == 1 and "Traceback" not in err


def test_a_tampered_curve_is_refused_by_name(capsys: pytest.CaptureFixture[str]) -> None:
    study = make_study("s", ["accuracy"])
    with sqlite3.connect("nas-runs/nas.db") as db:  # edited in the store, as by hand
        db.execute(
            "UPDATE trial_user_attributes SET value_json = ? WHERE key = 'curve' AND trial_id = ?",
            (json.dumps(["0.5", "__import__"]), study.trials[1]._trial_id),
        )
    code, _, err = run(capsys, "plot", "study=s", "kind=curves", "out=c.png")
    assert code == 2 and "Trial 1 of 's' holds a malformed curve" in err


def test_a_study_with_nothing_finished_says_so(capsys: pytest.CaptureFixture[str]) -> None:
    Path("nas-runs").mkdir(exist_ok=True)
    study = optuna.create_study(study_name="empty", storage=URL, direction="maximize")
    study.set_user_attr(store.ATTR_IDENTITY, {"objectives": ["accuracy"]})
    code, _, err = run(capsys, "plot", "study=empty", "kind=history", "out=h.png")
    assert code == 2 and "no complete trial to plot yet" in err
