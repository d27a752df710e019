"""Stand-alone evaluation: train a network from scratch and track validation accuracy.

The evaluator knows nothing about Optuna. It reports after every epoch through a
callback; whatever the callback raises (``optuna.TrialPruned``, ``KeyboardInterrupt``)
propagates untouched and ends training.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass, fields
from pathlib import Path
from typing import TYPE_CHECKING, Any, ClassVar

import torch
from torch import nn
from torch.utils.data import DataLoader, Dataset

from evaluators.base import Evaluator, TrialSession
from evaluators.costs import deployment_costs
from evaluators.registry import register_evaluator
from nas.core.checkpoint import (
    CheckpointError,
    check_fingerprint,
    entry,
    load_checkpoint,
    save_checkpoint,
)
from nas.core.errors import NasError
from nas.core.validation import check_choice, check_number

if TYPE_CHECKING:
    from nas.data import DatasetSplits

OPTIMIZERS = ("sgd", "adamw")
# A training loss from (logits, inputs, targets), e.g. a teacher's distillation loss.
LossFn = Callable[[torch.Tensor, torch.Tensor, torch.Tensor], torch.Tensor]
_CHECKPOINT_FORMAT = 1
_RESTART = "delete it to train from scratch"
# On an accelerator, reading the loss back every step would stall the queue of
# kernels; the losses stay on the device and are checked for divergence this often.
_CHECK_EVERY = 25


class TrainingDiverged(NasError):
    """The training loss became NaN or infinite."""


@dataclass(frozen=True, kw_only=True)
class TrainSettings:
    """How to train a network from scratch.

    The ``train.*`` settings group of ``evaluator=standalone``; the epochs are the study's
    own ``epochs`` setting, which pruners read too.

    Attributes:
        batch_size: Examples per step; the last step of an epoch may be smaller.
        optimizer: ``"sgd"`` (with Nesterov momentum) or ``"adamw"``.
        lr: Peak learning rate, annealed to zero by a per-step cosine schedule.
        momentum: SGD momentum; ``adamw`` ignores it.
        weight_decay: Decoupled for ``adamw``, L2 for ``sgd``; applies to all weights.
        grad_clip: Largest gradient norm allowed per step; 0 disables clipping.
        label_smoothing: Cross-entropy label smoothing, in [0, 1).
    """

    batch_size: int = 64
    optimizer: str = "sgd"
    lr: float = 0.05
    momentum: float = 0.9
    weight_decay: float = 3e-4
    grad_clip: float = 5.0
    label_smoothing: float = 0.0

    def __post_init__(self) -> None:
        check_number("batch_size", self.batch_size, integer=True, low=1)
        check_choice("optimizer", self.optimizer, OPTIMIZERS)
        check_number("lr", self.lr, low=0.0, low_open=True)
        check_number("momentum", self.momentum, low=0.0, high=1.0, high_open=True)
        check_number("weight_decay", self.weight_decay, low=0.0)
        check_number("grad_clip", self.grad_clip, low=0.0)
        check_number("label_smoothing", self.label_smoothing, low=0.0, high=1.0, high_open=True)

    def as_dict(self) -> dict[str, Any]:
        """The settings as a flat JSON-safe dict, e.g. for trial user attributes."""
        return {field.name: getattr(self, field.name) for field in fields(self)}


@dataclass(frozen=True)
class EpochReport:
    """What ``train_standalone`` reports after each epoch.

    Attributes:
        epoch: The epoch just finished, counted from 1.
        epochs: Total epochs planned.
        train_loss: Mean training loss over the epoch's examples (auxiliary loss included).
        val_accuracy: Fraction of validation examples classified correctly, 0..1.
        seconds: Wall time of the epoch, training and validation.
    """

    epoch: int
    epochs: int
    train_loss: float
    val_accuracy: float
    seconds: float


def train_standalone(
    model: nn.Module,
    data: DatasetSplits,
    settings: TrainSettings,
    *,
    epochs: int,
    device: torch.device,
    seed: int,
    on_epoch: Callable[[EpochReport], None] | None = None,
    on_step: Callable[[int, int], None] | None = None,
    loss_fn: LossFn | None = None,
    checkpoint: Path | None = None,
    fingerprint: Mapping[str, Any] | None = None,
    reports_per_epoch: int = 1,
) -> list[float]:
    """Train ``model`` on ``data.train`` from its current weights; validate every epoch.

    The same initial weights and ``seed`` give the same curve on the same device: the
    data order comes from a generator seeded with ``seed``, and ``torch.manual_seed(seed)``
    seeds dropout, drop-path and augmentation.

    Models may opt into two hooks. ``set_training_progress(p)`` is called at the start of
    each epoch with ``p = epoch_index / epochs`` (0, 1/E, ...), e.g. for a drop-path
    schedule. A model that, after a training forward, has a non-None ``aux_logits`` and
    ``auxiliary_weight > 0`` gets ``auxiliary_weight * CE(aux_logits, y)`` added to its loss.

    Args:
        model: The network, moved to ``device`` in place.
        data: Training and validation sets.
        settings: Optimiser and schedule.
        epochs: Passes over the training set.
        device: Where to train.
        seed: Seed for data order and for torch's global generator.
        on_epoch: Called after each epoch's validation; may raise to stop training.
        on_step: Called after each step with (step in epoch from 1, steps per epoch).
        loss_fn: The loss from (logits, inputs, targets); default label-smoothed
            cross-entropy (plus a model's auxiliary loss).
        checkpoint: A file written after every epoch (weights, optimizer, schedule,
            data order, random state) and resumed from, exactly, when it exists; the
            epochs it holds are not reported again through ``on_epoch``.
        fingerprint: What else must match for the checkpoint to continue this run (the
            data, the architecture); the settings, epochs and seed are always checked.
        reports_per_epoch: Validations per epoch, after equal shares of its steps (the
            last one ends the epoch). With R > 1 every report counts as one "epoch" of
            ``on_epoch``: reports 1..epochs x R, and the curve has that many values.
            Checkpoints are still written at the ends of epochs.

    Returns:
        The validation accuracy after each epoch (each report, with R > 1).

    Raises:
        TrainingDiverged: The training loss became NaN or infinite.
        CheckpointError: ``checkpoint`` is unreadable or belongs to another run.
        NasError: The training set is empty.
    """
    check_number("epochs", epochs, integer=True, low=1)
    check_number("reports_per_epoch", reports_per_epoch, integer=True, low=1)
    torch.manual_seed(seed)
    loader = DataLoader(
        data.train,
        batch_size=settings.batch_size,
        shuffle=True,
        generator=torch.Generator().manual_seed(seed),
        num_workers=0,
        drop_last=False,
    )
    steps_per_epoch = len(loader)
    if steps_per_epoch == 0:
        raise NasError("Cannot train on an empty training set; add examples.")
    if reports_per_epoch > steps_per_epoch:
        raise NasError(
            f"reports_per_epoch={reports_per_epoch} exceeds the {steps_per_epoch} steps of an "
            "epoch; report at most once per step."
        )
    # The step after which each report of an epoch falls: equal shares, the last at its end.
    report_after = {
        round(k * steps_per_epoch / reports_per_epoch): k for k in range(1, reports_per_epoch + 1)
    }
    model.to(device)
    optimizer = _make_optimizer(model, settings)
    schedule = torch.optim.lr_scheduler.CosineAnnealingLR(optimizer, T_max=epochs * steps_per_epoch)
    criterion = nn.CrossEntropyLoss(label_smoothing=settings.label_smoothing)
    set_progress = getattr(model, "set_training_progress", None)
    if loss_fn is None:
        loss_fn = lambda logits, _, targets: _loss(model, logits, targets, criterion)  # noqa: E731
    run = {**dict(fingerprint or {}), **settings.as_dict(), "epochs": epochs, "seed": seed}
    if reports_per_epoch != 1:  # absent at 1, so older checkpoints still resume
        run["reports_per_epoch"] = reports_per_epoch
    reports = epochs * reports_per_epoch
    state = _TrainingState(model, optimizer, schedule, loader.generator, run, reports_per_epoch)
    curve = state.resume(checkpoint) if checkpoint is not None and checkpoint.exists() else []
    for epoch in range(len(curve) // reports_per_epoch + 1, epochs + 1):
        started = time.perf_counter()
        if callable(set_progress):
            set_progress((epoch - 1) / epochs)
        model.train()
        # Per-step summed losses, kept on the device; see _CHECK_EVERY.
        step_losses = torch.zeros(steps_per_epoch, device=device)
        examples = 0
        for step, (inputs, targets) in enumerate(loader, start=1):
            inputs, targets = inputs.to(device), targets.to(device)
            loss = loss_fn(model(inputs), inputs, targets)
            optimizer.zero_grad(set_to_none=True)
            loss.backward()
            if settings.grad_clip > 0:
                nn.utils.clip_grad_norm_(model.parameters(), settings.grad_clip)
            optimizer.step()
            schedule.step()
            step_losses[step - 1] = loss.detach() * targets.shape[0]
            examples += targets.shape[0]
            if step % _CHECK_EVERY == 0 or step == steps_per_epoch:
                _check_finite(step_losses[:step], epoch, settings)
            if on_step is not None:
                on_step(step, steps_per_epoch)
            if step in report_after and step < steps_per_epoch:
                # A report within the epoch leaves the random state as it found it.
                curve.append(_evaluate_keeping_random_state(model, data.val, device))
                if on_epoch is not None:
                    on_epoch(_report(curve, reports, step_losses[:step], examples, started))
        # After the loop, not at its last step: the sampler draws from the data-order
        # generator once its last batch is out, and the checkpoint must hold that state.
        curve.append(evaluate_accuracy(model, data.val, device=device))
        if checkpoint is not None:
            save_checkpoint(checkpoint, state.snapshot(curve))
        if on_epoch is not None:
            on_epoch(_report(curve, reports, step_losses, examples, started))
    return curve


@dataclass
class _TrainingState:
    """What a stand-alone training checkpoint holds, and how it is checked and put back."""

    model: nn.Module
    optimizer: torch.optim.Optimizer
    schedule: torch.optim.lr_scheduler.LRScheduler
    data_order: torch.Generator | None
    fingerprint: dict[str, Any]
    reports_per_epoch: int = 1

    def snapshot(self, curve: list[float]) -> dict[str, Any]:
        assert self.data_order is not None
        return {
            "format": _CHECKPOINT_FORMAT,
            "fingerprint": self.fingerprint,
            "curve": list(curve),
            "model": self.model.state_dict(),
            "optimizer": self.optimizer.state_dict(),
            "schedule": self.schedule.state_dict(),
            "data_order": self.data_order.get_state(),
            "torch_rng": torch.get_rng_state(),
        }

    def resume(self, path: Path) -> list[float]:
        """Load the checkpoint at ``path``; the validation curve it holds."""
        payload = load_checkpoint(path)
        if payload.get("format") != _CHECKPOINT_FORMAT:
            raise CheckpointError(f"Checkpoint {path} has an unknown format; {_RESTART}.")
        stored = entry(payload, "fingerprint", dict, path, remedy=_RESTART)
        check_fingerprint(stored, self.fingerprint, path, remedy=_RESTART)
        curve = entry(payload, "curve", list, path, remedy=_RESTART)
        reports = self.fingerprint["epochs"] * self.reports_per_epoch
        if (
            len(curve) > reports
            or len(curve) % self.reports_per_epoch
            or not all(isinstance(value, float) for value in curve)
        ):
            raise CheckpointError(f"Checkpoint {path} has a malformed curve; {_RESTART}.")
        assert self.data_order is not None
        try:
            self.model.load_state_dict(entry(payload, "model", dict, path, remedy=_RESTART))
            self.optimizer.load_state_dict(entry(payload, "optimizer", dict, path, remedy=_RESTART))
            self.schedule.load_state_dict(entry(payload, "schedule", dict, path, remedy=_RESTART))
            self.data_order.set_state(
                entry(payload, "data_order", torch.Tensor, path, remedy=_RESTART)
            )
            torch.set_rng_state(entry(payload, "torch_rng", torch.Tensor, path, remedy=_RESTART))
        except (RuntimeError, ValueError, TypeError, KeyError) as error:
            detail = " ".join(str(error).split())[:200]
            raise CheckpointError(
                f"Checkpoint {path} does not fit this network ({detail}); {_RESTART}."
            ) from error
        return [float(value) for value in curve]


def _report(
    curve: list[float], reports: int, step_losses: torch.Tensor, examples: int, started: float
) -> EpochReport:
    """The report of the curve's last value; ``step_losses`` are the epoch's steps so far."""
    return EpochReport(
        epoch=len(curve),
        epochs=reports,
        train_loss=float(step_losses.sum()) / max(examples, 1),
        val_accuracy=curve[-1],
        seconds=time.perf_counter() - started,
    )


def _evaluate_keeping_random_state(
    model: nn.Module, dataset: Dataset[Any], device: torch.device
) -> float:
    """``evaluate_accuracy`` without drawing from torch's global generator (a data loader
    draws its base seed there), so that training goes on exactly as without the report."""
    state = torch.get_rng_state()
    try:
        return evaluate_accuracy(model, dataset, device=device)
    finally:
        torch.set_rng_state(state)


def _make_optimizer(model: nn.Module, settings: TrainSettings) -> torch.optim.Optimizer:
    if settings.optimizer == "adamw":
        return torch.optim.AdamW(
            model.parameters(), lr=settings.lr, weight_decay=settings.weight_decay
        )
    # torch refuses Nesterov without momentum.
    return torch.optim.SGD(
        model.parameters(),
        lr=settings.lr,
        momentum=settings.momentum,
        nesterov=settings.momentum > 0,
        weight_decay=settings.weight_decay,
    )


def _loss(
    model: nn.Module, logits: torch.Tensor, targets: torch.Tensor, criterion: nn.Module
) -> torch.Tensor:
    loss: torch.Tensor = criterion(logits, targets)
    aux_logits = getattr(model, "aux_logits", None)
    aux_weight = getattr(model, "auxiliary_weight", 0.0)
    if aux_logits is not None and aux_weight > 0:
        loss = loss + aux_weight * criterion(aux_logits, targets)
    return loss


def _check_finite(step_losses: torch.Tensor, epoch: int, settings: TrainSettings) -> None:
    bad = ~torch.isfinite(step_losses)
    if bool(bad.any()):
        step = int(bad.nonzero()[0]) + 1
        value = float(step_losses[step - 1])
        hint = " or enable grad_clip (e.g. 5)" if settings.grad_clip == 0 else ""
        raise TrainingDiverged(
            f"Training loss became {value} at epoch {epoch} step {step}; "
            f"lower lr={settings.lr:g}{hint}."
        )


def evaluate_accuracy(
    model: nn.Module, dataset: Dataset[Any], *, device: torch.device, batch_size: int = 256
) -> float:
    """Fraction of ``dataset`` that ``model`` classifies correctly, in eval mode.

    The training flag of every sub-module is restored afterwards.

    Raises:
        NasError: ``dataset`` is empty.
    """
    modes = [(module, module.training) for module in model.modules()]
    model.eval()
    correct = torch.zeros((), dtype=torch.int64, device=device)
    total = 0
    try:
        with torch.no_grad():
            for inputs, targets in DataLoader(dataset, batch_size=batch_size, num_workers=0):
                targets = targets.to(device)
                predictions = model(inputs.to(device)).argmax(dim=1)
                correct += (predictions == targets).sum()
                total += targets.shape[0]
    finally:
        for module, training in modes:
            module.training = training
    if total == 0:
        raise NasError("Cannot measure accuracy on an empty validation set; add examples.")
    return int(correct) / total


@register_evaluator
class StandaloneEvaluator(Evaluator[TrainSettings]):
    """Train every architecture from scratch for the study's ``epochs`` (``train.*``)."""

    name: ClassVar[str] = "standalone"
    settings_group: ClassVar[str] = "train"
    Settings: ClassVar[type[TrainSettings]] = TrainSettings
    reports_within_epochs: ClassVar[bool] = True

    @classmethod
    def identity(cls, settings: TrainSettings, *, epochs: int) -> dict[str, Any]:
        # What changes results most; the rest (momentum, clipping...) may be tuned on resume.
        train = {"batch_size": settings.batch_size, "optimizer": settings.optimizer}
        return {"epochs": epochs, "train": {**train, "lr": settings.lr}}

    def evaluate(self, arch: Any, trial: TrialSession) -> dict[str, float]:
        context = self.context
        torch.manual_seed(trial.seed)  # the initial weights belong to the trial's seed
        model = context.space.build(arch, context.data.spec)
        costs = deployment_costs(context, model)
        trial.record_costs(costs)
        curve = train_standalone(
            model,
            context.data,
            self.settings,
            epochs=context.epochs,
            device=context.device,
            seed=trial.seed,
            on_epoch=lambda report: trial.report(report.epoch, report.epochs, report.val_accuracy),
            on_step=trial.step,
            reports_per_epoch=context.reports_per_epoch,
        )
        trial.keep_weights(model)
        return {"accuracy": curve[-1], **costs}
