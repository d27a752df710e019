"""Evaluators a test names as ``evaluator=tests._plugins:Class``: plug-ins from "another
package", with no data and no training."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, ClassVar

import torch

from evaluators import Evaluator, TrialSession
from nas.core.errors import ArchitectureError, CandidateRejected, NasError
from nas.core.validation import check_number
from search_spaces import DifferentiableSpace


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


# A search by gradient: the architecture is learned, then derived, not sampled.
class _Mixture(torch.nn.Module):
    """y = sum_k softmax(alpha)_k * gain_k * x over three candidate ops (gains 1, 2, 3)."""

    gains = (1.0, 2.0, 3.0)

    def __init__(self) -> None:
        super().__init__()
        self.alpha = torch.nn.Parameter(torch.zeros(3))
        self.active: int | None = None

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        gains = torch.tensor(self.gains)
        if self.active is not None:
            return gains[self.active] * x
        return (self.alpha.softmax(0) * gains).sum() * x

    def set_active(self, arch: Any) -> None:
        self.active = arch["op"]

    def set_regularization(self, **rates: float) -> None:
        pass

    def extract(self, arch: Any) -> torch.nn.Module:
        child = _Mixture()
        child.set_active(arch)
        return child

    def arch_parameters(self) -> list[torch.nn.Parameter]:
        return [self.alpha]

    def derive(self) -> dict[str, int]:
        return {"op": int(self.alpha.argmax())}


class PickOneOp(DifferentiableSpace[dict[str, int]]):
    """One choice among three ops, searched by gradient."""

    name: ClassVar[str] = "pick_one_op"
    capabilities: ClassVar[frozenset[str]] = frozenset()

    def sample(self, trial: Any) -> dict[str, int]:
        return {"op": trial.suggest_categorical("op", [0, 1, 2])}

    def encode(self, arch: dict[str, int]) -> dict[str, Any]:
        return dict(arch)

    def decode(self, data: Any) -> dict[str, int]:
        if not isinstance(data, dict) or set(data) != {"op"}:
            raise ArchitectureError(f"not a pick_one_op architecture: {data!r:.60}")
        self.validate(data)
        return dict(data)

    def validate(self, arch: dict[str, int]) -> None:
        if arch.get("op") not in (0, 1, 2):
            raise ArchitectureError(f"op must be 0, 1 or 2, got {arch!r:.60}")

    def supernet(self, data: Any) -> torch.nn.Module:
        return _Mixture()

    def largest(self) -> dict[str, int]:
        return {"op": 2}

    def smallest(self) -> dict[str, int]:
        return {"op": 0}


class LearnTheOp(Evaluator[Any]):
    """Learns the mixture's weights by gradient to make y = 3x, then derives the op."""

    name: ClassVar[str] = "learn_the_op"
    needs_data: ClassVar[bool] = False
    derives_architecture: ClassVar[bool] = True

    def derive(self, trial: TrialSession, suggest: Any) -> Any:
        torch.manual_seed(trial.seed)
        space = self.context.space
        assert isinstance(space, DifferentiableSpace)
        mixture = space.supernet(None)  # type: ignore[arg-type]
        optimizer = torch.optim.SGD(mixture.arch_parameters(), lr=0.5)
        for _ in range(50):
            x = torch.randn(16)
            loss = (mixture(x) - 3 * x).pow(2).mean()
            optimizer.zero_grad()
            loss.backward()
            optimizer.step()
        return mixture.derive()

    def evaluate(self, arch: Any, trial: TrialSession) -> dict[str, float]:
        return {"accuracy": _Mixture.gains[arch["op"]] / 3}


class CountEvaluations(Evaluator[Any]):
    """Scores pick_one_op architectures by their op, counting the evaluations it runs."""

    name: ClassVar[str] = "count_evaluations"
    needs_data: ClassVar[bool] = False
    evaluated: ClassVar[list[int]] = []

    def evaluate(self, arch: Any, trial: TrialSession) -> dict[str, float]:
        CountEvaluations.evaluated.append(trial.number)
        return {"accuracy": _Mixture.gains[arch["op"]] / 3, "params": float(arch["op"])}
