"""Early stopping by learning-curve extrapolation (LC-PFN), for single- and multi-objective studies.

One rule serves every front end: stop a trial once the probability that its curve ends
better than a target value falls below ``threshold`` (after ``min_epochs``). What the
target is depends on the study:

* single objective (``LCPFNPruner``, an Optuna pruner): the ``rank``-th best value among
  the finished trials, so the trial is stopped when it will most likely not enter the
  top ``rank``;
* accuracy vs costs (``pareto_target``, called by the runner itself because Optuna's
  ``report``/``should_prune`` refuse multi-objective studies): the best accuracy of the
  finished trials that cost no more than this one on every cost objective. Costs
  (FLOPs, parameters, latency) are known before training, so a trial is stopped only
  when those cheaper-or-equal trials would most likely dominate it; a trial cheaper
  than every finished one is never stopped, as it joins the Pareto front whatever its
  accuracy.

The Ray Tune scheduler (``nas.tune_scheduler``) uses the same ``CurveStopper``.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from typing import TYPE_CHECKING

import numpy as np
import optuna

from nas.core.errors import ConfigError
from nas.core.validation import check_number

if TYPE_CHECKING:
    from evaluators.lcpfn import CurvePredictor


def to_model_epochs(curve: Sequence[float], final_epoch: int, length: int) -> list[float]:
    """The observed curve on the network's epoch grid of ``length`` epochs.

    Runs up to ``length`` epochs keep every epoch (the predictor stretches them over the
    grid, ``run_epochs=final_epoch``). Longer runs are subsampled: model epoch ``k`` takes
    the value observed at epoch ``ceil(k * final_epoch / length)``. Either way the
    final epoch maps to model epoch ``length``: the prior's curves are whole runs.
    """
    if final_epoch <= length:
        return list(curve)
    factor = final_epoch / length
    count = int(len(curve) / factor + 1e-9)
    return [curve[math.ceil(k * factor - 1e-9) - 1] for k in range(1, count + 1)]


class CurveStopper:
    """Whether partial curves will most likely end no better than a target.

    Args:
        predictor: Extrapolates the curves; ``predictor.scale`` says whether higher is
            better. Default: the shipped LC-PFN on accuracies.
        threshold: Stop when ``P(final value better than target) < threshold``.
        min_epochs: Observed epochs before any decision.
    """

    def __init__(
        self,
        predictor: CurvePredictor | None = None,
        *,
        threshold: float = 0.15,
        min_epochs: int = 2,
    ) -> None:
        check_number("threshold", threshold, low=0.0, low_open=True, high=1.0, high_open=True)
        check_number("min_epochs", min_epochs, integer=True, low=1)
        if predictor is None:
            from evaluators.lcpfn import CurvePredictor, load_lcpfn

            predictor = CurvePredictor(load_lcpfn())
        self.predictor = predictor
        self.threshold = threshold
        self.min_epochs = min_epochs

    def check_direction(self, *, maximize: bool, what: str) -> None:
        """``ConfigError`` unless the predictor's scale improves in the metric's direction."""
        scale = self.predictor.scale
        if maximize != scale.higher_is_better:
            raise ConfigError(
                f"{what} but the predictor's scale is {scale.kind!r}; give CurvePredictor a "
                "scale of the same direction."
            )

    @property
    def length(self) -> int:
        return self.predictor.model.config.length

    def prob_better(self, curve: Sequence[float], final_epoch: int, target: float) -> float:
        """``P(value at final_epoch better than target)`` given the observed ``curve``.

        1.0 (no evidence against the trial) when the curve is too short to map onto the
        model's grid or already reaches ``final_epoch``.
        """
        check_number("final_epoch", final_epoch, integer=True, low=1)
        mapped = to_model_epochs(curve, final_epoch, self.length)
        query = min(final_epoch, self.length)
        if not mapped or len(mapped) >= query:
            return 1.0
        prediction = self.predictor.predict([mapped], at_epoch=query, run_epochs=query)
        return float(prediction.prob_better(target)[0])

    def should_stop(self, curve: Sequence[float], final_epoch: int, target: float | None) -> bool:
        """True when ``curve`` has ``min_epochs`` and is unlikely to end better than ``target``."""
        if target is None or len(curve) < self.min_epochs or len(curve) >= final_epoch:
            return False
        return self.prob_better(curve, final_epoch, target) < self.threshold


def kth_best(values: Sequence[float], rank: int, *, higher_is_better: bool) -> float | None:
    """The ``rank``-th best of ``values`` (1 = the best), or None when there are fewer."""
    check_number("rank", rank, integer=True, low=1)
    if len(values) < rank:
        return None
    ordered = sorted(values, reverse=higher_is_better)
    return float(ordered[rank - 1])


def pareto_target(
    costs: Sequence[float], finished: Sequence[tuple[float, Sequence[float]]]
) -> float | None:
    """The accuracy a trial with ``costs`` must beat to stay off the dominated side.

    Args:
        costs: The running trial's cost objectives (lower is better), in study order.
        finished: (accuracy, costs) of each finished trial.

    Returns:
        The best accuracy among finished trials that cost at most ``costs`` on every
        objective, or None when no finished trial does (the trial cannot be dominated).
    """
    cheaper = [
        accuracy
        for accuracy, other in finished
        if all(o <= c for o, c in zip(other, costs, strict=True))
    ]
    return max(cheaper) if cheaper else None


class LCPFNPruner(optuna.pruners.BasePruner):
    """Optuna pruner: stop a trial unlikely to beat the ``rank``-th best finished trial.

    Each reported step is one epoch (steps 1, 2, ...), and ``final_epoch`` is the step
    a trial that is never stopped ends at. Until ``startup_trials`` trials are complete
    nothing is stopped.

    Args:
        final_epoch: Epochs of a full trial.
        stopper: The decision rule; default: the shipped LC-PFN on accuracies.
        rank: Target the ``rank``-th best finished value (1 = the incumbent).
        startup_trials: Completed trials needed before any stop.
    """

    def __init__(
        self,
        final_epoch: int,
        stopper: CurveStopper | None = None,
        *,
        rank: int = 1,
        startup_trials: int = 3,
    ) -> None:
        check_number("final_epoch", final_epoch, integer=True, low=1)
        check_number("rank", rank, integer=True, low=1)
        check_number("startup_trials", startup_trials, integer=True, low=0)
        self.final_epoch = final_epoch
        self.stopper = stopper or CurveStopper()
        self.rank = rank
        self.startup_trials = startup_trials

    def prune(self, study: optuna.Study, trial: optuna.trial.FrozenTrial) -> bool:
        if len(study.directions) > 1:
            raise ConfigError(
                "LCPFNPruner needs a single-objective study; for accuracy vs cost use "
                "pareto_target with CurveStopper (pruner=lcpfn does this)."
            )
        maximize = study.direction == optuna.study.StudyDirection.MAXIMIZE
        self.stopper.check_direction(
            maximize=maximize, what=f"The study {'maximizes' if maximize else 'minimizes'}"
        )
        curve = [value for _, value in sorted(trial.intermediate_values.items())]
        complete = study.get_trials(deepcopy=False, states=(optuna.trial.TrialState.COMPLETE,))
        if len(complete) < self.startup_trials:
            return False
        values = [t.value for t in complete if t.value is not None]
        target = kth_best(values, self.rank, higher_is_better=maximize)
        return self.stopper.should_stop(curve, self.final_epoch, target)


def finished_front(
    study: optuna.Study, cost_indices: Sequence[int]
) -> list[tuple[float, list[float]]]:
    """(accuracy, costs) of the study's complete trials; accuracy is objective 0."""
    complete = study.get_trials(deepcopy=False, states=(optuna.trial.TrialState.COMPLETE,))
    return [
        (float(t.values[0]), [float(t.values[i]) for i in cost_indices])
        for t in complete
        if t.values is not None and all(np.isfinite(t.values))
    ]
