"""Search strategies: Optuna samplers behind a registry, each with its typed settings.

``strategy=NAME`` picks one; its options are the config group of the same name
(``tpe.n_startup_trials=20``, ``nsga2.population_size=50``,
``coarse_to_fine.coarse_trials=10``, ``evolution.parents=20``), a dataclass that is also
the group's schema and the one place of its defaults. Another package adds one through
the ``nas.strategies`` entry point group or ``strategy=module:Class``.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, ClassVar, Literal

from nas.core.errors import ConfigError
from nas.core.registry import Registry
from nas.core.seeds import derive_seed
from nas.core.settings import NoSettings
from nas.core.validation import check_bool, check_choice, check_number, check_optional_number

if TYPE_CHECKING:
    import optuna

    from nas.config import SearchConfig
    from search_spaces.base import SearchSpace

Direction = Literal["maximize", "minimize"]
DIRECTIONS: dict[str, Direction] = {
    "accuracy": "maximize",
    "flops": "minimize",
    "params": "minimize",
    "latency": "minimize",
}


def directions(objectives: list[str]) -> list[Direction]:
    """Each objective's direction; ``accuracy@HOST`` (an accuracy on one of several
    networks, as EvoNorm's evaluator gives) is maximised like ``accuracy``."""
    return [DIRECTIONS[name.partition("@")[0]] for name in objectives]


def constraint_values(trial: optuna.trial.FrozenTrial) -> list[float]:
    """Optuna's ``constraints_func``: the trial's stored budget excesses (<= 0 is met)."""
    return [float(v) for v in trial.user_attrs.get("constraint", [])]


class Strategy:
    """A search strategy: builds the sampler of a study from its settings.

    Subclasses set ``name`` and ``Settings`` (their config group, named like the
    strategy) and say which studies they fit (``single_objective`` /
    ``multi_objective``).
    """

    name: ClassVar[str]
    Settings: ClassVar[type[Any]] = NoSettings
    single_objective: ClassVar[bool] = True
    multi_objective: ClassVar[bool] = True

    def sampler(
        self, settings: Any, config: SearchConfig, space: SearchSpace[Any], seed: int
    ) -> optuna.samplers.BaseSampler:
        raise NotImplementedError


STRATEGIES: Registry[Strategy] = Registry(
    kind="strategy", base=Strategy, builtins={}, group="nas.strategies"
)
register_strategy = STRATEGIES.register


def _constraints(config: SearchConfig) -> Any:
    constrained = any(v is not None for v in vars(config.constraints).values())
    return constraint_values if constrained else None


@dataclass(frozen=True)
class TPESettings:
    """``tpe.*``: Optuna's tree-structured Parzen estimator."""

    n_startup_trials: int = 10  # random trials before TPE models the results
    multivariate: bool = True  # model the choices jointly, not one by one
    group: bool = True  # define-by-run spaces: model each set of choices asked together
    constant_liar: bool = True  # running trials count as bad, so workers spread out

    def __post_init__(self) -> None:
        check_number("n_startup_trials", self.n_startup_trials, integer=True, low=0)
        for name in ("multivariate", "group", "constant_liar"):
            check_bool(name, getattr(self, name))


@register_strategy
class TPE(Strategy):
    """Tree-structured Parzen estimator (Optuna's TPESampler)."""

    name: ClassVar[str] = "tpe"
    Settings: ClassVar[type[TPESettings]] = TPESettings

    def sampler(
        self, settings: TPESettings, config: SearchConfig, space: SearchSpace[Any], seed: int
    ) -> optuna.samplers.BaseSampler:
        import optuna

        return optuna.samplers.TPESampler(
            seed=seed,
            n_startup_trials=settings.n_startup_trials,
            multivariate=settings.multivariate,
            group=settings.group,
            constant_liar=settings.constant_liar,
            constraints_func=_constraints(config),
        )


@register_strategy
class Random(Strategy):
    """Uniform random search (Optuna's RandomSampler)."""

    name: ClassVar[str] = "random"

    def sampler(
        self, settings: Any, config: SearchConfig, space: SearchSpace[Any], seed: int
    ) -> optuna.samplers.BaseSampler:
        import optuna

        return optuna.samplers.RandomSampler(seed=seed)


@dataclass(frozen=True)
class NSGA2Settings:
    """``nsga2.*``: Optuna's NSGA-II genetic algorithm."""

    population_size: int = 8  # trials per generation
    crossover_prob: float = 0.9  # chance a child is a crossover of two parents
    mutation_prob: float | None = None  # default: 1 / number of parameters

    def __post_init__(self) -> None:
        check_number("population_size", self.population_size, integer=True, low=2)
        check_number("crossover_prob", self.crossover_prob, low=0.0, high=1.0)
        check_optional_number("mutation_prob", self.mutation_prob, low=0.0, high=1.0)


@register_strategy
class NSGA2(Strategy):
    """NSGA-II evolution; a Pareto front with several objectives, a GA with one."""

    name: ClassVar[str] = "nsga2"
    Settings: ClassVar[type[NSGA2Settings]] = NSGA2Settings

    def sampler(
        self, settings: NSGA2Settings, config: SearchConfig, space: SearchSpace[Any], seed: int
    ) -> optuna.samplers.BaseSampler:
        import optuna

        return optuna.samplers.NSGAIISampler(
            seed=seed,
            population_size=settings.population_size,
            crossover_prob=settings.crossover_prob,
            mutation_prob=settings.mutation_prob,
            constraints_func=_constraints(config),
        )


