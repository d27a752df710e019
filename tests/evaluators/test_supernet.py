"""BigNAS supernet training on a toy elastic-width space: the sandwich step, inplace
distillation, where regularisation applies, the schedule, exact resume, checkpoint
reuse and refusal, divergence and settings validation."""

from __future__ import annotations

import copy
import itertools
import math
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any

import optuna
import pytest
import torch
import torch.nn.functional as F
from torch import nn
from torch.utils.data import Subset, TensorDataset

from evaluators import (
    CALIBRATION_SEED,
    SupernetEpochReport,
    SupernetSettings,
    TrainingDiverged,
    evaluate_accuracy,
    recalibrate_batch_norm,
    supernet_learning_rate,
    train_supernet,
)
from nas.core.checkpoint import CheckpointError, load_checkpoint, save_checkpoint
from nas.core.dataspec import DataSpec
from nas.core.errors import ArchitectureError, ConfigError
from nas.data import DatasetSplits, load_dataset
from search_spaces.base import WeightSharingSpace

CPU = torch.device("cpu")
WIDTHS = (4, 8)  # the elastic choices of both conv layers


# --- A toy weight-sharing space -------------------------------------------------------


@dataclass(frozen=True)
class ToyArch:
    width1: int
    width2: int


class ToyNet(nn.Module):
    """The static network of one child: conv-BN-ReLU twice, pooling, a linear head."""

    def __init__(self, arch: ToyArch, spec: DataSpec) -> None:
        super().__init__()
        self.conv1 = nn.Conv2d(spec.in_channels, arch.width1, 3, padding=1, bias=False)
        self.bn1 = nn.BatchNorm2d(arch.width1)
        self.conv2 = nn.Conv2d(arch.width1, arch.width2, 3, stride=2, padding=1, bias=False)
        self.bn2 = nn.BatchNorm2d(arch.width2)
        self.head = nn.Linear(arch.width2, spec.num_classes)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = F.relu(self.bn1(self.conv1(x)))
        x = F.relu(self.bn2(self.conv2(x)))
        return self.head(x.mean(dim=(2, 3)))


def _sliced_bn(norm: nn.BatchNorm2d, x: torch.Tensor, width: int, training: bool) -> torch.Tensor:
    assert norm.running_mean is not None and norm.running_var is not None
    # The running-stat slices are views, so batch_norm updates the shared buffers.
    return F.batch_norm(
        x,
        norm.running_mean[:width],
        norm.running_var[:width],
        norm.weight[:width],
        norm.bias[:width],
        training,
        0.1,
        norm.eps,
    )


class ToySupernet(nn.Module):
    """Max-width layers sliced per child; records every training forward."""

    def __init__(self, spec: DataSpec) -> None:
        super().__init__()
        widest = max(WIDTHS)
        self.conv1 = nn.Conv2d(spec.in_channels, widest, 3, padding=1, bias=False)
        self.bn1 = nn.BatchNorm2d(widest)
        self.conv2 = nn.Conv2d(widest, widest, 3, stride=2, padding=1, bias=False)
        self.bn2 = nn.BatchNorm2d(widest)
        self.head = nn.Linear(widest, spec.num_classes, bias=False)
        # One output bias per width2: the smallest child's row is trained by nothing but
        # its distillation loss, the biggest child's by nothing but the labels.
        self.head_bias = nn.Parameter(torch.zeros(len(WIDTHS), spec.num_classes))
        self.spec = spec
        self.active = ToyArch(widest, widest)
        self.dropout = 0.0
        self.drop_connect = 0.0
        self.forwards: list[tuple[ToyArch, float, float]] = []
        self.regularization_calls: list[tuple[float, float]] = []

    def set_active(self, arch: ToyArch) -> None:
        self.active = arch

    def set_regularization(self, *, dropout: float, drop_connect: float) -> None:
        self.regularization_calls.append((dropout, drop_connect))
        self.dropout, self.drop_connect = dropout, drop_connect

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        self.forwards.append((self.active, self.dropout, self.drop_connect))
        w1, w2 = self.active.width1, self.active.width2
        x = F.conv2d(x, self.conv1.weight[:w1], padding=1)
        x = F.relu(_sliced_bn(self.bn1, x, w1, self.training))
        x = F.conv2d(x, self.conv2.weight[:w2, :w1], stride=2, padding=1)
        x = F.relu(_sliced_bn(self.bn2, x, w2, self.training))
        x = F.dropout(x, self.drop_connect, self.training)  # stands in for drop-connect
        x = F.dropout(x.mean(dim=(2, 3)), self.dropout, self.training)
        return F.linear(x, self.head.weight[:, :w2], self.head_bias[WIDTHS.index(w2)])

    def extract(self, arch: ToyArch) -> ToyNet:
        child = ToyNet(arch, self.spec)
        w1, w2 = arch.width1, arch.width2
        with torch.no_grad():
            child.conv1.weight.copy_(self.conv1.weight[:w1])
            child.conv2.weight.copy_(self.conv2.weight[:w2, :w1])
            for ours, theirs, width in ((self.bn1, child.bn1, w1), (self.bn2, child.bn2, w2)):
                for name in ("weight", "bias", "running_mean", "running_var"):
                    getattr(theirs, name).copy_(getattr(ours, name)[:width])
            child.head.weight.copy_(self.head.weight[:, :w2])
            child.head.bias.copy_(self.head_bias[WIDTHS.index(w2)])
        return child


