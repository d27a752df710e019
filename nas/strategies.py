"""Search strategies (Optuna samplers) and pruners, looked up by their config names."""

from __future__ import annotations

from typing import TYPE_CHECKING, Literal

import numpy as np

from nas.errors import unknown_choice

if TYPE_CHECKING:
    import optuna

    from nas.config import SearchConfig

Direction = Literal["maximize", "minimize"]
DIRECTIONS: dict[str, Direction] = {
    "accuracy": "maximize",
    "flops": "minimize",
    "params": "minimize",
}


def directions(objectives: list[str]) -> list[Direction]:
    return [DIRECTIONS[name] for name in objectives]


def derive_seed(*parts: int) -> int:
    """A 32-bit seed that depends on every part (numpy's SeedSequence mixing)."""
    return int(np.random.SeedSequence(list(parts)).generate_state(1)[0])


def create_sampler(config: SearchConfig, *, resumed_trials: int) -> optuna.samplers.BaseSampler:
    """The sampler for ``config.strategy``.

    The sampler's seed also mixes in how many trials the study already holds: reseeding
    with the bare seed on resume would replay the first run's random proposals.
    """
    import optuna

    seed = derive_seed(config.seed, resumed_trials)
    multi = len(config.objectives) > 1
    if config.strategy == "tpe":
        return optuna.samplers.TPESampler(
            seed=seed, multivariate=True, group=True, constant_liar=True
        )
    if config.strategy == "random":
        return optuna.samplers.RandomSampler(seed=seed)
    if config.strategy == "nsga2" and multi:
        return optuna.samplers.NSGAIISampler(seed=seed, population_size=8)
    raise unknown_choice("strategy", config.strategy, ["tpe", "random", "nsga2"])


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
    raise unknown_choice(
        "pruner", config.pruner, ["none", "median", "hyperband", "successive_halving"]
    )
