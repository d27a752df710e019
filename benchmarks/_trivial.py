"""An evaluator that trains nothing, for benchmarks of the platform's own overhead.

Used as ``evaluator=_trivial:TrivialEvaluator`` by the benchmark scripts (their folder is
on ``sys.path`` when they run): every architecture scores 0.5 without data or torch.
"""

from __future__ import annotations

from typing import Any, ClassVar

from evaluators import Evaluator, TrialSession

REFERENCE = "_trivial:TrivialEvaluator"


class TrivialEvaluator(Evaluator[Any]):
    """Scores every architecture 0.5 at once."""

    name: ClassVar[str] = "trivial"
    needs_data: ClassVar[bool] = False

    def evaluate(self, arch: Any, trial: TrialSession) -> dict[str, float]:
        return {"accuracy": 0.5}
