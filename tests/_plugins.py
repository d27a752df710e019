"""Evaluators a test names as ``evaluator=tests._plugins:Class``: plug-ins from "another
package", with no data and no training."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, ClassVar

from evaluators import Evaluator, TrialSession
from nas.core.errors import CandidateRejected, NasError
from nas.core.validation import check_number


@dataclass(frozen=True)
class ScoreSettings:
    score: float = 0.5  # what every accepted architecture scores

    def __post_init__(self) -> None:
        check_number("score", self.score, low=0.0, high=1.0)


class RejectOddTrials(Evaluator[ScoreSettings]):
    """Rejects the candidates of odd trials by design; scores the others ``score``."""

    name: ClassVar[str] = "reject_odd"
    settings_group: ClassVar[str] = "scoring"
    Settings: ClassVar[type[ScoreSettings]] = ScoreSettings
    needs_data: ClassVar[bool] = False

    def evaluate(self, arch: Any, trial: TrialSession) -> dict[str, float]:
        if trial.number % 2:
            raise CandidateRejected(f"trial {trial.number} is odd")
        return {"accuracy": self.settings.score, "params": 1000.0 + trial.number}


class AlwaysFails(Evaluator[Any]):
    """Every trial fails with a user-caused error."""

    name: ClassVar[str] = "always_fails"
    needs_data: ClassVar[bool] = False

    def evaluate(self, arch: Any, trial: TrialSession) -> dict[str, float]:
        raise NasError("the lookup server is down")
