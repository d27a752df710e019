"""LCPFNScheduler: the LC-PFN stopping rule inside Ray Tune."""

from __future__ import annotations

from types import SimpleNamespace
from typing import Any

import pytest

pytest.importorskip("ray.tune")

from ray.tune.schedulers import TrialScheduler

from nas.core.errors import ConfigError
from nas.tune_scheduler import LCPFNScheduler

pytestmark = pytest.mark.e2e  # real searches, processes or servers: the end-to-end tier

FINAL = 20
LEADING = [min(0.99, 0.85 + 0.05 * e) for e in range(FINAL)]
MEDIUM = [min(0.90, 0.5 + 0.05 * e) for e in range(FINAL)]
HOPELESS = [0.30 + 0.002 * e for e in range(FINAL)]


def _feed(scheduler: LCPFNScheduler, trial_id: str, curve: list[float]) -> int:
    """Report ``curve`` epoch by epoch; the epoch at which the scheduler says STOP, else 0."""
    trial = SimpleNamespace(trial_id=trial_id)
    for epoch, value in enumerate(curve, start=1):
        decision = scheduler.on_trial_result(
            None, trial, {"acc": value, "training_iteration": epoch}
        )
        if decision == TrialScheduler.STOP:
            return epoch
    return 0


def test_scheduler_stops_hopeless_trials_after_the_startup_ones() -> None:
    scheduler = LCPFNScheduler(FINAL, "acc", "max", startup_trials=2)
    assert _feed(scheduler, "a", HOPELESS) == 0  # nothing finished yet: runs to the end
    assert _feed(scheduler, "b", MEDIUM) == 0
    assert _feed(scheduler, "c", HOPELESS) == 2  # at min_epochs, against b's 0.90
    assert _feed(scheduler, "d", LEADING) == 0
    assert scheduler.stopped == ["c"]
    assert "1 stopped" in scheduler.debug_string()


def test_scheduler_checks_metric_and_mode() -> None:
    with pytest.raises(ConfigError, match="mode"):
        LCPFNScheduler(FINAL, "acc", "maximum")
    with pytest.raises(ConfigError, match="scale"):
        LCPFNScheduler(FINAL, "loss", "min")  # the default predictor reads accuracies
    unset = LCPFNScheduler(FINAL)
    with pytest.raises(ConfigError, match="metric and mode"):
        unset.on_trial_add(None, SimpleNamespace(trial_id="x"))
    assert unset.set_search_properties("acc", "max")


def test_scheduler_in_a_real_tune_run(tmp_path: Any) -> None:
    import ray
    from ray import tune

    def trainable(config: dict[str, Any]) -> None:
        for epoch, value in enumerate(config["curve"], start=1):
            tune.report({"acc": value, "epoch": epoch})

    ray.init(num_cpus=1, include_dashboard=False, log_to_driver=False)
    try:
        tuner = tune.Tuner(
            trainable,
            param_space={"curve": tune.grid_search([MEDIUM, LEADING, HOPELESS])},
            tune_config=tune.TuneConfig(
                metric="acc",
                mode="max",
                scheduler=LCPFNScheduler(FINAL, time_attr="epoch", startup_trials=2),
                max_concurrent_trials=1,
            ),
            run_config=tune.RunConfig(storage_path=str(tmp_path), verbose=0),
        )
        results = tuner.fit()
    finally:
        ray.shutdown()
    epochs = sorted(len(result.metrics_dataframe) for result in results)
    assert epochs == [2, FINAL, FINAL]  # the hopeless trial stopped at min_epochs
