"""A Ray Tune scheduler that stops trials by LC-PFN learning-curve extrapolation.

The rule is ``nas.early_stopping``'s: once a trial has ``min_epochs`` results, it is
stopped when ``P(its metric at final_epoch is better than the rank-th best finished
trial) < threshold``. A trial counts as finished when it reports ``final_epoch``.
Needs the ``ray`` extra (``pip install 'nas[ray]'``).

    from nas.tune_scheduler import LCPFNScheduler
    tune.Tuner(train, tune_config=tune.TuneConfig(
        metric="accuracy", mode="max", scheduler=LCPFNScheduler(final_epoch=20)))
"""

from __future__ import annotations

from collections import defaultdict
from typing import TYPE_CHECKING, Any

from ray.tune.schedulers import FIFOScheduler, TrialScheduler

from nas.core.errors import ConfigError
from nas.core.validation import check_number
from nas.early_stopping import CurveStopper, kth_best

if TYPE_CHECKING:
    from ray.tune.experiment import Trial


class LCPFNScheduler(FIFOScheduler):
    """Stop Ray Tune trials whose extrapolated curve will most likely not win.

    Args:
        final_epoch: The ``time_attr`` value at which a trial is complete.
        metric: Result key of the curve (e.g. validation accuracy); or set by
            ``tune.TuneConfig(metric=...)``.
        mode: ``"max"`` or ``"min"``; must agree with the stopper's scale.
        time_attr: Result key counting epochs from 1.
        stopper: Decision rule; default: the shipped LC-PFN on accuracies.
        rank: Target the ``rank``-th best finished trial.
        startup_trials: Finished trials needed before any stop.
    """

    def __init__(
        self,
        final_epoch: int,
        metric: str | None = None,
        mode: str | None = None,
        *,
        time_attr: str = "training_iteration",
        stopper: CurveStopper | None = None,
        rank: int = 1,
        startup_trials: int = 3,
    ) -> None:
        super().__init__()
        check_number("final_epoch", final_epoch, integer=True, low=1)
        check_number("rank", rank, integer=True, low=1)
        check_number("startup_trials", startup_trials, integer=True, low=0)
        self._final_epoch = final_epoch
        self._metric = metric
        self._mode = mode
        self._time_attr = time_attr
        self._stopper = stopper or CurveStopper()
        self._rank = rank
        self._startup_trials = startup_trials
        self._curves: dict[str, dict[int, float]] = defaultdict(dict)
        self._finals: dict[str, float] = {}
        self.stopped: list[str] = []  # trial ids, in the order they were stopped
        if mode is not None:
            self._check_mode(mode)

    def _check_mode(self, mode: str) -> None:
        if mode not in ("max", "min"):
            raise ConfigError(f"mode must be 'max' or 'min', but got {mode!r}.")
        self._stopper.check_direction(maximize=mode == "max", what=f"mode={mode!r}")

    def set_search_properties(self, metric: str | None, mode: str | None, **spec: Any) -> bool:
        if (self._metric and metric) or (self._mode and mode):
            return False  # already set: Ray reports the conflict
        if metric:
            self._metric = metric
        if mode:
            self._check_mode(mode)
            self._mode = mode
        return True

    def on_trial_add(self, tune_controller: Any, trial: Trial) -> None:
        if not self._metric or not self._mode:
            raise ConfigError(
                "LCPFNScheduler needs metric and mode: pass them to it or to tune.TuneConfig."
            )
        super().on_trial_add(tune_controller, trial)

    def on_trial_result(self, tune_controller: Any, trial: Trial, result: dict[str, Any]) -> str:
        if self._metric not in result or self._time_attr not in result:
            return str(TrialScheduler.CONTINUE)
        epoch = int(result[self._time_attr])
        curve = self._curves[trial.trial_id]
        curve[epoch] = float(result[self._metric])
        if epoch >= self._final_epoch:
            self._finals[trial.trial_id] = curve[epoch]
            return str(TrialScheduler.CONTINUE)
        if len(self._finals) < self._startup_trials:
            return str(TrialScheduler.CONTINUE)
        target = kth_best(
            list(self._finals.values()), self._rank, higher_is_better=self._mode == "max"
        )
        observed = [curve[e] for e in sorted(curve)]
        if self._stopper.should_stop(observed, self._final_epoch, target):
            self.stopped.append(trial.trial_id)
            return str(TrialScheduler.STOP)
        return str(TrialScheduler.CONTINUE)

    def debug_string(self) -> str:
        return (
            f"Using LCPFNScheduler: {len(self.stopped)} stopped, "
            f"{len(self._finals)} finished at {self._time_attr}={self._final_epoch}."
        )
