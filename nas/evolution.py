"""ViT-ResNAS's evolutionary search as an Optuna sampler, for every search space.

The search of Liao et al., "Searching for Efficient Multi-Stage Vision Transformers"
(2021): a first population of random architectures; after it, each child is bred from
the best ``parents`` networks of the whole history, either by mutation (a parent drawn
uniformly from them; each choice redrawn uniformly with probability ``mutation_prob``)
or by crossover (two distinct parents; each choice from the second with probability
1/2). A child must differ from every network already tried, and a child whose size is
outside the budget (FLOPs in ``[flops_floor * max_flops, max_flops]``, parameters at
most ``max_params``) is redrawn before it is ever evaluated. The paper: a population
of 500, then 20 iterations of 75 mutations and 75 crossovers from the top 75.

EvoNorm's search (Liu et al., 2020) selects by tournament instead
(``selection=tournament``): the population is the latest ``population_size`` scored
trials (older ones age out, as in regularized evolution), and each parent is the
winner of ``tournament_size`` of them drawn at random (a random Pareto-optimal one with
several objectives); its mutation redraws exactly one choice (``mutation=one``: one
node's primitive or input). With either selection, a child is new by its parameters
and by the space's ``equivalence_key`` (EvoNorm's graph hash), so a mutation of a dead
node is redrawn rather than trained again, and so is a child the space refuses
(``validate``), which costs nothing to find out.

In trial terms: trial ``n`` is random while ``n < population_size`` (``n`` counts every
earlier trial, running ones too, so workers that start together do not all stay
random), and bred afterwards (random still while no trial has completed); its parents
are the best complete trials of the study (:func:`top_parents`). Everything is read
from the study's trials, so the search resumes, and serves several worker processes or
Ray, like the other samplers; only a trial's proposal, made at its first
``suggest_*``, is held in memory until it ends.

Why not Optuna's ``NSGAIISampler`` (checked against Optuna 5.1's source):

* Parents. Its pool is generational: the elite (non-dominated rank, then crowding
  distance) of the previous generation's complete trials plus the previous pool,
  ``population_size`` of them, fixed when the generation first asks and stored in the
  study. With one objective that elite is the best ``population_size`` trials of the
  generations so far, a history-wide top-k; but the pool and a generation are both
  ``population_size`` trials (the paper breeds 150 children an iteration from 75
  parents), and a trial still running when a pool is fixed never enters any pool.
  Crossover parents are picked by binary tournament, not uniformly.
* Children. Crossover (probability ``crossover_prob``, 0.9 by default) and then
  mutation of the result (each parameter redrawn with ``mutation_prob``, by default
  1/number of parameters), not one or the other. Only the parameters every complete
  trial has (``IntersectionSearchSpace``) are inherited: in a define-by-run space a
  block that only some networks have is drawn at random every time. Nothing stops it
  proposing a network already tried.
* Budgets. Constraints are known only after evaluation (``constraints_func`` in
  ``after_trial``, or ``Trial.set_constraint``) and act through constrained domination
  when parents are chosen: an infeasible child is trained and scored, never redrawn.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Iterator, Mapping, Sequence
from typing import TYPE_CHECKING, Any, cast

import numpy as np
import optuna
from optuna.distributions import (
    BaseDistribution,
    CategoricalDistribution,
    FloatDistribution,
    IntDistribution,
)
from optuna.study import StudyDirection
from optuna.trial import FrozenTrial, TrialState

from nas import store
from nas.core.errors import ArchitectureError, NasError
from nas.core.pareto import non_dominated
from nas.strategies import EvolutionSettings

if TYPE_CHECKING:
    from nas.core.dataspec import DataSpec
    from search_spaces.base import SearchSpace

Choose = Callable[[str, BaseDistribution], Any]  # answers one suggest_* call
ParamsKey = tuple[tuple[str, Any], ...]
_FROM_SECOND_PARENT = 0.5  # crossover: the chance each choice comes from the second parent
_OTHER_VALUE_TRIES = 20  # mutation=one: draws to find a value other than the parent's


def params_key(params: Mapping[str, Any]) -> ParamsKey:
    """A hashable form of a trial's parameters: equal keys, the same network."""
    return tuple(sorted(params.items()))


