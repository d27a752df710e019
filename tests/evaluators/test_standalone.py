"""Stand-alone training on digits: accuracy, callbacks, determinism, hooks, failures."""

from __future__ import annotations

import copy
import dataclasses
import math
from collections.abc import Callable
from typing import Any

import optuna
import pytest
import torch
from torch import nn
from torch.utils.data import Subset, TensorDataset

from evaluators import (
    EpochReport,
    TrainingDiverged,
    TrainSettings,
    evaluate_accuracy,
    train_standalone,
)
from nas.core.errors import ConfigError, NasError
from nas.data import DatasetSplits, load_dataset

CPU = torch.device("cpu")


@pytest.fixture(scope="module")
def digits() -> DatasetSplits:
    return load_dataset("digits")


def _cnn(seed: int = 0) -> nn.Sequential:
    torch.manual_seed(seed)
    return nn.Sequential(
        nn.Conv2d(1, 16, 3, padding=1),
        nn.BatchNorm2d(16),
        nn.ReLU(),  # (B, 16, 8, 8)
        nn.Conv2d(16, 32, 3, padding=1, stride=2),
        nn.BatchNorm2d(32),
        nn.ReLU(),  # (B, 32, 4, 4)
        nn.Dropout(0.1),  # exercises the seeded global generator
        nn.Flatten(),
        nn.Linear(32 * 4 * 4, 10),
    )


def _steps_per_epoch(data: DatasetSplits, batch_size: int = 64) -> int:
    return math.ceil(data.num_train / batch_size)


def test_small_cnn_learns_digits_and_reports_every_epoch(digits: DatasetSplits) -> None:
    reports: list[EpochReport] = []
    steps: list[tuple[int, int]] = []
    curve = train_standalone(
        _cnn(),
        digits,
        TrainSettings(lr=0.1),
        epochs=3,
        device=CPU,
        seed=1,
        on_epoch=reports.append,
        on_step=lambda step, total: steps.append((step, total)),
    )
    assert len(curve) == 3
    assert curve[-1] > 0.9  # about 0.97 in practice
    assert [report.epoch for report in reports] == [1, 2, 3]
    assert all(report.epochs == 3 for report in reports)
    assert [report.val_accuracy for report in reports] == curve
    assert all(0 < report.train_loss < 5 and report.seconds >= 0 for report in reports)
    assert reports[-1].train_loss < reports[0].train_loss
    per_epoch = _steps_per_epoch(digits)
    assert steps == [(step, per_epoch) for step in range(1, per_epoch + 1)] * 3


@pytest.mark.parametrize("optimizer", ["sgd", "adamw"])
def test_same_init_and_seed_give_the_same_curve(digits: DatasetSplits, optimizer: str) -> None:
    settings = TrainSettings(optimizer=optimizer, lr=0.05 if optimizer == "sgd" else 3e-3)
    model = _cnn()
    twins = [copy.deepcopy(model) for _ in range(3)]
    curves = [
        train_standalone(twin, digits, settings, epochs=2, device=CPU, seed=seed)
        for twin, seed in zip(twins, (5, 5, 6), strict=True)
    ]
    assert curves[0] == curves[1]
    for ours, theirs in zip(twins[0].parameters(), twins[1].parameters(), strict=True):
        assert torch.equal(ours, theirs)
    # Another seed shuffles differently, so the weights part ways.
    assert not torch.equal(next(twins[0].parameters()), next(twins[2].parameters()))


class _Stop(Exception):
    pass


def _stop_at(report_number: int) -> Callable[[EpochReport], None]:
    """An ``on_epoch`` that interrupts training at that report, as Ctrl-C would."""

    def on_epoch(report: EpochReport) -> None:
        if report.epoch == report_number:
            raise _Stop

    return on_epoch


