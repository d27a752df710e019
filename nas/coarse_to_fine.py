"""BigNAS's coarse-to-fine child selection as an Optuna sampler.

Coarse phase: sample skeletons (the space's ``skeleton_params()``: resolution, depth,
width) at random while the fine-grained choices (kernel size, expansion) sit at their
middle value. Fine phase: start from the best feasible trial so far and mutate around it:
fine-grained choices are redrawn with probability ``mutation_prob``, skeleton choices move
to a neighbouring value with half that probability.

Feasibility comes from the trial's ``constraint`` user attribute (values <= 0 are met),
the same values Optuna's ``constraints_func`` reads.
"""

from __future__ import annotations

from collections.abc import Collection, Sequence
from typing import Any

import numpy as np
import optuna
from optuna.distributions import BaseDistribution, CategoricalDistribution, IntDistribution
from optuna.trial import FrozenTrial, TrialState

from nas.store import violation


def best_feasible(trials: Sequence[FrozenTrial]) -> FrozenTrial | None:
    """The most accurate trial among the least-violating ones (first objective maximised)."""
    complete = [t for t in trials if t.state == TrialState.COMPLETE and t.values]
    if not complete:
        return None
    least = min(violation(t) for t in complete)
    return max((t for t in complete if violation(t) == least), key=lambda t: t.values[0])


class CoarseToFineSampler(optuna.samplers.BaseSampler):
    """Skeletons first, then local mutation of the best child (BigNAS, Section 3.3)."""

    def __init__(
        self,
        *,
        skeleton: Collection[str],
        coarse_trials: int,
        seed: int,
        mutation_prob: float = 0.3,
    ) -> None:
        self._skeleton = frozenset(skeleton)
        self._coarse_trials = coarse_trials
        self._rng = np.random.default_rng(seed)
        self._mutation_prob = mutation_prob
        self._parents: dict[int, FrozenTrial | None] = {}  # trial number -> trial it mutates

    def infer_relative_search_space(
        self, study: optuna.Study, trial: FrozenTrial
    ) -> dict[str, BaseDistribution]:
        return {}

    def sample_relative(
        self, study: optuna.Study, trial: FrozenTrial, search_space: dict[str, BaseDistribution]
    ) -> dict[str, Any]:
        return {}

    def sample_independent(
        self,
        study: optuna.Study,
        trial: FrozenTrial,
        param_name: str,
        param_distribution: BaseDistribution,
    ) -> Any:
        choices = _choices(param_distribution)
        if trial.number not in self._parents:  # one parent per trial, chosen at its first ask
            trials = study.get_trials(deepcopy=False, states=(TrialState.COMPLETE,))
            enough = len(trials) >= self._coarse_trials
            self._parents[trial.number] = best_feasible(trials) if enough else None
        best = self._parents[trial.number]
        if best is None:  # coarse phase
            if param_name in self._skeleton:
                return choices[int(self._rng.integers(len(choices)))]
            return choices[len(choices) // 2]
        current = best.params.get(param_name)
        if current not in choices:  # e.g. a block deeper than the best child has
            return choices[int(self._rng.integers(len(choices)))]
        if param_name in self._skeleton:
            if self._rng.random() < self._mutation_prob / 2:
                index = choices.index(current) + int(self._rng.choice([-1, 1]))
                return choices[min(max(index, 0), len(choices) - 1)]
            return current
        if self._rng.random() < self._mutation_prob:
            return choices[int(self._rng.integers(len(choices)))]
        return current


def _choices(distribution: BaseDistribution) -> list[Any]:
    if isinstance(distribution, CategoricalDistribution):
        return list(distribution.choices)
    if isinstance(distribution, IntDistribution) and not distribution.log:
        return list(range(distribution.low, distribution.high + 1, distribution.step))
    raise NotImplementedError(
        f"coarse_to_fine handles categorical and integer parameters, not {distribution!r}."
    )