class ProposalTrial:
    """A stand-in trial that ``space.sample`` asks; ``choose`` answers each new name.

    Like an Optuna trial, a name asked again gets its first answer; ``params`` holds them.
    """

    def __init__(self, choose: Choose) -> None:
        self._choose = choose
        self.params: dict[str, Any] = {}

    def suggest_categorical(self, name: str, choices: Sequence[Any]) -> Any:
        return self._ask(name, CategoricalDistribution(choices))

    def suggest_int(
        self, name: str, low: int, high: int, *, step: int = 1, log: bool = False
    ) -> int:
        return int(self._ask(name, IntDistribution(low, high, step=step, log=log)))

    def suggest_float(
        self, name: str, low: float, high: float, *, step: float | None = None, log: bool = False
    ) -> float:
        return float(self._ask(name, FloatDistribution(low, high, step=step, log=log)))

    def _ask(self, name: str, distribution: BaseDistribution) -> Any:
        if name not in self.params:
            self.params[name] = self._choose(name, distribution)
        return self.params[name]


def draw(distribution: BaseDistribution, rng: np.random.Generator) -> Any:
    """A uniform draw from ``distribution`` (log-uniform where it is ``log``)."""
    if isinstance(distribution, CategoricalDistribution):
        return distribution.choices[int(rng.integers(len(distribution.choices)))]
    if isinstance(distribution, IntDistribution):
        return _draw_int(distribution, rng)
    if isinstance(distribution, FloatDistribution):
        return _draw_float(distribution, rng)
    raise NotImplementedError(f"evolution cannot draw from {distribution!r}.")


