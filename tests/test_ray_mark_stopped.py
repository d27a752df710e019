"""backend=ray: the driver marks trials Tune stopped, racing their own workers."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

import optuna

from nas.ray_backend import EPOCH_KEY, TRIAL_KEY, _mark_stopped


@dataclass
class _Result:
    metrics: dict[str, Any]


@dataclass
class _RacingStudy:
    """A study whose trials look RUNNING, but whose workers finish them first."""

    told: list[int] = field(default_factory=list)

    def get_trials(self, deepcopy: bool = False) -> list[Any]:
        running = optuna.trial.create_trial(
            state=optuna.trial.TrialState.RUNNING, params={}, distributions={}
        )
        return [running, running]

    def tell(self, number: int, **_: Any) -> None:
        self.told.append(number)
        if number == 0:  # its worker recorded it between the read and the update
            raise optuna.exceptions.UpdateFinishedTrialError(f"Trial#{number} has finished.")


def test_a_trial_its_worker_finished_meanwhile_is_left_as_recorded() -> None:
    study = _RacingStudy()
    results = [_Result({TRIAL_KEY: n, EPOCH_KEY: 1}) for n in (0, 1)]
    assert _mark_stopped(study, results, epochs=3) == 1
    assert study.told == [0, 1]
