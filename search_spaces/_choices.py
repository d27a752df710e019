"""Asking Optuna for one of a preset's choices, shared by the spaces with choice tables."""

from __future__ import annotations

import itertools
from collections.abc import Sequence
from typing import TYPE_CHECKING, cast

if TYPE_CHECKING:
    import optuna


def suggest_choice(trial: optuna.trial.BaseTrial, name: str, choices: Sequence[int]) -> int:
    """Ask for one of ``choices``; evenly spaced ones as an (ordered) int range.

    An ordered range lets TPE, NSGA-II, evolution and the coarse-to-fine sampler treat
    neighbouring widths as similar; a dimension with a single choice is not asked at all.
    """
    if len(choices) == 1:
        return choices[0]
    step = choices[1] - choices[0]
    if all(b - a == step for a, b in itertools.pairwise(choices)):
        return trial.suggest_int(name, choices[0], choices[-1], step=step)
    # Not coerced: a replayed answer is checked by `validate` like any stored value.
    return cast(int, trial.suggest_categorical(name, list(choices)))
