"""Search strategies (Optuna samplers) and pruners, looked up by their config names."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any, Literal

from nas.config import PRUNERS
from nas.core.errors import ConfigError, unknown_choice
from nas.core.seeds import derive_seed

if TYPE_CHECKING:
    import optuna

    from nas.config import SearchConfig
    from nas.early_stopping import CurveStopper
    from search_spaces.base import SearchSpace

Direction = Literal["maximize", "minimize"]
DIRECTIONS: dict[str, Direction] = {
    "accuracy": "maximize",
    "flops": "minimize",
    "params": "minimize",
    "latency": "minimize",
}


def directions(objectives: list[str]) -> list[Direction]:
    return [DIRECTIONS[name] for name in objectives]


def constraint_values(trial: optuna.trial.FrozenTrial) -> list[float]:
    """Optuna's ``constraints_func``: the trial's stored budget excesses (<= 0 is met)."""
    return [float(v) for v in trial.user_attrs.get("constraint", [])]


def create_sampler(
    config: SearchConfig, *, resumed_trials: int, space: SearchSpace[Any], stream: int = 0
) -> optuna.samplers.BaseSampler:
    """The sampler for ``config.strategy``.

    The sampler's seed also mixes in how many trials the study already holds: reseeding
    with the bare seed on resume would replay the first run's random proposals. Workers
    that start together see the same count, so each passes its own ``stream`` too, or
    they would all propose the same architectures.
    """
    import optuna

    seed = (
        derive_seed(config.seed, resumed_trials, stream)
        if stream
        else derive_seed(config.seed, resumed_trials)
    )
    multi = len(config.objectives) > 1
    constrained = any(v is not None for v in vars(config.constraints).values())
    constraints_func = constraint_values if constrained else None
    if config.strategy == "tpe":
        return optuna.samplers.TPESampler(
            seed=seed,
            multivariate=True,
            group=True,
            constant_liar=True,
            constraints_func=constraints_func,
        )
    if config.strategy == "random":
        return optuna.samplers.RandomSampler(seed=seed)
    if config.strategy == "nsga2" and multi:
        return optuna.samplers.NSGAIISampler(
            seed=seed, population_size=8, constraints_func=constraints_func
        )
    if config.strategy == "coarse_to_fine":
        from nas.coarse_to_fine import CoarseToFineSampler

        skeleton = getattr(space, "skeleton_params", None)
        if skeleton is None:
            raise ConfigError(
                f"strategy=coarse_to_fine needs a space with skeleton parameters (bignas); "
                f"space={config.space} has none. Use strategy=tpe."
            )
        coarse = config.coarse_trials or max(1, config.trials // 2)
        return CoarseToFineSampler(skeleton=skeleton(), coarse_trials=coarse, seed=seed)
    raise unknown_choice("strategy", config.strategy, ["tpe", "random", "nsga2", "coarse_to_fine"])


def create_pruner(config: SearchConfig) -> optuna.pruners.BasePruner:
    """The pruner for ``config.pruner``; its warm-up scales with the epoch budget."""
    import optuna

    if config.pruner == "none":
        return optuna.pruners.NopPruner()
    if config.pruner == "median":
        # Early epochs of small nets are noisy: judge no trial before half its epochs.
        return optuna.pruners.MedianPruner(
            n_startup_trials=5, n_warmup_steps=max(1, config.epochs // 2)
        )
    if config.pruner == "hyperband":
        return optuna.pruners.HyperbandPruner(min_resource=1, max_resource=config.epochs)
    if config.pruner == "successive_halving":
        return optuna.pruners.SuccessiveHalvingPruner(min_resource=1)
    if config.pruner == "lcpfn":
        if len(config.objectives) > 1:  # the runner applies nas.early_stopping.pareto_target
            return optuna.pruners.NopPruner()
        from nas.early_stopping import LCPFNPruner

        return LCPFNPruner(
            config.epochs,
            create_curve_stopper(config),
            rank=config.lcpfn.rank,
            startup_trials=config.lcpfn.startup_trials,
        )
    raise unknown_choice("pruner", config.pruner, PRUNERS)


def create_curve_stopper(config: SearchConfig) -> CurveStopper:
    """The LC-PFN decision rule of ``pruner=lcpfn`` (shipped or ``lcpfn.weights`` network)."""
    from evaluators.lcpfn import CurvePredictor, load_lcpfn
    from nas.early_stopping import CurveStopper

    return CurveStopper(
        CurvePredictor(load_lcpfn(config.lcpfn.weights)),
        threshold=config.lcpfn.threshold,
        min_epochs=config.lcpfn.min_epochs,
    )
