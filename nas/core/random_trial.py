"""A stand-in for an Optuna trial that answers ``suggest_*`` from a seeded generator.

Search spaces only ever ask a trial for values, so code that needs random architectures
outside a study (a supernet trainer sampling children every step) hands the space one of
these instead of drawing random numbers inside the space.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import numpy as np


class RandomTrial:
    """Uniform answers to ``suggest_categorical`` / ``suggest_int`` / ``suggest_float``.

    The answers are recorded in ``params`` (like an Optuna trial's), so the same choices
    can be replayed with ``optuna.trial.FixedTrial(trial.params)``.
    """

    def __init__(self, rng: np.random.Generator) -> None:
        self._rng = rng
        self.params: dict[str, Any] = {}

    def suggest_categorical(self, name: str, choices: Sequence[Any]) -> Any:
        if not choices:
            raise ValueError(f"suggest_categorical('{name}') needs at least one choice.")
        value = choices[int(self._rng.integers(len(choices)))]
        self.params[name] = value
        return value

    def suggest_int(
        self, name: str, low: int, high: int, *, step: int = 1, log: bool = False
    ) -> int:
        if log:
            raise NotImplementedError("RandomTrial.suggest_int does not support log=True.")
        if low > high:
            raise ValueError(f"`low <= high` must hold, but got (low={low}, high={high}).")
        value = low + step * int(self._rng.integers((high - low) // step + 1))
        self.params[name] = value
        return value

    def suggest_float(self, name: str, low: float, high: float, **_: Any) -> float:
        value = float(self._rng.uniform(low, high))
        self.params[name] = value
        return value
