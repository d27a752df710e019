"""Ways to score an architecture, behind one registry.

    >>> from evaluators import list_evaluators
    >>> list_evaluators()
    ['evonorm', 'standalone', 'supernet', 'tas']

``standalone`` trains every architecture from scratch (``train_standalone``);
``supernet`` trains one weight-sharing supernet with the BigNAS recipe
(``train_supernet``) and scores its children with inherited weights; ``tas`` searches a
pruned network by gradient per trial (``evaluators.tas_search``) and trains it by
distillation from a teacher the study shares (``evaluators.tas``). An evaluator from
another package is found through its entry point (group ``nas.evaluators``), its
``module:Class`` reference, or the ``@register_evaluator`` decorator.

Importing this package is cheap: the training code (and torch) loads on first use.
"""

from __future__ import annotations

import importlib
from typing import TYPE_CHECKING, Any

from evaluators.base import EvaluationContext, Evaluator, TrialSession
from evaluators.registry import (
    EVALUATORS,
    get_evaluator_class,
    list_evaluators,
    register_evaluator,
)

if TYPE_CHECKING:  # the real types for type checkers; imported lazily at run time
    from evaluators.calibration import CALIBRATION_SEED, preserved_rng, recalibrate_batch_norm
    from evaluators.standalone import (
        OPTIMIZERS,
        EpochReport,
        TrainingDiverged,
        TrainSettings,
        evaluate_accuracy,
        train_standalone,
    )
    from evaluators.supernet import (
        SupernetEpochReport,
        SupernetSettings,
        child_accuracy,
        inherited_accuracy,
        supernet_learning_rate,
        train_supernet,
    )

# Public names of the training modules, imported on first access (PEP 562).
_LAZY = {
    "CALIBRATION_SEED": "evaluators.calibration",
    "preserved_rng": "evaluators.calibration",
    "recalibrate_batch_norm": "evaluators.calibration",
    "OPTIMIZERS": "evaluators.standalone",
    "EpochReport": "evaluators.standalone",
    "TrainingDiverged": "evaluators.standalone",
    "TrainSettings": "evaluators.standalone",
    "evaluate_accuracy": "evaluators.standalone",
    "train_standalone": "evaluators.standalone",
    "SupernetEpochReport": "evaluators.supernet",
    "SupernetSettings": "evaluators.supernet",
    "child_accuracy": "evaluators.supernet",
    "inherited_accuracy": "evaluators.supernet",
    "supernet_learning_rate": "evaluators.supernet",
    "train_supernet": "evaluators.supernet",
}

__all__ = [
    "CALIBRATION_SEED",
    "EVALUATORS",
    "OPTIMIZERS",
    "EpochReport",
    "EvaluationContext",
    "Evaluator",
    "SupernetEpochReport",
    "SupernetSettings",
    "TrainSettings",
    "TrainingDiverged",
    "TrialSession",
    "child_accuracy",
    "evaluate_accuracy",
    "get_evaluator_class",
    "inherited_accuracy",
    "list_evaluators",
    "preserved_rng",
    "recalibrate_batch_norm",
    "register_evaluator",
    "supernet_learning_rate",
    "train_standalone",
    "train_supernet",
]


def __getattr__(name: str) -> Any:
    if name in _LAZY:
        return getattr(importlib.import_module(_LAZY[name]), name)
    raise AttributeError(f"module 'evaluators' has no attribute {name!r}")
