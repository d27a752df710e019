"""Ways to score an architecture.

``train_standalone`` trains a freshly built network from scratch and reports its
validation accuracy after every epoch. ``train_supernet`` trains a weight-sharing
supernet with the BigNAS recipe, whose children are then scored without retraining
after ``recalibrate_batch_norm``.
"""

from __future__ import annotations

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
    inherited_accuracy,
    supernet_learning_rate,
    train_supernet,
)

__all__ = [
    "CALIBRATION_SEED",
    "OPTIMIZERS",
    "EpochReport",
    "SupernetEpochReport",
    "SupernetSettings",
    "TrainSettings",
    "TrainingDiverged",
    "evaluate_accuracy",
    "inherited_accuracy",
    "preserved_rng",
    "recalibrate_batch_norm",
    "supernet_learning_rate",
    "train_standalone",
    "train_supernet",
]