@dataclass(frozen=True)
class CoarseToFineSettings:
    """``coarse_to_fine.*``: BigNAS's selection (nas.coarse_to_fine)."""

    coarse_trials: int | None = None  # skeleton trials; default trials/2 (at most all skeletons)
    mutation_prob: float = 0.3  # fine phase: chance to redraw a fine choice

    def __post_init__(self) -> None:
        check_optional_number("coarse_trials", self.coarse_trials, integer=True, low=1)
        check_number("mutation_prob", self.mutation_prob, low=0.0, high=1.0)


@register_strategy
class CoarseToFine(Strategy):
    """Skeletons first, then mutation around the best (BigNAS); needs skeleton_params()."""

    name: ClassVar[str] = "coarse_to_fine"
    Settings: ClassVar[type[CoarseToFineSettings]] = CoarseToFineSettings
    multi_objective: ClassVar[bool] = False

    def sampler(
        self,
        settings: CoarseToFineSettings,
        config: SearchConfig,
        space: SearchSpace[Any],
        seed: int,
    ) -> optuna.samplers.BaseSampler:
        from nas.coarse_to_fine import CoarseToFineSampler

        try:
            skeleton = space.skeleton_params()
        except NotImplementedError:
            raise ConfigError(
                f"strategy=coarse_to_fine needs a space with skeleton_params() (see "
                f"SearchSpace.skeleton_params); space={config.space} has none. Use strategy=tpe."
            ) from None
        return CoarseToFineSampler(
            skeleton=skeleton,
            coarse_trials=settings.coarse_trials or max(1, config.trials // 2),
            seed=seed,
            mutation_prob=settings.mutation_prob,
        )


SELECTIONS = ("top", "tournament")
MUTATIONS = ("each", "one")


@dataclass(frozen=True)
class EvolutionSettings:
    """``evolution.*``: the evolutionary search (nas.evolution); the comments give the
    values of ViT-ResNAS (Liao et al., 2021). EvoNorm's search (Liu et al., 2020) is
    ``selection=tournament mutation=one crossover_prob=0``."""

    population_size: int = 50  # random trials before evolution starts (paper: 500)
    # top: the best `parents` trials of the whole history breed (ViT-ResNAS);
    # tournament: the winner of `tournament_size` trials drawn from the latest
    # `population_size` scored ones breeds (EvoNorm; the oldest age out)
    selection: str = "top"
    parents: int = 10  # selection=top: best trials of the whole history (paper: 75)
    tournament_size: int = 5  # selection=tournament: trials drawn per tournament
    # each: a mutant redraws every choice with mutation_prob (ViT-ResNAS);
    # one: a mutant redraws exactly one choice (EvoNorm: one node's primitive or input)
    mutation: str = "each"
    mutation_prob: float = 0.3  # a mutant redraws each choice with this chance (paper: 0.3)
    crossover_prob: float = 0.5  # chance a child is a crossover, else a mutant (paper: 0.5)
    # Redraw children below this share of constraints.max_flops (paper: 0.975).
    flops_floor: float = 0.0
    max_redraws: int = 100  # draws per trial; then the last one is evaluated anyway

    def __post_init__(self) -> None:
        check_number("population_size", self.population_size, integer=True, low=1)
        check_number("parents", self.parents, integer=True, low=1)
        check_choice("selection", self.selection, SELECTIONS)
        check_number("tournament_size", self.tournament_size, integer=True, low=1)
        check_choice("mutation", self.mutation, MUTATIONS)
        check_number("mutation_prob", self.mutation_prob, low=0.0, high=1.0)
        check_number("crossover_prob", self.crossover_prob, low=0.0, high=1.0)
        check_number("flops_floor", self.flops_floor, low=0.0, high=1.0)
        check_number("max_redraws", self.max_redraws, integer=True, low=1)
        if self.selection == "top" and self.parents == 1 and self.crossover_prob > 0:
            raise ConfigError(
                "parents=1 leaves no pair to cross: use parents >= 2, or crossover_prob=0 "
                "for mutation only.",
                key="parents",
            )


@register_strategy
class Evolution(Strategy):
    """ViT-ResNAS's evolution (Liao et al., 2021): the best trials of the whole history
    breed by mutation or crossover; children outside the size budget are redrawn before
    they are evaluated. One objective or several (Pareto rank)."""

    name: ClassVar[str] = "evolution"
    Settings: ClassVar[type[EvolutionSettings]] = EvolutionSettings

    def sampler(
        self,
        settings: EvolutionSettings,
        config: SearchConfig,
        space: SearchSpace[Any],
        seed: int,
    ) -> optuna.samplers.BaseSampler:
        from nas.evolution import EvolutionSampler

        limits = config.constraints
        if settings.flops_floor > 0 and limits.max_flops is None:
            raise ConfigError(
                f"evolution.flops_floor={settings.flops_floor} is a share of "
                "constraints.max_flops, which is not set: set it, or drop evolution.flops_floor."
            )
        return EvolutionSampler(
            space,
            seed=seed,
            settings=settings,
            max_flops=limits.max_flops,
            max_params=limits.max_params,
        )


def strategy_settings(config: SearchConfig) -> Any:
    """The settings group of ``config.strategy``."""
    strategy = STRATEGIES.get(config.strategy)
    return getattr(config, strategy.name, NoSettings())


def create_sampler(
    config: SearchConfig, *, resumed_trials: int, space: SearchSpace[Any], stream: int = 0
) -> optuna.samplers.BaseSampler:
    """The sampler for ``config.strategy``.

    The sampler's seed also mixes in how many trials the study already holds: reseeding
    with the bare seed on resume would replay the first run's random proposals. Workers
    that start together see the same count, so each passes its own ``stream`` too, or
    they would all propose the same architectures.
    """
    seed = (
        derive_seed(config.seed, resumed_trials, stream)
        if stream
        else derive_seed(config.seed, resumed_trials)
    )
    strategy = STRATEGIES.get(config.strategy)()
    return strategy.sampler(strategy_settings(config), config, space, seed)