class ToySpace(WeightSharingSpace[ToyArch]):
    name = "toy"

    def sample(self, trial: optuna.trial.BaseTrial) -> ToyArch:
        return ToyArch(
            trial.suggest_categorical("width1", WIDTHS), trial.suggest_categorical("width2", WIDTHS)
        )

    def encode(self, arch: ToyArch) -> dict[str, Any]:
        return {"width1": arch.width1, "width2": arch.width2}

    def decode(self, data: Any) -> ToyArch:
        if not isinstance(data, dict) or set(data) != {"width1", "width2"}:
            raise ArchitectureError(f"Not a toy architecture: {data!r}.")
        arch = ToyArch(data["width1"], data["width2"])
        self.validate(arch)
        return arch

    def validate(self, arch: ToyArch) -> None:
        if arch.width1 not in WIDTHS or arch.width2 not in WIDTHS:
            raise ArchitectureError(f"Widths must be in {WIDTHS}, but got {arch}.")

    def build(self, arch: ToyArch, data: DataSpec) -> ToyNet:
        return ToyNet(arch, data)

    def export_source(self, arch: ToyArch, data: DataSpec) -> str:
        raise NotImplementedError("not needed by these tests")

    def supernet(self, data: DataSpec) -> ToySupernet:
        return ToySupernet(data)

    def largest(self) -> ToyArch:
        return ToyArch(max(WIDTHS), max(WIDTHS))

    def smallest(self) -> ToyArch:
        return ToyArch(min(WIDTHS), min(WIDTHS))


# --- Fixtures and helpers ---------------------------------------------------------------

SPACE = ToySpace()
# Small and fast: 4 steps of 64 per epoch.
QUICK = SupernetSettings(epochs=2, batch_size=64, lr=0.1, calibration_batches=2)


@pytest.fixture(scope="module")
def digits() -> DatasetSplits:
    return load_dataset("digits")


@pytest.fixture(scope="module")
def small(digits: DatasetSplits) -> DatasetSplits:
    """256 training and 128 validation digits."""
    return replace(
        digits,
        train=Subset(digits.train, range(256)),
        val=Subset(digits.val, range(128)),
        num_train=256,
        num_val=128,
    )


def _supernet(seed: int = 0) -> ToySupernet:
    torch.manual_seed(seed)
    return SPACE.supernet(DataSpec(in_channels=1, num_classes=10, image_size=8))


def _state(module: nn.Module) -> dict[str, torch.Tensor]:
    return {name: value.clone() for name, value in module.state_dict().items()}


def _assert_same_state(ours: nn.Module, theirs: nn.Module) -> None:
    mine, other = ours.state_dict(), theirs.state_dict()
    assert mine.keys() == other.keys()
    for name in mine:
        assert torch.equal(mine[name], other[name]), name


def _without_timing(reports: list[SupernetEpochReport]) -> list[SupernetEpochReport]:
    return [replace(report, seconds=0.0, resumed=False) for report in reports]


# --- Training ---------------------------------------------------------------------------