@pytest.mark.parametrize("error", [_Stop, optuna.TrialPruned, KeyboardInterrupt])
def test_exception_in_on_epoch_propagates_and_stops(
    digits: DatasetSplits, error: type[BaseException]
) -> None:
    epochs_seen: list[int] = []
    steps_run = 0

    def on_epoch(report: EpochReport) -> None:
        epochs_seen.append(report.epoch)
        if report.epoch == 2:
            raise error("stop here")

    def on_step(step: int, total: int) -> None:
        nonlocal steps_run
        steps_run += 1

    with pytest.raises(error, match="stop here"):
        train_standalone(
            _cnn(),
            digits,
            TrainSettings(),
            epochs=5,
            device=CPU,
            seed=0,
            on_epoch=on_epoch,
            on_step=on_step,
        )
    assert epochs_seen == [1, 2]
    assert steps_run == 2 * _steps_per_epoch(digits)


class _AuxNet(nn.Module):
    """A trunk with a main head and an auxiliary head, like NASNet's."""

    def __init__(self, auxiliary_weight: float) -> None:
        super().__init__()
        torch.manual_seed(0)
        self.trunk = nn.Sequential(nn.Flatten(), nn.Linear(64, 32), nn.ReLU())
        self.head = nn.Linear(32, 10)
        self.aux_head = nn.Linear(32, 10)
        self.auxiliary_weight = auxiliary_weight
        self.aux_logits: torch.Tensor | None = None
        self.progress: list[float] = []

    def set_training_progress(self, progress: float) -> None:
        self.progress.append(progress)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        features = self.trunk(x)
        self.aux_logits = self.aux_head(features) if self.training else None
        return self.head(features)


@pytest.mark.parametrize(("weight", "aux_trained"), [(0.4, True), (0.0, False)])
def test_auxiliary_loss_used_when_weighted(
    digits: DatasetSplits, weight: float, aux_trained: bool
) -> None:
    model = _AuxNet(weight)
    before = model.aux_head.weight.detach().clone()
    train_standalone(model, digits, TrainSettings(), epochs=1, device=CPU, seed=0)
    assert (not torch.equal(model.aux_head.weight, before)) is aux_trained


def test_set_training_progress_called_at_each_epoch_start(digits: DatasetSplits) -> None:
    model = _AuxNet(0.4)
    train_standalone(model, digits, TrainSettings(), epochs=4, device=CPU, seed=0)
    assert model.progress == [0.0, 0.25, 0.5, 0.75]


@pytest.mark.parametrize(
    ("overrides", "field"),
    [
        ({"batch_size": 0}, "batch_size"),
        ({"optimizer": "adam"}, "optimizer"),
        ({"lr": 0.0}, "lr"),
        ({"lr": -1.0}, "lr"),
        ({"lr": float("nan")}, "lr"),
        ({"momentum": 1.0}, "momentum"),
        ({"weight_decay": -1e-4}, "weight_decay"),
        ({"grad_clip": -1.0}, "grad_clip"),
        ({"label_smoothing": 1.0}, "label_smoothing"),
    ],
)
def test_invalid_settings(overrides: dict[str, Any], field: str) -> None:
    with pytest.raises(ConfigError, match=field) as error:
        TrainSettings(**overrides)
    assert "\n" not in str(error.value)


def test_adamw_without_momentum_and_plain_sgd_are_valid(digits: DatasetSplits) -> None:
    curve = train_standalone(
        _cnn(),
        digits,
        TrainSettings(momentum=0.0, grad_clip=0.0, label_smoothing=0.1),
        epochs=1,
        device=CPU,
        seed=0,
    )
    assert 0.0 <= curve[0] <= 1.0
    assert TrainSettings().as_dict()["optimizer"] == "sgd"


@pytest.mark.parametrize("epochs", [0, 2.0])
def test_invalid_epochs(digits: DatasetSplits, epochs: Any) -> None:
    with pytest.raises(ConfigError, match="epochs"):
        train_standalone(_cnn(), digits, TrainSettings(), epochs=epochs, device=CPU, seed=0)


def test_huge_learning_rate_diverges(digits: DatasetSplits) -> None:
    with pytest.raises(TrainingDiverged, match=r"lower lr=1e\+06") as error:
        train_standalone(
            _cnn(), digits, TrainSettings(lr=1e6, grad_clip=0.0), epochs=2, device=CPU, seed=0
        )
    assert isinstance(error.value, NasError)