def _draw_int(distribution: IntDistribution, rng: np.random.Generator) -> int:
    low, high = distribution.low, distribution.high
    if distribution.log:  # each integer owns the log-width of [i - 0.5, i + 0.5]
        value = round(math.exp(rng.uniform(math.log(low - 0.5), math.log(high + 0.5))))
        return min(max(value, low), high)
    return low + distribution.step * int(rng.integers((high - low) // distribution.step + 1))


def _draw_float(distribution: FloatDistribution, rng: np.random.Generator) -> float:
    low, high, step = distribution.low, distribution.high, distribution.step
    if step is not None:
        return min(low + step * int(rng.integers(round((high - low) / step) + 1)), high)
    if distribution.log:
        return min(math.exp(rng.uniform(math.log(low), math.log(high))), high)
    return float(rng.uniform(low, high))


def fits(distribution: BaseDistribution, value: Any) -> bool:
    """Whether ``value`` is one ``distribution`` can give (a parent's choice may not be:
    another block, another range)."""
    if isinstance(distribution, CategoricalDistribution):
        # Type too: 1, 1.0 and True are equal, but not the same choice.
        return any(type(c) is type(value) and c == value for c in distribution.choices)
    if isinstance(value, bool) or not isinstance(value, (int, float)):
        return False
    if isinstance(distribution, IntDistribution):
        return (
            isinstance(value, int)
            and distribution.low <= value <= distribution.high
            and (distribution.log or (value - distribution.low) % distribution.step == 0)
        )
    if isinstance(distribution, FloatDistribution):
        low, step = distribution.low, distribution.step
        return low <= value <= distribution.high and (
            step is None or math.isclose((value - low) / step, round((value - low) / step))
        )
    return False


def top_parents(
    trials: Sequence[FrozenTrial], directions: Sequence[StudyDirection], count: int
) -> list[FrozenTrial]:
    """The best ``count`` complete trials, best first, each network once.

    Least constraint violation first (``store.violation``; 0 when every budget is met);
    among equal violations, with several objectives, the Pareto fronts in turn
    (non-dominated sorting); then the first objective (accuracy) in its direction.
    Ties keep trial order.
    """
    complete = [t for t in trials if t.state == TrialState.COMPLETE and t.values]
    maximize = [d == StudyDirection.MAXIMIZE for d in directions]
    sign = 1.0 if maximize[0] else -1.0
    by_violation: dict[float, list[FrozenTrial]] = {}
    for trial in complete:
        by_violation.setdefault(store.violation(trial), []).append(trial)
    ranked: list[FrozenTrial] = []
    seen: set[ParamsKey] = set()
    for violation in sorted(by_violation):
        group = by_violation[violation]
        for front in pareto_fronts(group, maximize) if len(maximize) > 1 else [group]:
            for trial in sorted(front, key=lambda t: -sign * t.values[0]):
                key = params_key(trial.params)
                if key not in seen:  # a network evaluated twice (a retry) breeds once
                    seen.add(key)
                    ranked.append(trial)
            if len(ranked) >= count:
                return ranked[:count]
    return ranked


def pareto_fronts(
    trials: Sequence[FrozenTrial], maximize: Sequence[bool]
) -> Iterator[list[FrozenTrial]]:
    """Non-dominated sorting: the Pareto front of ``trials``, then that of the rest, ...

    A generator, so that ranking stops peeling fronts once it has enough parents.
    """
    remaining = list(trials)
    while remaining:
        front = set(non_dominated([t.values for t in remaining], maximize))
        yield [t for i, t in enumerate(remaining) if i in front]
        remaining = [t for i, t in enumerate(remaining) if i not in front]


class EvolutionSampler(optuna.samplers.BaseSampler):
    """ViT-ResNAS's evolution (Liao et al., 2021): see the module's documentation.

    Args:
        space: The study's search space; a proposal is a whole network, drawn by running
            ``space.sample`` on a :class:`ProposalTrial`.
        seed: Seed of the sampler's generator (``create_sampler`` mixes in the resumed
            trial count and the worker's stream).
        settings: ``evolution.*``.
        max_flops, max_params: Budgets (``constraints.*``) a child must meet before it
            is evaluated; checked when the space builds networks and the study stores its
            data spec (the size depends on the input), counted as the evaluator counts
            (``evaluators.costs.deployed_size``) on a network built on torch's meta
            device, which allocates no memory and computes nothing. A latency budget is
            left to the evaluator: it takes a real network on the real device.
    """

    def __init__(
        self,
        space: SearchSpace[Any],
        *,
        seed: int,
        settings: EvolutionSettings | None = None,
        max_flops: float | None = None,
        max_params: float | None = None,
    ) -> None:
        self._space = space
        self._settings = settings if settings is not None else EvolutionSettings()
        self._max_flops = max_flops
        self._max_params = max_params
        self._rng = np.random.default_rng(seed)
        self._proposals: dict[int, dict[str, Any]] = {}  # trial number -> its proposal
        self._proposal_keys: dict[int, str] = {}  # trial number -> its proposal's key
        self._trial_keys: dict[int, str | None] = {}  # the study's trials' keys, once each
        self._sizes: dict[ParamsKey, dict[str, float]] = {}  # counted once per network

    @property
    def settings(self) -> EvolutionSettings:
        return self._settings

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
        # Proposed at the first ask, not in before_trial: a queued trial (a retry, fixed
        # parameters) never asks, and would pay for a proposal it does not use.
        if trial.number not in self._proposals:
            self._proposals[trial.number] = self._propose(study, trial)
        proposal = self._proposals[trial.number]
        value = proposal.get(param_name)
        if param_name in proposal and fits(param_distribution, value):
            return value
        # The trial asks otherwise than the proposal did (fixed parameters change the
        # course of a define-by-run space): a uniform answer, as the paper's are.
        return draw(param_distribution, self._rng)

    def after_trial(
        self,
        study: optuna.Study,
        trial: FrozenTrial,
        state: TrialState,
        values: Sequence[float] | None,
    ) -> None:
        self._proposals.pop(trial.number, None)
        self._proposal_keys.pop(trial.number, None)

    def _propose(self, study: optuna.Study, trial: FrozenTrial) -> dict[str, Any]:
        """The parameters of a new network: random, mutated or crossed; new (by params
        and by the space's equivalence key) and within the budget if one of
        ``max_redraws`` draws is."""
        settings = self._settings
        history = [t for t in study.get_trials(deepcopy=False) if t.number != trial.number]
        tried = {params_key(t.params) for t in history if t.params}
        tried |= {params_key(p) for p in self._proposals.values()}  # this worker's running ones
        known = {self._known_key(t) for t in history} | set(self._proposal_keys.values())
        pool = self._breeding_pool(history, study.directions, trial.number)
        spec = self._size_spec(study)
        params: dict[str, Any] = {}
        for _ in range(settings.max_redraws):
            arch, params = self._candidate(pool, study.directions)
            key = self._key(arch, params)
            if params_key(params) in tried or key in known or not self._valid(arch):
                continue
            if self._within_budget(arch, params, spec):
                self._proposal_keys[trial.number] = key
                return params
        # None of the draws was new and within the budget: take the last one rather than
        # hang the search on a budget no network meets (or a space whose every network
        # was tried). The evaluator records its excess as the trial's violation, which
        # ranks it behind every feasible network; a repeat takes its earlier result
        # (reuse_results).
        return params

    def _breeding_pool(
        self, history: Sequence[FrozenTrial], directions: Sequence[StudyDirection], number: int
    ) -> list[FrozenTrial]:
        """Who may breed: nobody in the first population; else the best ``parents`` of
        the whole history (``selection=top``), or the latest ``population_size`` scored
        trials that tournaments draw from (``selection=tournament``)."""
        settings = self._settings
        if number < settings.population_size:
            return []
        if settings.selection == "top":
            return top_parents(history, directions, settings.parents)
        scored = [t for t in history if t.state == TrialState.COMPLETE and t.values]
        return sorted(scored, key=lambda t: t.number)[-settings.population_size :]

    def _pick(
        self, pool: Sequence[FrozenTrial], directions: Sequence[StudyDirection]
    ) -> FrozenTrial:
        """A parent: uniform among the top ones, or a tournament's winner (a random one
        of the Pareto-optimal trials among ``tournament_size`` drawn from the pool)."""
        if self._settings.selection == "top":
            return pool[int(self._rng.integers(len(pool)))]
        size = min(self._settings.tournament_size, len(pool))
        drawn = [pool[int(i)] for i in self._rng.choice(len(pool), size=size, replace=False)]
        maximize = [d == StudyDirection.MAXIMIZE for d in directions]
        winners = non_dominated([t.values for t in drawn], maximize)
        return drawn[int(winners[int(self._rng.integers(len(winners)))])]

    def _candidate(
        self, pool: Sequence[FrozenTrial], directions: Sequence[StudyDirection]
    ) -> tuple[Any, dict[str, Any]]:
        """One draw, the network and its parameters: random without parents, else a
        crossover with ``crossover_prob``, a mutant otherwise. Chosen anew for each draw,
        so that two parents too alike to give a new child do not stall a trial."""
        choose: Choose
        if not pool:
            choose = self._random
        elif len(pool) >= 2 and self._rng.random() < self._settings.crossover_prob:
            first = self._pick(pool, directions)
            others = [t for t in pool if t.number != first.number]
            choose = self._crossing(first.params, self._pick(others, directions).params)
        else:
            choose = self._mutating(self._pick(pool, directions).params)
        proposal = ProposalTrial(choose)
        # Spaces only ever call suggest_*, which a ProposalTrial answers.
        arch = self._space.sample(cast("optuna.trial.BaseTrial", proposal))
        return arch, proposal.params

    def _valid(self, arch: Any) -> bool:
        """Whether the space accepts ``arch`` (EvoNorm refuses graphs whose output ignores
        x): a child it would refuse at once is redrawn, like one outside the budget."""
        try:
            self._space.validate(arch)
        except ArchitectureError:
            return False
        return True

    def _key(self, arch: Any, params: Mapping[str, Any]) -> str:
        """What ``arch`` computes, by the space's equivalence key (its parameters where
        the space cannot key it)."""
        try:
            return self._space.equivalence_key(arch)
        except NasError:
            return repr(params_key(params))

    def _known_key(self, trial: FrozenTrial) -> str | None:
        """The equivalence key of a trial of the study, computed once per trial: from
        its stored architecture (untrusted: decoded), else by replaying its parameters
        through the space; None where neither gives a network."""
        if trial.number not in self._trial_keys:
            key = self._stored_key(trial)
            if key is None and trial.state == TrialState.RUNNING:
                return None  # a running trial may not have asked everything yet
            self._trial_keys[trial.number] = key
        return self._trial_keys[trial.number]

    def _stored_key(self, trial: FrozenTrial) -> str | None:
        try:
            if "arch" in trial.user_attrs:
                return self._space.equivalence_key(self._space.decode(trial.user_attrs["arch"]))
            params = trial.params

            def replay(name: str, distribution: BaseDistribution) -> Any:
                if name not in params or not fits(distribution, params[name]):
                    raise KeyError(name)
                return params[name]

            arch = self._space.sample(cast("optuna.trial.BaseTrial", ProposalTrial(replay)))
            return self._space.equivalence_key(arch)
        except (KeyError, NasError):
            return None

    def _random(self, name: str, distribution: BaseDistribution) -> Any:
        return draw(distribution, self._rng)

    def _mutating(self, parent: Mapping[str, Any]) -> Choose:
        """Keep the parent's choices but redraw each with ``mutation_prob``
        (``mutation=each``), or exactly one of them to another value (``mutation=one``);
        a choice the parent lacks (a block only the child has) is drawn."""
        one = self._settings.mutation == "one"
        names = sorted(parent)
        target = names[int(self._rng.integers(len(names)))] if one and names else None

        def choose(name: str, distribution: BaseDistribution) -> Any:
            value = parent.get(name)
            if name not in parent or not fits(distribution, value):
                return draw(distribution, self._rng)
            if name == target:
                return self._other_value(distribution, value)
            if not one and self._rng.random() < self._settings.mutation_prob:
                return draw(distribution, self._rng)
            return value

        return choose

    def _other_value(self, distribution: BaseDistribution, value: Any) -> Any:
        """A uniform draw from ``distribution`` other than ``value`` where it has another."""
        for _ in range(_OTHER_VALUE_TRIES):
            drawn = draw(distribution, self._rng)
            if drawn != value:
                return drawn
        return value

    def _crossing(self, first: Mapping[str, Any], second: Mapping[str, Any]) -> Choose:
        """Each choice from one parent or the other (from the other where one lacks it;
        drawn where both do)."""

        def choose(name: str, distribution: BaseDistribution) -> Any:
            swap = self._rng.random() < _FROM_SECOND_PARENT
            for parent in (second, first) if swap else (first, second):
                if name in parent and fits(distribution, parent[name]):
                    return parent[name]
            return draw(distribution, self._rng)

        return choose

    def _size_spec(self, study: optuna.Study) -> DataSpec | None:
        """The input that sizes are counted for, or None when there is nothing to check
        (no budget, a space that builds no network, a study with no data spec)."""
        if self._max_flops is None and self._max_params is None:
            return None
        if not self._space.can("build") or store.ATTR_DATA_SPEC not in study.user_attrs:
            return None
        return store.read_data_spec(study)

    def _within_budget(self, arch: Any, params: dict[str, Any], spec: DataSpec | None) -> bool:
        if spec is None:
            return True
        size = self._size(arch, params, spec)
        if self._max_params is not None and size["params"] > self._max_params:
            return False
        if self._max_flops is None:
            return True
        floor = self._settings.flops_floor * self._max_flops
        return floor <= size["flops"] <= self._max_flops

    def _size(self, arch: Any, params: dict[str, Any], spec: DataSpec) -> dict[str, float]:
        """``params`` and ``flops`` of ``arch``'s network, counted once per network."""
        key = params_key(params)
        if key not in self._sizes:
            import torch

            from evaluators.costs import deployed_size

            # On the meta device: shapes only, so a candidate costs no memory and no
            # arithmetic; the counter's zero input follows the parameters there.
            with torch.device("meta"):
                model = self._space.build(arch, spec)
            self._sizes[key] = deployed_size(self._space, model, spec)
        return self._sizes[key]