def test_trains_and_reports_biggest_and_smallest_accuracy(
    digits: DatasetSplits, tmp_path: Path
) -> None:
    settings = SupernetSettings(epochs=6, lr=0.2, calibration_batches=4)
    supernet = _supernet()
    seen: list[SupernetEpochReport] = []
    steps: list[tuple[int, int]] = []
    reports = train_supernet(
        SPACE,
        supernet,
        digits,
        settings,
        device=CPU,
        seed=0,
        checkpoint=tmp_path / "supernet.ckpt",
        on_epoch=seen.append,
        on_step=lambda step, total: steps.append((step, total)),
    )
    assert seen == reports
    assert [report.epoch for report in reports] == [1, 2, 3, 4, 5, 6]
    assert all(report.epochs == 6 and not report.resumed for report in reports)
    # About 0.89 and 0.6 in practice; chance is 0.1. The toy's smallest child has four
    # channels per layer.
    assert reports[-1].biggest_accuracy > 0.7
    assert reports[-1].smallest_accuracy > 0.4
    assert reports[-1].biggest_accuracy > reports[0].biggest_accuracy
    # The sum of CE and KL terms need not fall: the KL terms grow as the teacher sharpens.
    assert all(0 < report.loss < 10 and report.seconds > 0 for report in reports)
    per_epoch = math.ceil(digits.num_train / settings.batch_size)
    assert steps == [(step, per_epoch) for step in range(1, per_epoch + 1)] * 6
    assert reports[-1].lr == supernet_learning_rate(settings, 6 * per_epoch - 1, per_epoch)
    # The reported accuracy is that of the extracted, recalibrated child.
    child = supernet.extract(SPACE.largest())
    recalibrate_batch_norm(
        child, digits.train, device=CPU, batches=4, batch_size=64, seed=CALIBRATION_SEED
    )
    assert evaluate_accuracy(child, digits.val, device=CPU) == reports[-1].biggest_accuracy


def test_sandwich_step_learns_labels_on_biggest_and_distils_into_smallest(tmp_path: Path) -> None:
    # One step on one batch, with plain SGD, so the update is exactly -lr * gradient.
    torch.manual_seed(1)
    inputs, targets = torch.randn(32, 1, 8, 8), torch.randint(0, 10, (32,))
    data = DatasetSplits(
        name="noise",
        train=TensorDataset(inputs, targets),
        val=TensorDataset(inputs, targets),
        spec=DataSpec(in_channels=1, num_classes=10, image_size=8),
        num_train=32,
        num_val=32,
    )
    settings = SupernetSettings(
        epochs=1,
        batch_size=32,
        lr=0.1,
        momentum=0.0,
        weight_decay=0.0,
        warmup_epochs=0,
        random_children=0,
        label_smoothing=0.0,
        grad_clip=0.0,
        dropout=0.0,
        drop_connect=0.0,
        calibration_batches=1,
    )
    supernet = _supernet()
    before = copy.deepcopy(supernet)
    train_supernet(
        SPACE, supernet, data, settings, device=CPU, seed=0, checkpoint=tmp_path / "supernet.ckpt"
    )
    # Gradients of each child's own output bias, worked out by hand from the old weights:
    # cross-entropy for the biggest, KL to the biggest's predictions for the smallest.
    before.set_active(SPACE.largest())
    teacher = before(inputs).softmax(dim=1)
    before.set_active(SPACE.smallest())
    student = before(inputs).softmax(dim=1)
    labels = F.one_hot(targets, 10).float()
    big_row, small_row = WIDTHS.index(8), WIDTHS.index(4)
    step = supernet.head_bias - before.head_bias
    assert torch.allclose(step[big_row], -0.1 * (teacher - labels).mean(dim=0), atol=1e-6)
    assert torch.allclose(step[small_row], -0.1 * (student - teacher).mean(dim=0), atol=1e-6)
    assert step[small_row].abs().sum() > 0
    # Shared weights that the smallest child uses moved too.
    assert not torch.equal(supernet.conv1.weight[:4], before.conv1.weight[:4])


def test_regularisation_only_for_the_biggest_child(small: DatasetSplits, tmp_path: Path) -> None:
    settings = replace(QUICK, epochs=1, dropout=0.2, drop_connect=0.3, random_children=2)
    supernet = _supernet()
    train_supernet(
        SPACE, supernet, small, settings, device=CPU, seed=3, checkpoint=tmp_path / "supernet.ckpt"
    )
    steps = math.ceil(256 / 64)
    assert supernet.regularization_calls == [(0.2, 0.3), (0.0, 0.0)] * steps
    assert len(supernet.forwards) == 4 * steps  # biggest + smallest + 2 random per step
    for index in range(0, len(supernet.forwards), 4):
        biggest, smallest, *randoms = supernet.forwards[index : index + 4]
        assert biggest == (SPACE.largest(), 0.2, 0.3)
        assert smallest == (SPACE.smallest(), 0.0, 0.0)
        assert all(record[1:] == (0.0, 0.0) for record in randoms)
    sampled = {arch for arch, *_ in supernet.forwards[2::4] + supernet.forwards[3::4]}
    assert len(sampled) > 1  # random children differ from step to step


