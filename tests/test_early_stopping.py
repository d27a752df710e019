"""pruner=lcpfn: the decision rule, the Optuna pruner, the Pareto target and the search."""

from __future__ import annotations

import optuna
import pytest

from evaluators.lcpfn import CurvePredictor, CurveScale, load_lcpfn
from nas.cli import main
from nas.core.errors import ConfigError
from nas.early_stopping import (
    CurveStopper,
    LCPFNPruner,
    kth_best,
    pareto_target,
    to_model_epochs,
)
from tests.conftest import TINY_SEARCH

HOPELESS = [0.30, 0.32, 0.33, 0.33, 0.34, 0.34]
LEADING = [0.60, 0.85, 0.93, 0.96, 0.97, 0.975]


@pytest.fixture(scope="module")
def stopper() -> CurveStopper:
    return CurveStopper(threshold=0.05, min_epochs=2)


def test_model_grid_keeps_short_runs_and_subsamples_long_ones() -> None:
    assert to_model_epochs([0.1, 0.2, 0.3], final_epoch=20, length=100) == [0.1, 0.2, 0.3]
    long = [i / 1000 for i in range(1, 301)]  # epochs 1..300 of a 300-epoch run
    mapped = to_model_epochs(long, final_epoch=300, length=100)
    assert len(mapped) == 100 and mapped[0] == long[2] and mapped[-1] == long[299]
    assert to_model_epochs(long[:2], final_epoch=300, length=100) == []


def test_stopper_reads_a_short_run_as_a_whole_run_on_the_grid(stopper: CurveStopper) -> None:
    predictor = stopper.predictor
    stretched = predictor.predict([HOPELESS], at_epoch=20, run_epochs=20).prob_better(0.9)
    assert stopper.prob_better(HOPELESS, 20, 0.9) == pytest.approx(float(stretched[0]))
    unstretched = predictor.predict([HOPELESS], at_epoch=20).prob_better(0.9)
    assert float(stretched[0]) != pytest.approx(float(unstretched[0]))


def test_stopper_stops_hopeless_and_keeps_leading(stopper: CurveStopper) -> None:
    assert stopper.prob_better(HOPELESS, 20, 0.95) < 0.01
    assert stopper.should_stop(HOPELESS, 20, 0.95)
    # The shipped model is cautious near 1.0 (an ABC estimate under the prior is ~0.7),
    # but a curve already above the target is far from the 0.05 threshold.
    assert stopper.prob_better(LEADING, 20, 0.95) > 0.3
    assert not stopper.should_stop(LEADING, 20, 0.95)
    # No target, too few epochs, or a finished curve: never stopped.
    assert not stopper.should_stop(HOPELESS, 20, None)
    assert not stopper.should_stop(HOPELESS[:1], 20, 0.95)
    assert not stopper.should_stop(HOPELESS * 4, 20, 0.95)


def test_stopper_reads_error_rates_through_their_scale() -> None:
    errors = CurveStopper(CurvePredictor(load_lcpfn(), scale=CurveScale.error()))
    assert errors.should_stop([1 - v for v in HOPELESS], 20, 0.05)
    assert not errors.should_stop([1 - v for v in LEADING], 20, 0.05)


def test_targets() -> None:
    assert kth_best([0.9, 0.7, 0.8], 1, higher_is_better=True) == 0.9
    assert kth_best([0.9, 0.7, 0.8], 2, higher_is_better=False) == 0.8
    assert kth_best([0.9], 2, higher_is_better=True) is None
    finished = [(0.95, [100.0, 5.0]), (0.90, [50.0, 9.0]), (0.80, [10.0, 1.0])]
    # Only trials at most as costly on every objective can dominate.
    assert pareto_target([60.0, 9.0], finished) == 0.90
    assert pareto_target([200.0, 9.0], finished) == 0.95
    assert pareto_target([5.0, 9.0], finished) is None


def _study(stopper: CurveStopper, finals: list[float], **kwargs: int) -> optuna.Study:
    study = optuna.create_study(direction="maximize", pruner=LCPFNPruner(20, stopper, **kwargs))
    for value in finals:
        study.add_trial(optuna.trial.create_trial(value=value))
    return study


