"""Ways to score an architecture.

``train_standalone`` trains a freshly built network from scratch and reports its
validation accuracy after every epoch.
"""

from __future__ import annotations

from evaluators.standalone import (
    OPTIMIZERS,
    EpochReport,
    TrainingDiverged,
    TrainSettings,
    evaluate_accuracy,
    train_standalone,
)

__all__ = ["OPTIMIZERS", "EpochReport", "TrainSettings", "TrainingDiverged",
           "evaluate_accuracy", "train_standalone"]