def test_learning_rate_warms_up_decays_and_levels_off() -> None:
    settings = SupernetSettings(
        epochs=100, lr=0.4, warmup_epochs=2, lr_decay=0.5, final_lr_fraction=0.1
    )
    per_epoch = 10
    lr = [supernet_learning_rate(settings, step, per_epoch) for step in range(100)]
    assert lr[0] == pytest.approx(0.4 / 20)
    assert lr[9] == pytest.approx(0.4 * 10 / 20)
    assert lr[19] == lr[20] == pytest.approx(0.4)  # the peak ends warm-up, then decay
    assert lr[25] == pytest.approx(0.4 * 0.5**0.5)  # half an epoch of decay
    assert lr[30] == pytest.approx(0.2)
    assert lr[40] == pytest.approx(0.1)
    assert lr[60] == lr[99] == pytest.approx(0.04)  # 0.4 * 0.5**4 = 0.025 is below the floor
    assert all(later <= earlier for earlier, later in itertools.pairwise(lr[19:]))
    no_warmup = replace(settings, warmup_epochs=0)
    assert supernet_learning_rate(no_warmup, 0, per_epoch) == 0.4


# --- Checkpoints ------------------------------------------------------------------------


class _Interrupt(KeyboardInterrupt):
    pass


def _stop_after_first_epoch(report: SupernetEpochReport) -> None:
    if report.epoch == 1 and not report.resumed:
        raise _Interrupt


@pytest.mark.parametrize("how", ["interrupted", "extended"])
def test_resume_gives_bitwise_identical_weights(
    small: DatasetSplits, tmp_path: Path, how: str
) -> None:
    settings = replace(QUICK, dropout=0.3, drop_connect=0.2)  # exercises torch's generator
    straight = _supernet()
    expected = train_supernet(
        SPACE, straight, small, settings, device=CPU, seed=7, checkpoint=tmp_path / "straight.ckpt"
    )

    checkpoint = tmp_path / "resumed.ckpt"
    if how == "interrupted":  # Ctrl-C after the first epoch's checkpoint
        with pytest.raises(_Interrupt):
            train_supernet(
                SPACE,
                _supernet(),
                small,
                settings,
                device=CPU,
                seed=7,
                checkpoint=checkpoint,
                on_epoch=_stop_after_first_epoch,
            )
    else:  # a finished one-epoch run, asked for one more epoch
        train_supernet(
            SPACE,
            _supernet(),
            small,
            replace(settings, epochs=1),
            device=CPU,
            seed=7,
            checkpoint=checkpoint,
        )
    torch.manual_seed(12345)  # whatever happened in between, the generators come back
    resumed = _supernet(seed=99)  # a new object, other initial weights
    seen: list[SupernetEpochReport] = []
    reports = train_supernet(
        SPACE,
        resumed,
        small,
        settings,
        device=CPU,
        seed=7,
        checkpoint=checkpoint,
        on_epoch=seen.append,
    )
    _assert_same_state(resumed, straight)
    assert [report.resumed for report in reports] == [True, False]
    assert seen == reports  # earlier epochs are replayed to the callback
    assert _without_timing(reports) == _without_timing(expected)
    assert len(resumed.forwards) == len(straight.forwards) // 2  # only epoch 2 trained


def test_finished_checkpoint_is_reused_without_training(
    small: DatasetSplits, tmp_path: Path
) -> None:
    checkpoint = tmp_path / "supernet.ckpt"
    trained = _supernet()
    first = train_supernet(SPACE, trained, small, QUICK, device=CPU, seed=0, checkpoint=checkpoint)
    reused = _supernet(seed=5)
    again = train_supernet(SPACE, reused, small, QUICK, device=CPU, seed=0, checkpoint=checkpoint)
    assert reused.forwards == [] and reused.regularization_calls == []
    _assert_same_state(reused, trained)
    assert all(report.resumed for report in again)
    assert [replace(report, resumed=False) for report in again] == first


