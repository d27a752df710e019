"""ViT-ResNAS's evolutionary search as an Optuna sampler (nas.evolution)."""

from __future__ import annotations

import itertools
import zlib
from collections.abc import Mapping
from dataclasses import replace
from pathlib import Path
from typing import Any, ClassVar

import numpy as np
import optuna
import pytest
import torch
from optuna.distributions import CategoricalDistribution, IntDistribution
from optuna.study import StudyDirection
from optuna.trial import FrozenTrial, TrialState, create_trial

from evaluators.costs import deployed_size
from nas import store
from nas.config import compose_search
from nas.core.dataspec import DataSpec
from nas.core.errors import ConfigError
from nas.core.random_trial import RandomTrial
from nas.evolution import EvolutionSampler, params_key, top_parents
from nas.strategies import EvolutionSettings, create_sampler
from search_spaces import create_space
from search_spaces.base import SearchSpace

DIGITS = DataSpec(in_channels=1, num_classes=10, image_size=8)  # the embedded data set
MAXIMIZE = [StudyDirection.MAXIMIZE]
# Parents copied unchanged: every bred child equals a parent, which shows where it came from.
COPY = EvolutionSettings(
    population_size=6, parents=3, mutation_prob=0.0, crossover_prob=0.0, max_redraws=2
)

optuna.logging.set_verbosity(optuna.logging.WARNING)


def score(params: Mapping[str, Any]) -> float:
    """A cheap stand-in for accuracy: a fixed function of the choices, no training."""
    return float(sum(zlib.crc32(f"{name}={value}".encode()) % 97 for name, value in params.items()))


def search(
    space: SearchSpace[Any],
    sampler: EvolutionSampler,
    trials: int,
    *,
    storage: str | None = None,
    spec: DataSpec | None = DIGITS,
) -> optuna.Study:
    study = optuna.create_study(
        study_name="evo", storage=storage, load_if_exists=True, direction="maximize",
        sampler=sampler,
    )  # fmt: skip
    if spec is not None:  # as nas search records it
        study.set_user_attr(store.ATTR_DATA_SPEC, vars(spec).copy())

    def objective(trial: optuna.Trial) -> float:
        space.sample(trial)
        return score(trial.params)

    study.optimize(objective, n_trials=trials)
    return study


def parents_of(study: optuna.Study, number: int, count: int) -> list[FrozenTrial]:
    """The top parents trial ``number`` was bred from (everything before it was complete)."""
    return top_parents(study.trials[:number], study.directions, count)


class Chain(SearchSpace[tuple[str, ...]]):
    """Define-by-run: ``depth`` ops, so a deeper child asks for ops its parent lacks."""

    name: ClassVar[str] = "chain"
    capabilities: ClassVar[frozenset[str]] = frozenset()

    def sample(self, trial: optuna.trial.BaseTrial) -> tuple[str, ...]:
        depth = trial.suggest_int("depth", 1, 4)
        return tuple(trial.suggest_categorical(f"op{i}", ["a", "b", "c"]) for i in range(depth))

    def encode(self, arch: tuple[str, ...]) -> dict[str, Any]:
        return {"ops": list(arch)}

    def decode(self, data: Any) -> tuple[str, ...]:
        return tuple(data["ops"])

    def validate(self, arch: tuple[str, ...]) -> None:
        pass


def chain_trial(value: float, ops: str) -> FrozenTrial:
    params: dict[str, Any] = {"depth": len(ops), **{f"op{i}": op for i, op in enumerate(ops)}}
    distributions: dict[str, Any] = {"depth": IntDistribution(1, 4)}
    distributions |= {f"op{i}": CategoricalDistribution(["a", "b", "c"]) for i in range(len(ops))}
    return create_trial(value=value, params=params, distributions=distributions)


def chain_study(settings: EvolutionSettings, parents: dict[str, float]) -> optuna.Study:
    """A study holding ``parents`` (ops -> score); new trials score 0, below them all."""
    sampler = EvolutionSampler(Chain(), seed=0, settings=settings)
    study = optuna.create_study(direction="maximize", sampler=sampler)
    for ops, value in parents.items():
        study.add_trial(chain_trial(value, ops))
    return study


def zero(trial: optuna.Trial) -> float:
    Chain().sample(trial)
    return 0.0


def test_the_population_is_random_then_children_come_from_the_top_parents() -> None:
    space = create_space("bignas", preset="tiny")
    study = search(space, EvolutionSampler(space, seed=0, settings=COPY), trials=12)
    first = [params_key(t.params) for t in study.trials[:6]]
    assert len(set(first)) == 6  # random: none copies an earlier one, unlike every child
    for trial in study.trials[6:]:
        tops = [params_key(p.params) for p in parents_of(study, trial.number, 3)]
        assert params_key(trial.params) in tops


