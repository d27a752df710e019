"""BigNAS's coarse-to-fine child selection as an Optuna sampler.

Coarse phase: sample skeletons (the space's ``skeleton_params()``: resolution, depth,
width) at random, each skeleton at most once, while the fine-grained choices (kernel
size, expansion) sit at their middle value. It lasts ``coarse_trials`` trials, or until
every skeleton has been tried. Fine phase: start from the best feasible trial so far and
mutate around it: fine-grained choices are redrawn with probability ``mutation_prob``,
skeleton choices move to a neighbouring value with half that probability.

Feasibility comes from the trial's ``constraint`` user attribute (values <= 0 are met),
the same values Optuna's ``constraints_func`` reads.
"""

from __future__ import annotations

import itertools
import math
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
        self._skeletons: dict[int, dict[str, Any]] = {}  # coarse trial -> its unseen skeleton

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
            self._parents[trial.number] = self._parent(study, trial, param_name, choices)
        best = self._parents[trial.number]
        if best is None:  # coarse phase
            if param_name in self._skeleton:
                drawn = self._skeletons.get(trial.number, {}).get(param_name)
                return drawn if drawn in choices else choices[int(self._rng.integers(len(choices)))]
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

    def _parent(
        self, study: optuna.Study, trial: FrozenTrial, param_name: str, choices: list[Any]
    ) -> FrozenTrial | None:
        """The trial to mutate, or None for a coarse trial (then its skeleton is drawn)."""
        complete = study.get_trials(deepcopy=False, states=(TrialState.COMPLETE,))
        if len(complete) < self._coarse_trials:
            skeleton = self._unseen_skeleton(study, param_name, choices)
            if skeleton is not None:
                self._skeletons[trial.number] = skeleton
                return None
        # Enough skeletons, or none left untried (or nothing finished yet to mutate).
        return best_feasible(complete) if complete else None

    def _unseen_skeleton(
        self, study: optuna.Study, param_name: str, choices: list[Any]
    ) -> dict[str, Any] | None:
        """A skeleton no trial has had yet, drawn uniformly; None when all were tried.

        The choices of the skeleton parameters are read from earlier trials (the first
        trial knows only the parameter being asked, and its skeleton is unseen anyway).
        """
        known: dict[str, list[Any]] = {}
        trials = study.get_trials(deepcopy=False)
        for other in trials:
            for name, distribution in other.distributions.items():
                if name in self._skeleton:
                    known.setdefault(name, _choices(distribution))
        if param_name in self._skeleton:
            known.setdefault(param_name, choices)
        names = sorted(known)
        seen = {tuple(t.params.get(n) for n in names) for t in trials if t.params}
        combinations = math.prod(len(known[n]) for n in names)
        if combinations <= _ENUMERATE_UP_TO:
            unseen = [c for c in itertools.product(*(known[n] for n in names)) if c not in seen]
            if not unseen:
                return None
            return dict(zip(names, unseen[int(self._rng.integers(len(unseen)))], strict=True))
        for _ in range(_RANDOM_TRIES):  # too many to list: draw until one is new
            drawn = tuple(known[n][int(self._rng.integers(len(known[n])))] for n in names)
            if drawn not in seen:
                return dict(zip(names, drawn, strict=True))
        return None


_ENUMERATE_UP_TO = 100_000  # skeletons listed outright up to this many
_RANDOM_TRIES = 1_000


def _choices(distribution: BaseDistribution) -> list[Any]:
    if isinstance(distribution, CategoricalDistribution):
        return list(distribution.choices)
    if isinstance(distribution, IntDistribution) and not distribution.log:
        return list(range(distribution.low, distribution.high + 1, distribution.step))
    raise NotImplementedError(
        f"coarse_to_fine handles categorical and integer parameters, not {distribution!r}."
    )