@pytest.mark.parametrize(
    ("change", "named"),
    [
        ({"settings": replace(QUICK, lr=0.01)}, "lr=0.1"),
        ({"settings": replace(QUICK, random_children=1)}, "random_children=2"),
        ({"seed": 1}, "seed=0"),
    ],
)
def test_checkpoint_of_another_run_is_refused(
    small: DatasetSplits, tmp_path: Path, change: dict[str, Any], named: str
) -> None:
    checkpoint = tmp_path / "supernet.ckpt"
    train_supernet(
        SPACE,
        _supernet(),
        small,
        replace(QUICK, epochs=1),
        device=CPU,
        seed=0,
        checkpoint=checkpoint,
    )
    other = _supernet()
    arguments: dict[str, Any] = {"settings": QUICK, "seed": 0, **change}
    with pytest.raises(CheckpointError, match=named) as caught:
        train_supernet(
            SPACE,
            other,
            small,
            arguments["settings"],
            device=CPU,
            seed=arguments["seed"],
            checkpoint=checkpoint,
        )
    assert "new study" in str(caught.value) and "\n" not in str(caught.value)
    assert other.forwards == []


def test_checkpoint_with_more_epochs_than_asked_is_refused(
    small: DatasetSplits, tmp_path: Path
) -> None:
    checkpoint = tmp_path / "supernet.ckpt"
    train_supernet(SPACE, _supernet(), small, QUICK, device=CPU, seed=0, checkpoint=checkpoint)
    with pytest.raises(CheckpointError, match="holds 2 epochs, more than epochs=1"):
        train_supernet(
            SPACE,
            _supernet(),
            small,
            replace(QUICK, epochs=1),
            device=CPU,
            seed=0,
            checkpoint=checkpoint,
        )


def test_resume_only_refuses_an_unfinished_or_missing_checkpoint(
    small: DatasetSplits, tmp_path: Path
) -> None:
    checkpoint = tmp_path / "supernet.ckpt"
    quick = {"device": CPU, "seed": 0, "checkpoint": checkpoint, "resume_only": True}
    worker = _supernet()
    with pytest.raises(CheckpointError, match="holds 0 of 2 epochs"):
        train_supernet(SPACE, worker, small, QUICK, **quick)
    train_supernet(
        SPACE,
        _supernet(),
        small,
        replace(QUICK, epochs=1),
        device=CPU,
        seed=0,
        checkpoint=checkpoint,
    )
    with pytest.raises(CheckpointError, match="holds 1 of 2 epochs"):
        train_supernet(SPACE, worker, small, QUICK, **quick)
    assert worker.forwards == []  # refused, never trained on


def test_checkpoint_whose_weights_do_not_fit_is_refused(
    small: DatasetSplits, tmp_path: Path
) -> None:
    checkpoint = tmp_path / "supernet.ckpt"
    settings = replace(QUICK, epochs=1)
    train_supernet(SPACE, _supernet(), small, settings, device=CPU, seed=0, checkpoint=checkpoint)
    payload = load_checkpoint(checkpoint)
    del payload["supernet"]["head_bias"]
    save_checkpoint(checkpoint, payload)
    with pytest.raises(CheckpointError, match=r"does not fit this supernet.*head_bias"):
        train_supernet(SPACE, _supernet(), small, QUICK, device=CPU, seed=0, checkpoint=checkpoint)


def test_corrupt_checkpoint_is_refused(small: DatasetSplits, tmp_path: Path) -> None:
    checkpoint = tmp_path / "supernet.ckpt"
    checkpoint.write_bytes(b"not a checkpoint")
    with pytest.raises(CheckpointError, match="Delete it"):
        train_supernet(SPACE, _supernet(), small, QUICK, device=CPU, seed=0, checkpoint=checkpoint)


# --- Failures ---------------------------------------------------------------------------


def test_divergence_raises_and_writes_no_checkpoint(tmp_path: Path) -> None:
    inputs = torch.randn(16, 1, 8, 8)
    inputs[3, 0, 2, 2] = math.nan
    data = DatasetSplits(
        name="nan",
        train=TensorDataset(inputs, torch.zeros(16, dtype=torch.long)),
        val=TensorDataset(inputs, torch.zeros(16, dtype=torch.long)),
        spec=DataSpec(in_channels=1, num_classes=10, image_size=8),
        num_train=16,
        num_val=16,
    )
    checkpoint = tmp_path / "supernet.ckpt"
    with pytest.raises(TrainingDiverged, match="epoch 1 step 1"):
        train_supernet(
            SPACE,
            _supernet(),
            data,
            replace(QUICK, batch_size=16),
            device=CPU,
            seed=0,
            checkpoint=checkpoint,
        )
    assert not checkpoint.exists()