def test_mutants_keep_most_of_a_top_parents_choices() -> None:
    space = create_space("bignas", preset="tiny")
    settings = replace(COPY, mutation_prob=0.3, max_redraws=100)
    study = search(space, EvolutionSampler(space, seed=1, settings=settings), trials=14)
    for trial in study.trials[6:]:
        shared = max(
            sum(trial.params.get(name) == value for name, value in parent.params.items())
            / len(parent.params)
            for parent in parents_of(study, trial.number, 3)
        )
        assert 0.5 <= shared < 1.0  # close to a parent, yet new


def test_crossover_children_take_each_choice_from_one_of_two_top_parents() -> None:
    space = create_space("bignas", preset="tiny")
    settings = replace(COPY, crossover_prob=1.0, max_redraws=100)
    study = search(space, EvolutionSampler(space, seed=2, settings=settings), trials=14)
    for trial in study.trials[6:]:
        pairs = itertools.combinations(parents_of(study, trial.number, 3), 2)
        assert any(
            all(
                value in (a.params.get(name), b.params.get(name))
                or (name not in a.params and name not in b.params)
                for name, value in trial.params.items()
            )
            for a, b in pairs
        ), trial.params


def test_children_are_redrawn_until_within_the_budget() -> None:
    """Every trial's network, counted as the evaluator counts it, is within
    [flops_floor * max_flops, max_flops] and max_params, though random ones often are not."""
    space = create_space("bignas", preset="tiny")
    max_flops, floor, max_params = 1.5e6, 0.5, 45_000.0

    def size(arch: Any) -> dict[str, float]:  # on meta, as counted for the evaluator below
        with torch.device("meta"):
            return deployed_size(space, space.build(arch, DIGITS), DIGITS)

    rng = np.random.default_rng(0)
    unchecked = [size(space.sample(RandomTrial(rng))) for _ in range(6)]  # type: ignore[arg-type]
    assert any(not floor * max_flops <= s["flops"] <= max_flops for s in unchecked)
    settings = EvolutionSettings(population_size=4, parents=3, flops_floor=floor)
    sampler = EvolutionSampler(
        space, seed=3, settings=settings, max_flops=max_flops, max_params=max_params
    )
    study = search(space, sampler, trials=8)
    for trial in study.trials:
        counted = size(space.sample(optuna.trial.FixedTrial(trial.params)))
        assert floor * max_flops <= counted["flops"] <= max_flops
        assert counted["params"] <= max_params


def test_a_budget_no_network_meets_does_not_hang_the_search() -> None:
    space = create_space("bignas", preset="tiny")
    settings = replace(COPY, population_size=2, max_redraws=2)
    study = search(space, EvolutionSampler(space, seed=4, settings=settings, max_flops=1), 4)
    assert [t.state for t in study.trials] == [TrialState.COMPLETE] * 4


def test_no_size_check_without_a_data_spec(monkeypatch: pytest.MonkeyPatch) -> None:
    """A study that stores no data spec (an evaluator with no data) cannot size a network."""
    space = create_space("bignas", preset="tiny")

    def no_build(*_: Any) -> None:
        raise AssertionError("built a network")

    monkeypatch.setattr(space, "build", no_build)
    sampler = EvolutionSampler(space, seed=5, settings=COPY, max_flops=1)
    assert len(search(space, sampler, trials=3, spec=None).trials) == 3


def test_the_meta_device_counts_what_the_evaluator_counts() -> None:
    """The sampler sizes networks built on the meta device: no memory, no arithmetic."""
    space = create_space("bignas", preset="tiny")
    arch = space.sample(RandomTrial(np.random.default_rng(6)))  # type: ignore[arg-type]
    with torch.device("meta"):
        meta = space.build(arch, DIGITS)
    assert deployed_size(space, meta, DIGITS) == deployed_size(
        space, space.build(arch, DIGITS), DIGITS
    )


def test_a_resumed_search_breeds_from_the_stored_trials(tmp_path: Path) -> None:
    """A new sampler (a new seed, as create_sampler gives on resume) on the same store
    breeds from the stored population instead of starting a random one."""
    space = create_space("bignas", preset="tiny")
    url = f"sqlite:///{tmp_path / 'evo.db'}"
    search(space, EvolutionSampler(space, seed=7, settings=COPY), trials=6, storage=url)
    resumed = search(space, EvolutionSampler(space, seed=8, settings=COPY), 3, storage=url)
    assert len(resumed.trials) == 9
    tops = [params_key(t.params) for t in parents_of(resumed, 6, 3)]
    assert all(params_key(t.params) in tops for t in resumed.trials[6:])