def _run(study: optuna.Study, curve: list[float]) -> int | None:
    """The epoch the pruner stops ``curve`` at, or None if it lets it run."""
    trial = study.ask()
    for epoch, value in enumerate(curve, start=1):
        trial.report(value, epoch)
        if trial.should_prune():
            return epoch
    return None


def test_pruner_stops_a_hopeless_trial_and_keeps_a_leading_one(stopper: CurveStopper) -> None:
    study = _study(stopper, [0.93, 0.95, 0.91])
    stopped = _run(study, HOPELESS)
    assert stopped is not None and stopped <= 3  # at min_epochs or one later, of 20
    assert _run(study, LEADING + [0.98] * 13) is None


def test_pruner_waits_for_startup_trials_and_uses_the_rank(stopper: CurveStopper) -> None:
    assert _run(_study(stopper, [0.95, 0.93], startup_trials=3), HOPELESS) is None
    # Against the 3rd best (0.36) the slow curve is not hopeless.
    ranked = _study(stopper, [0.95, 0.93, 0.36], rank=3)
    assert _run(ranked, HOPELESS) is None


def test_pruner_refuses_a_direction_its_scale_does_not_have(stopper: CurveStopper) -> None:
    study = optuna.create_study(direction="minimize", pruner=LCPFNPruner(20, stopper))
    for _ in range(3):
        study.add_trial(optuna.trial.create_trial(value=0.1))
    with pytest.raises(ConfigError, match="scale"):
        _run(study, [0.5, 0.4])


def _search(capsys: pytest.CaptureFixture[str], *args: str) -> tuple[int, str]:
    code = main(["search", "space=nasnet", *TINY_SEARCH, *args])
    captured = capsys.readouterr()
    return code, captured.out + captured.err


@pytest.mark.e2e
def test_single_objective_search_with_lcpfn_pruner(capsys: pytest.CaptureFixture[str]) -> None:
    code, out = _search(
        capsys,
        "pruner=lcpfn",
        "trials=5",
        "epochs=3",
        "lcpfn.startup_trials=1",
        "lcpfn.min_epochs=1",
        "lcpfn.threshold=0.9",  # tiny runs: most of a trial is still ahead at epoch 1
    )
    assert code == 0, out
    study = optuna.load_study(study_name="nasnet-digits", storage="sqlite:///nas-runs/nas.db")
    states = [t.state.name for t in study.trials]
    assert len(states) == 5 and "PRUNED" in states, states
    best = max(t.value for t in study.trials if t.state.name == "COMPLETE")
    for trial in study.trials:
        if trial.state.name == "PRUNED":  # stopped before its last epoch, below the best
            assert len(trial.user_attrs["curve"]) < 3
            assert max(trial.user_attrs["curve"]) < best


@pytest.mark.e2e
def test_multi_objective_search_stops_only_dominated_trials(
    capsys: pytest.CaptureFixture[str],
) -> None:
    code, out = _search(
        capsys,
        "pruner=lcpfn",
        "objectives=[accuracy,params]",
        "strategy=random",
        "trials=6",
        "epochs=3",
        "lcpfn.startup_trials=1",
        "lcpfn.min_epochs=1",
        "lcpfn.threshold=0.9",  # tiny runs: most of a trial is still ahead at epoch 1
    )
    assert code == 0, out
    assert "not applied" not in out
    study = optuna.load_study(study_name="nasnet-digits", storage="sqlite:///nas-runs/nas.db")
    pruned = [t for t in study.trials if t.state.name == "PRUNED"]
    assert pruned, [t.state.name for t in study.trials]
    for trial in pruned:
        # Some earlier complete trial was at most as large: the stopped one could not
        # have joined the Pareto front without beating it.
        assert any(
            other.state.name == "COMPLETE"
            and other.number < trial.number
            and other.values[1] <= trial.user_attrs["params"]
            for other in study.trials
        ), trial.number


def test_bad_lcpfn_settings_are_one_line_errors(capsys: pytest.CaptureFixture[str]) -> None:
    code, out = _search(capsys, "pruner=lcpfn", "lcpfn.threshold=1.5")
    assert code == 2 and "lcpfn.threshold" in out and "Traceback" not in out
    code, out = _search(capsys, "pruner=lcpfn", "lcpfn.weights=missing.safetensors")
    assert code == 2 and "No LC-PFN weights at missing.safetensors" in out