def test_module_without_the_supernet_methods_is_refused(
    small: DatasetSplits, tmp_path: Path
) -> None:
    with pytest.raises(TypeError, match="set_active, set_regularization, extract"):
        train_supernet(
            SPACE,
            nn.Linear(2, 2),
            small,
            QUICK,
            device=CPU,
            seed=0,
            checkpoint=tmp_path / "supernet.ckpt",
        )


@pytest.mark.parametrize(
    ("field", "value"),
    [
        ("epochs", 0),
        ("epochs", 1.5),
        ("batch_size", True),
        ("lr", 0.0),
        ("lr", math.inf),
        ("momentum", 1.0),
        ("weight_decay", -1e-5),
        ("warmup_epochs", -1),
        ("lr_decay", 0.0),
        ("lr_decay", 1.5),
        ("final_lr_fraction", 1.2),
        ("random_children", -1),
        ("label_smoothing", 1.0),
        ("grad_clip", -1.0),
        ("dropout", 1.0),
        ("drop_connect", -0.1),
        ("calibration_batches", 0),
        ("lr", "0.1"),
    ],
)
def test_settings_validation_names_the_field(field: str, value: Any) -> None:
    arguments: dict[str, Any] = {"epochs": 1, field: value}
    with pytest.raises(ConfigError, match=rf"^{field} must be .*{field}=") as caught:
        SupernetSettings(**arguments)
    assert "\n" not in str(caught.value)


def test_settings_edge_values_are_accepted() -> None:
    settings = SupernetSettings(
        epochs=1,
        momentum=0.0,
        weight_decay=0.0,
        warmup_epochs=0,
        lr_decay=1.0,
        final_lr_fraction=0.0,
        random_children=0,
        label_smoothing=0.0,
        grad_clip=0.0,
        dropout=0.0,
        drop_connect=0.0,
    )
    assert settings.as_dict()["lr_decay"] == 1.0


class _LargestOnly:
    """A recipe other than the sandwich rule: the biggest child alone learns the labels."""

    def __init__(self, context: Any) -> None:
        self.context = context
        self.steps = 0

    def step(
        self, inputs: torch.Tensor, targets: torch.Tensor, scale: float | None = None
    ) -> torch.Tensor:
        self.steps += 1
        self.context.net.set_active(self.context.space.largest())
        loss = F.cross_entropy(self.context.module(inputs), targets)
        loss.backward()
        return loss.detach() * targets.shape[0]


def _adamw(params: list[nn.Parameter], settings: SupernetSettings) -> torch.optim.Optimizer:
    return torch.optim.AdamW(params, lr=1e-3)


def test_the_child_schedule_and_optimizer_are_injected(
    small: DatasetSplits, tmp_path: Path
) -> None:
    """Another recipe reuses the loop: its schedule builds each step, its optimizer steps,
    and a checkpoint of one recipe is refused by another."""
    schedules: list[_LargestOnly] = []

    def largest_only(context: Any) -> _LargestOnly:
        schedules.append(_LargestOnly(context))
        return schedules[-1]

    settings = replace(QUICK, epochs=1)
    custom = _supernet()
    train_supernet(
        SPACE, custom, small, settings, device=CPU, seed=0,
        checkpoint=tmp_path / "custom.ckpt", schedule=largest_only, make_optimizer=_adamw,
    )  # fmt: skip
    steps_per_epoch = math.ceil(len(small.train) / settings.batch_size)  # type: ignore[arg-type]
    assert [s.steps for s in schedules] == [steps_per_epoch]
    optimizer_state = load_checkpoint(tmp_path / "custom.ckpt")["optimizer"]["state"]
    assert all("exp_avg" in state for state in optimizer_state.values())  # AdamW's moments
    sandwich = _supernet()
    train_supernet(
        SPACE, sandwich, small, settings, device=CPU, seed=0, checkpoint=tmp_path / "s.ckpt"
    )
    assert not torch.equal(next(custom.parameters()), next(sandwich.parameters()))
    with pytest.raises(CheckpointError, match="schedule"):
        train_supernet(
            SPACE, _supernet(), small, settings, device=CPU, seed=0,
            checkpoint=tmp_path / "custom.ckpt", make_optimizer=_adamw,
        )  # fmt: skip