def test_no_network_is_proposed_twice() -> None:
    space = create_space("nasnet")
    # Two parents, rarely mutated: children often repeat one, and are redrawn.
    settings = EvolutionSettings(population_size=5, parents=2, mutation_prob=0.1)
    study = search(space, EvolutionSampler(space, seed=9, settings=settings), trials=25)
    assert len({params_key(t.params) for t in study.trials}) == 25


def test_running_trials_count_towards_the_population() -> None:
    """Trials 0-2 are still running when trial 3 is asked: it is past the population, and
    with no complete parent yet it is drawn at random rather than waiting or failing."""
    space = Chain()
    sampler = EvolutionSampler(space, seed=10, settings=replace(COPY, population_size=3))
    study = optuna.create_study(direction="maximize", sampler=sampler)
    running = [study.ask() for _ in range(4)]
    for trial in running:
        space.sample(trial)
    assert len({params_key(t.params) for t in running}) == 4
    for trial in running:
        study.tell(trial, 0.0)
    assert sampler._proposals == {}  # kept only while a trial runs


def test_a_choice_only_one_parent_has_comes_from_that_parent() -> None:
    settings = replace(COPY, population_size=2, parents=2, crossover_prob=1.0, max_redraws=10)
    study = chain_study(settings, {"a": 1.0, "bc": 0.9})
    study.optimize(zero, n_trials=8)
    for trial in study.trials[2:]:
        assert trial.params["depth"] in (1, 2)
        assert trial.params["op0"] in ("a", "b")
        if trial.params["depth"] == 2:
            assert trial.params["op1"] == "c"


def test_a_choice_no_parent_has_is_drawn() -> None:
    """Mutants deeper than their parent draw the ops of the new blocks; a queued trial
    that fixes a depth the proposal lacks gets the rest drawn too."""
    settings = replace(COPY, population_size=1, parents=1, mutation_prob=0.5, max_redraws=10)
    study = chain_study(settings, {"a": 1.0})
    study.optimize(zero, n_trials=20)
    deeper = [t for t in study.trials[1:] if t.params["depth"] > 1]
    assert deeper and {t.params["op1"] for t in deeper} <= {"a", "b", "c"}
    assert len({t.params["op1"] for t in deeper}) > 1
    study.sampler = EvolutionSampler(Chain(), seed=11, settings=replace(settings, mutation_prob=0))
    study.enqueue_trial({"depth": 4})
    study.optimize(zero, n_trials=1)
    assert study.trials[-1].params.keys() == {"depth", "op0", "op1", "op2", "op3"}


def test_parents_rank_violation_then_pareto_front_then_accuracy() -> None:
    def trial(x: int, values: list[float], excess: float = 0.0) -> FrozenTrial:
        return create_trial(
            values=values, params={"x": x}, distributions={"x": IntDistribution(0, 9)},
            user_attrs={"constraint": [excess]},
        )  # fmt: skip

    # (accuracy, flops): 2 is dominated by 0 and 1; 4 is the most accurate but infeasible.
    trials = [
        trial(0, [0.9, 10]),
        trial(1, [0.8, 5]),
        trial(2, [0.7, 20]),
        trial(3, [0.95, 30]),
        trial(4, [0.99, 1], excess=5.0),
        trial(0, [0.9, 10]),  # the same network as the first: it breeds once
    ]
    best = top_parents(trials, [StudyDirection.MAXIMIZE, StudyDirection.MINIMIZE], 5)
    assert [t.params["x"] for t in best] == [3, 0, 1, 2, 4]
    assert [t.params["x"] for t in top_parents(trials, MAXIMIZE, 3)] == [3, 0, 1]
    assert [t.params["x"] for t in top_parents(trials, [StudyDirection.MINIMIZE], 2)] == [2, 1]


@pytest.mark.parametrize(
    ("options", "expected"),
    [
        ({"population_size": 0}, "population_size must be an integer >= 1"),
        ({"parents": 2.5}, "parents must be an integer >= 1"),
        ({"mutation_prob": 1.5}, "mutation_prob must be a number >= 0 and <= 1"),
        ({"crossover_prob": -0.1}, "crossover_prob must be a number >= 0 and <= 1"),
        ({"flops_floor": 2}, "flops_floor must be a number >= 0 and <= 1"),
        ({"max_redraws": 0}, "max_redraws must be an integer >= 1"),
        ({"parents": 1}, "parents=1 leaves no pair to cross"),
    ],
)
def test_bad_settings_are_one_line_errors(options: dict[str, Any], expected: str) -> None:
    with pytest.raises(ConfigError, match=expected) as info:
        EvolutionSettings(**options)
    assert "\n" not in str(info.value)


