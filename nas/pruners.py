"""Pruners (Optuna's, and LC-PFN early stopping), looked up by their config names."""

from __future__ import annotations

from typing import TYPE_CHECKING

from nas.config import PRUNERS, report_steps
from nas.core.errors import unknown_choice

if TYPE_CHECKING:
    import optuna

    from nas.config import SearchConfig
    from nas.early_stopping import CurveStopper


def create_pruner(config: SearchConfig) -> optuna.pruners.BasePruner:
    """The pruner for ``config.pruner``; its warm-up scales with the epoch budget.

    A step is one validation report: an epoch, or a share of one with
    ``reports_per_epoch`` > 1.
    """
    import optuna

    steps = report_steps(config)
    if config.pruner == "none":
        return optuna.pruners.NopPruner()
    if config.pruner == "median":
        # Early epochs of small nets are noisy: judge no trial before half its epochs.
        return optuna.pruners.MedianPruner(n_startup_trials=5, n_warmup_steps=max(1, steps // 2))
    if config.pruner == "hyperband":
        return optuna.pruners.HyperbandPruner(min_resource=1, max_resource=steps)
    if config.pruner == "successive_halving":
        return optuna.pruners.SuccessiveHalvingPruner(min_resource=1)
    if config.pruner == "lcpfn":
        if len(config.objectives) > 1:  # the runner applies nas.early_stopping.pareto_target
            return optuna.pruners.NopPruner()
        from nas.early_stopping import LCPFNPruner

        return LCPFNPruner(
            steps,
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