class _NanNet(nn.Module):
    def __init__(self) -> None:
        super().__init__()
        self.linear = nn.Linear(64, 10)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.linear(x.flatten(1)) * float("nan")


def test_nan_output_diverges_at_first_step(digits: DatasetSplits) -> None:
    epochs: list[EpochReport] = []
    with pytest.raises(TrainingDiverged, match="nan at epoch 1 step 1;"):
        train_standalone(
            _NanNet(), digits, TrainSettings(), epochs=2, device=CPU, seed=0, on_epoch=epochs.append
        )
    assert epochs == []


class _Constant(nn.Module):
    """Always predicts class 3, whatever the input."""

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return nn.functional.one_hot(torch.full((x.shape[0],), 3), 10).float()


def test_evaluate_accuracy_counts_exactly_and_restores_mode() -> None:
    labels = torch.tensor([3, 3, 3, 1, 2, 3, 0, 3, 9, 3])
    dataset = TensorDataset(torch.zeros(10, 1, 2, 2), labels)
    model = _Constant()
    assert evaluate_accuracy(model, dataset, device=CPU, batch_size=3) == 0.6
    assert model.training
    with pytest.raises(NasError, match="empty"):
        evaluate_accuracy(model, TensorDataset(torch.zeros(0, 1), torch.zeros(0)), device=CPU)


def test_reports_within_epochs_leave_training_unchanged_and_resume(
    digits: DatasetSplits, tmp_path: Any
) -> None:
    settings = TrainSettings(lr=0.1)
    once = train_standalone(_cnn(), digits, settings, epochs=2, device=CPU, seed=5)
    reports: list[EpochReport] = []
    thrice = train_standalone(
        _cnn(),
        digits,
        settings,
        epochs=2,
        device=CPU,
        seed=5,
        reports_per_epoch=3,
        on_epoch=reports.append,
    )
    # Validating within an epoch does not change what is trained: every third report is
    # the end-of-epoch value of the run that reports once per epoch.
    assert len(thrice) == 6 and thrice[2::3] == once
    assert [(r.epoch, r.epochs) for r in reports] == [(k, 6) for k in range(1, 7)]

    path = tmp_path / "run.pt"
    run = {"epochs": 2, "device": CPU, "seed": 5, "reports_per_epoch": 3, "checkpoint": path}
    with pytest.raises(_Stop):
        train_standalone(_cnn(), digits, settings, **run, on_epoch=_stop_at(5))
    resumed: list[EpochReport] = []
    curve = train_standalone(_cnn(), digits, settings, **run, on_epoch=resumed.append)
    assert curve == thrice  # epoch 2 trained again from the checkpoint of epoch 1
    assert [r.epoch for r in resumed] == [4, 5, 6]
    with pytest.raises(NasError, match="reports_per_epoch=1000 exceeds the 23 steps"):
        train_standalone(
            _cnn(), digits, settings, epochs=1, device=CPU, seed=0, reports_per_epoch=1000
        )


@pytest.mark.parametrize("full_last_batch", [True, False])
def test_resume_after_an_epoch_is_exact_whether_or_not_the_last_batch_is_full(
    digits: DatasetSplits, tmp_path: Any, full_last_batch: bool
) -> None:
    # The sampler draws the next order from the data-order generator after its last
    # batch; a checkpoint written before that draw resumed a different data order.
    examples = 640 if full_last_batch else 650
    data = dataclasses.replace(
        digits, train=Subset(digits.train, range(examples)), num_train=examples
    )
    settings = TrainSettings(lr=0.1, batch_size=64)
    run = {"epochs": 3, "device": CPU, "seed": 2}
    model = _cnn()
    whole = train_standalone(model, data, settings, **run)
    path = tmp_path / "run.pt"
    with pytest.raises(_Stop):
        train_standalone(_cnn(), data, settings, **run, checkpoint=path, on_epoch=_stop_at(2))
    resumed_model = _cnn()
    assert train_standalone(resumed_model, data, settings, **run, checkpoint=path) == whole
    for name, value in model.state_dict().items():
        assert torch.equal(resumed_model.state_dict()[name], value), name