def test_bad_overrides_name_the_evolution_group() -> None:
    with pytest.raises(ConfigError, match=r"evolution\.parents must be an integer >= 1") as info:
        compose_search(["strategy=evolution", "evolution.parents=0"])
    assert "\n" not in str(info.value)
    config = compose_search(["space=bignas", "strategy=evolution", "evolution.flops_floor=0.9"])
    with pytest.raises(ConfigError, match=r"constraints\.max_flops, which is not set"):
        create_sampler(config, resumed_trials=0, space=create_space("bignas"))


@pytest.mark.parametrize("objectives", ["[accuracy]", "[accuracy,flops]"])
def test_create_sampler_builds_it_from_the_search_config(objectives: str) -> None:
    config = compose_search(
        ["space=bignas", "strategy=evolution", f"objectives={objectives}",
         "evolution.population_size=3", "evolution.parents=2", "constraints.max_params=1e9"]
    )  # fmt: skip
    space = create_space("bignas", **vars(config.model))
    sampler = create_sampler(config, resumed_trials=0, space=space)
    assert isinstance(sampler, EvolutionSampler)
    assert (sampler.settings.population_size, sampler.settings.parents) == (3, 2)
    directions = ["maximize"] + ["minimize"] * (len(config.objectives) - 1)
    study = optuna.create_study(directions=directions, sampler=sampler)

    def objective(trial: optuna.Trial) -> list[float]:
        space.sample(trial)
        return [score(trial.params), float(len(trial.params))][: len(directions)]

    study.optimize(objective, n_trials=6)
    assert len({params_key(t.params) for t in study.trials}) == 6


class Flat(SearchSpace[tuple[int, ...]]):
    """Six choices of four values; the last one changes nothing (a dead node), so the
    equivalence key leaves it out."""

    name: ClassVar[str] = "flat"
    capabilities: ClassVar[frozenset[str]] = frozenset()

    def sample(self, trial: optuna.trial.BaseTrial) -> tuple[int, ...]:
        return tuple(trial.suggest_categorical(f"c{i}", [0, 1, 2, 3]) for i in range(6))

    def encode(self, arch: tuple[int, ...]) -> dict[str, Any]:
        return {"choices": list(arch)}

    def decode(self, data: Any) -> tuple[int, ...]:
        return tuple(data["choices"])

    def validate(self, arch: tuple[int, ...]) -> None:
        pass

    def equivalence_key(self, arch: tuple[int, ...]) -> str:
        return str(arch[:5])


TOURNAMENT = EvolutionSettings(
    population_size=6, selection="tournament", tournament_size=3, mutation="one",
    crossover_prob=0.0,
)  # fmt: skip


def _differences(a: Mapping[str, Any], b: Mapping[str, Any]) -> int:
    return sum(a[name] != b[name] for name in a)


def test_tournament_mutants_change_one_choice_of_a_recent_trial() -> None:
    space = Flat()
    study = search(space, EvolutionSampler(space, seed=4, settings=TOURNAMENT), 20, spec=None)
    for trial in study.trials[6:]:
        recent = study.trials[trial.number - 6 : trial.number]  # the aging population
        assert min(_differences(trial.params, p.params) for p in recent) == 1


def test_a_child_equivalent_to_a_tried_network_is_redrawn() -> None:
    space = Flat()
    study = search(space, EvolutionSampler(space, seed=5, settings=TOURNAMENT), 24, spec=None)
    # Mutating the dead choice alone would repeat a network: every key is new.
    keys = [str(tuple(t.params[f"c{i}"] for i in range(5))) for t in study.trials]
    assert len(set(keys)) == len(keys)


def test_the_tournament_winner_is_pareto_optimal_among_those_drawn() -> None:
    settings = replace(TOURNAMENT, tournament_size=6)  # the whole population is drawn
    sampler = EvolutionSampler(Flat(), seed=0, settings=settings)
    study = optuna.create_study(directions=["maximize", "maximize"], sampler=sampler)
    distributions = {f"c{i}": CategoricalDistribution([0, 1, 2, 3]) for i in range(6)}
    scores = [(0.9, 0.1), (0.5, 0.5), (0.4, 0.4), (0.1, 0.9), (0.2, 0.2), (0.0, 0.0)]
    for i, values in enumerate(scores):
        params = {f"c{k}": (i + k) % 4 if i < 4 else i - 4 for k in range(6)}
        study.add_trial(
            create_trial(values=list(values), params=params, distributions=distributions)
        )
    front = [study.trials[n].params for n in (0, 1, 3)]
    for _ in range(10):  # asked, not told: the population stays the six above
        trial = study.ask()
        Flat().sample(trial)
        assert min(_differences(trial.params, p) for p in front) == 1
