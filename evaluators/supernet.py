"""BigNAS single-stage supernet training: one set of shared weights for every child.

Yu et al., "BigNAS: Scaling Up Neural Architecture Search with Big Single-Stage Models"
(ECCV 2020). Every step trains, on the same batch, the biggest child (on the labels,
with all the regularisation), the smallest child and a few random ones (the "sandwich
rule"); those learn from the biggest child's predictions ("inplace distillation").
The learning rate warms up linearly, then decays exponentially to a constant floor.

Training resumes exactly from a checkpoint written after every epoch: the weights, the
optimiser, the step counter and every random generator are restored, so an interrupted
run ends with the same weights, bit for bit, as one that was never interrupted.

Several processes (``torchrun``) can train one supernet data-parallel, each on its share
of every batch, ending with one process's weights up to float rounding (``parallel=``).
"""

from __future__ import annotations

import time
from collections.abc import Callable, Iterator, Sized
from dataclasses import asdict, dataclass, fields
from pathlib import Path
from typing import TYPE_CHECKING, Any, TypeVar, cast

import numpy as np
import torch
from torch import nn
from torch.nn.parallel import DistributedDataParallel
from torch.utils.data import BatchSampler, DataLoader, Dataset, RandomSampler, Sampler

from evaluators._supernet_state import make_fingerprint, restore, snapshot
from evaluators.calibration import CALIBRATION_SEED, preserved_rng, recalibrate_batch_norm
from evaluators.distributed import DataParallelContext, all_reduce_
from evaluators.standalone import TrainingDiverged, evaluate_accuracy
from evaluators.supernet_steps import (
    OPTIMIZERS,
    SCHEDULES,
    ChildPerChunk,
    ChildSchedule,
    OptimizerFactory,
    ScheduleFactory,
    StepContext,
)
from nas.core.checkpoint import CheckpointError, load_checkpoint, save_checkpoint
from nas.core.errors import NasError
from nas.core.seeds import derive_seed
from nas.core.validation import check_bool, check_choice, check_number
from search_spaces.base import check_supernet

if TYPE_CHECKING:
    from nas.data import DatasetSplits
    from search_spaces.base import Supernet, WeightSharingSpace

ArchT = TypeVar("ArchT")
# As in stand-alone training: losses stay on the device and are checked this often,
# since reading one back every step would stall an accelerator's queue.
_CHECK_EVERY = 25
# Child sampling gets its own stream, apart from the data order seeded with the same seed.
_CHILD_STREAM = 1


@dataclass(frozen=True, kw_only=True)
class SupernetSettings:
    """How to train a weight-sharing supernet.

    The ``supernet.*`` settings group of ``evaluator=supernet``; the defaults are the
    BigNAS paper's recipe, and a study preset (studies/bignas.yaml, studies/vit_resnas.yaml)
    tunes them to its space and data.

    Attributes:
        epochs: Passes over the training set. Not part of a checkpoint's identity: the
            schedule does not depend on it, so a finished run can be extended.
        batch_size: Examples per step; the last step of an epoch may be smaller.
        lr: Peak learning rate, reached at the end of the warm-up.
        momentum: SGD momentum (Nesterov when above 0).
        weight_decay: Sandwich rule with ``optimizer=sgd``: an L2 penalty through the
            biggest child's loss only; otherwise the optimizer's own decay (SGD's, or
            AdamW's decoupled one).
        warmup_epochs: Epochs of linear warm-up from 0, rising every step.
        lr_decay: Factor per epoch after the warm-up, applied smoothly every step.
        final_lr_fraction: The learning rate never falls below ``lr`` times this.
        random_children: Sandwich rule: random children per step, besides the biggest
            and smallest.
        label_smoothing: Label smoothing of the biggest child's cross-entropy.
        grad_clip: Largest norm of a step's accumulated gradient; 0 disables clipping.
        dropout: Dropout of the biggest child (sandwich rule; the others train without)
            or of every child (multi-architectural sampling).
        drop_connect: Drop-connect (stochastic depth), likewise.
        calibration_batches: Batches of training data that recalibrate BN statistics
            before each validation.
        sampling: Which children learn from each batch: ``sandwich`` (BigNAS: the
            biggest, the smallest and random ones, on the whole batch) or
            ``multi_arch`` (ViT-ResNAS: one random child per sub-batch, one forward
            and backward pass).
        sub_batches: ``multi_arch``: children (and sub-batches) per batch.
        distill: ``multi_arch``: the biggest child learns the labels on the whole batch
            and the sub-batches' children learn its predictions.
        optimizer: ``sgd`` (Nesterov) or ``adamw`` (the vision-transformer recipe).
    """

    epochs: int = 30
    batch_size: int = 64
    lr: float = 0.05
    momentum: float = 0.9
    weight_decay: float = 3e-5
    warmup_epochs: int = 1
    lr_decay: float = 0.97
    final_lr_fraction: float = 0.05
    random_children: int = 2
    label_smoothing: float = 0.1
    grad_clip: float = 1.0
    dropout: float = 0.1
    drop_connect: float = 0.1
    calibration_batches: int = 8
    sampling: str = "sandwich"
    sub_batches: int = 4
    distill: bool = False
    optimizer: str = "sgd"

    def __post_init__(self) -> None:
        check_choice("sampling", self.sampling, SCHEDULES)
        check_choice("optimizer", self.optimizer, OPTIMIZERS)
        check_bool("distill", self.distill)
        for name in ("epochs", "batch_size", "calibration_batches", "sub_batches"):
            check_number(name, getattr(self, name), integer=True, low=1)
        for name in ("warmup_epochs", "random_children"):
            check_number(name, getattr(self, name), integer=True, low=0)
        check_number("lr", self.lr, low=0.0, low_open=True)
        check_number("momentum", self.momentum, low=0.0, high=1.0, high_open=True)
        check_number("weight_decay", self.weight_decay, low=0.0)
        check_number("lr_decay", self.lr_decay, low=0.0, low_open=True, high=1.0)
        check_number("final_lr_fraction", self.final_lr_fraction, low=0.0, high=1.0)
        check_number("grad_clip", self.grad_clip, low=0.0)
        for name in ("label_smoothing", "dropout", "drop_connect"):
            check_number(name, getattr(self, name), low=0.0, high=1.0, high_open=True)

    def as_dict(self) -> dict[str, Any]:
        """The settings as a flat JSON-safe dict, e.g. for trial user attributes."""
        return {field.name: getattr(self, field.name) for field in fields(self)}


@dataclass(frozen=True)
class SupernetEpochReport:
    """What ``train_supernet`` reports after each epoch.

    Attributes:
        epoch: The epoch just finished, counted from 1.
        epochs: Total epochs planned.
        loss: Mean per-example sandwich loss over the epoch: the biggest child's
            cross-entropy plus every other child's distillation loss (the weight-decay
            penalty left out).
        biggest_accuracy: Validation accuracy of the biggest child, 0..1, after BN
            recalibration.
        smallest_accuracy: The same for the smallest child.
        lr: Learning rate of the epoch's last step.
        seconds: Wall time of the epoch, training and validation.
        resumed: True if the epoch was trained by an earlier call and read back from
            the checkpoint.
    """

    epoch: int
    epochs: int
    loss: float
    biggest_accuracy: float
    smallest_accuracy: float
    lr: float
    seconds: float
    resumed: bool = False


# What a checkpoint stores per epoch: `resumed` describes a call, not the epoch.
_REPORT_KEYS = tuple(field.name for field in fields(SupernetEpochReport) if field.name != "resumed")


def supernet_learning_rate(settings: SupernetSettings, step: int, steps_per_epoch: int) -> float:
    """The learning rate of global step ``step`` (counted from 0).

    Linear warm-up over ``warmup_epochs`` (step ``s`` of ``W`` warm-up steps gets
    ``lr * (s + 1) / W``, so no step is wasted at 0), then ``lr * lr_decay ** e`` with
    ``e`` the fractional epochs since the warm-up, never below
    ``lr * final_lr_fraction`` (BigNAS's "constant ending"). A function of the step
    alone, so resuming needs only the step counter.
    """
    warmup_steps = settings.warmup_epochs * steps_per_epoch
    if step < warmup_steps:
        return settings.lr * (step + 1) / warmup_steps
    decayed = settings.lr * settings.lr_decay ** ((step - warmup_steps) / steps_per_epoch)
    return max(decayed, settings.lr * settings.final_lr_fraction)


def train_supernet(
    space: WeightSharingSpace[ArchT],
    supernet: nn.Module,
    data: DatasetSplits,
    settings: SupernetSettings,
    *,
    device: torch.device,
    seed: int,
    checkpoint: Path,
    on_epoch: Callable[[SupernetEpochReport], None] | None = None,
    on_step: Callable[[int, int], None] | None = None,
    parallel: DataParallelContext | None = None,
    resume_only: bool = False,
    schedule: ScheduleFactory | None = None,
    make_optimizer: OptimizerFactory | None = None,
) -> list[SupernetEpochReport]:
    """Train ``supernet`` one step per batch; resume if possible.

    Which children train on each batch, and how (``schedule``; default the settings'
    ``sampling``: the sandwich rule with inplace distillation, or multi-architectural
    sampling), and the optimizer (``make_optimizer``; default the settings'
    ``optimizer``) are injected, so another weight-sharing recipe reuses this loop, its
    checkpoints, exact resume and data parallelism (see ``evaluators.supernet_steps``).

    The sandwich rule, each step, on one batch: the biggest child, with dropout and
    drop-connect, learns the labels (label-smoothed cross-entropy plus the weight-decay
    penalty); then, without regularisation, the smallest child and ``random_children``
    random ones learn the biggest child's detached predictions (KL divergence). Their
    gradients add up and make one clipped optimizer step.

    After each epoch the biggest and smallest children are extracted, their BN
    statistics recalibrated on training data, and their validation accuracy measured;
    then the checkpoint is written, and then ``on_epoch`` is called. If ``checkpoint``
    exists, its epochs are reported through ``on_epoch`` (``resumed=True``) and training
    continues after them; a checkpoint holding all ``epochs`` only loads its weights.

    The same seed and initial weights give the same weights on the same device, with
    or without interruptions: data order, child sampling (a numpy generator handed to
    ``space.sample`` through ``RandomTrial``) and dropout (torch's global generator,
    seeded with ``seed``) each follow a seeded stream saved in the checkpoint.

    Args:
        space: The weight-sharing space; samples children and names the extremes.
        supernet: ``space.supernet(data.spec)``, moved to ``device`` in place; its
            initial weights are replaced by the checkpoint's when resuming.
        data: Training and validation sets.
        settings: Recipe and epochs.
        device: Where to train.
        seed: Seeds data order, child sampling and torch's global generator.
        checkpoint: File to resume from and to write after every epoch.
        on_epoch: Called after each epoch's checkpoint; may raise to stop training.
        on_step: Called after each step with (step in epoch from 1, steps per epoch).
        parallel: This process's place among data-parallel processes (see below);
            default: training alone.
        resume_only: Only load a finished checkpoint (a worker's copy of a supernet
            trained elsewhere); one holding fewer epochs is refused, never trained on.
        schedule: Builds the per-batch step from a ``StepContext`` (a custom one is
            recorded in the checkpoint's fingerprint).
        make_optimizer: Builds the optimizer from the parameters and settings (likewise).

    Data parallel (``parallel.world_size`` W > 1, the default process group initialised,
    e.g. by ``evaluators.distributed.init_from_torchrun``): W processes together compute
    what one process computes with the same ``batch_size``, up to float rounding. Every
    process draws the same shuffled global batches and loads its share (every W-th
    example); BN normalises with statistics over the global batch (supernets with
    ``set_batch_norm_sync``); each child's gradient is averaged by
    ``DistributedDataParallel`` with the per-process loss scaled by W / global batch,
    so the average is the global batch's mean gradient even for unequal shares; every
    process samples the same children. Rank 0 alone validates, writes the checkpoint and
    calls ``on_epoch`` and ``on_step``; the other ranks get its reports. Every rank
    resumes from ``checkpoint``, so it must be on a file system they all see. Dropout
    and drop-connect masks come from torch's generator seeded per rank and epoch (exact
    on resume), so they differ from one process's: with both rates 0 the weights match
    one process's.

    Returns:
        The reports of all epochs, including those read from the checkpoint.

    Raises:
        TrainingDiverged: The training loss became NaN or infinite.
        CheckpointError: ``checkpoint`` is unreadable, holds more epochs than
            ``settings.epochs`` (with ``resume_only``: fewer, or is missing), or comes
            from other settings, seed, space or data.
        NasError: The training set is empty.
    """
    net = check_supernet(supernet)
    parallel = parallel or DataParallelContext()
    checkpoint = Path(checkpoint)
    largest, smallest = space.largest(), space.smallest()
    data_order = torch.Generator().manual_seed(seed)
    loader = _loader(data.train, settings.batch_size, data_order, parallel)
    steps_per_epoch = len(loader)
    num_train = len(cast("Sized", data.train))
    if steps_per_epoch == 0:
        raise NasError("Cannot train a supernet on an empty training set; add examples.")
    supernet.to(device)
    fingerprint = make_fingerprint(space, data, settings, seed)
    # The settings' recipes are in the fingerprint already; a custom one is marked.
    for key, custom in (("schedule", schedule), ("optimizer", make_optimizer)):
        if custom is not None:
            fingerprint[key] = getattr(custom, "__qualname__", repr(custom))
    schedule = schedule or SCHEDULES[settings.sampling]
    make_optimizer = make_optimizer or OPTIMIZERS[settings.optimizer]
    optimizer = make_optimizer(list(supernet.parameters()), settings)
    children = np.random.default_rng([seed, _CHILD_STREAM])
    torch.manual_seed(seed)
    reports: list[SupernetEpochReport] = []
    if checkpoint.exists():
        state = restore(
            load_checkpoint(checkpoint),
            checkpoint,
            fingerprint=fingerprint,
            settings=settings,
            steps_per_epoch=steps_per_epoch,
            supernet=supernet,
            optimizer=optimizer,
            data_order=data_order,
            children=children,
            device=device,
            report_keys=_REPORT_KEYS,
        )
        reports = [
            SupernetEpochReport(**{**report, "epochs": settings.epochs, "resumed": True})
            for report in state.reports
        ]
    _check_same_progress(parallel, len(reports), checkpoint)
    if resume_only and len(reports) < settings.epochs:
        raise CheckpointError(
            f"Supernet checkpoint {checkpoint} holds {len(reports)} of {settings.epochs} "
            "epochs; a worker only evaluates a finished supernet."
        )
    if parallel.is_main:
        for report in reports:
            if on_epoch is not None:
                on_epoch(report)
    if len(reports) >= settings.epochs:
        return reports

    params = [parameter for parameter in supernet.parameters() if parameter.requires_grad]
    chunks = ChildPerChunk(supernet, parallel.rank, parallel.world_size)
    module: nn.Module = chunks
    sync_batch_norm = getattr(supernet, "set_batch_norm_sync", None)
    if parallel.distributed:
        # Elastic depth leaves blocks that a small child skips without gradients, hence
        # find_unused_parameters (DDP's warning that the first, biggest child used them
        # all is expected). Wrapping broadcasts rank 0's weights and buffers, so every
        # rank starts from the same ones; no buffer broadcast before each forward
        # (broadcast_buffers=False, renamed): synced BN keeps the statistics equal.
        module = DistributedDataParallel(
            chunks,
            device_ids=[device] if device.type == "cuda" else None,
            find_unused_parameters=True,
            forward_sync_buffers=False,
        )
        if callable(sync_batch_norm):
            sync_batch_norm(True)
    child_step = schedule(StepContext(space, net, module, settings, params, children, chunks))
    epoch_loop = _EpochLoop(loader, optimizer, child_step, params, settings, num_train, parallel)
    try:
        for epoch in range(len(reports) + 1, settings.epochs + 1):
            started = time.perf_counter()
            if parallel.distributed:
                # Per rank and epoch: ranks draw different dropout masks, and a resumed run
                # draws what an uninterrupted one would (checkpoints hold rank 0's state).
                torch.manual_seed(derive_seed(seed, parallel.rank, epoch))
            module.train()
            loss, lr = epoch_loop.run(epoch, device, on_step if parallel.is_main else None)
            epoch_report: SupernetEpochReport | None = None
            if parallel.is_main:
                biggest, smallest_accuracy = (
                    child_accuracy(net, arch, data, settings, device)
                    for arch in (largest, smallest)
                )
                epoch_report = SupernetEpochReport(
                    epoch=epoch,
                    epochs=settings.epochs,
                    loss=loss,
                    biggest_accuracy=biggest,
                    smallest_accuracy=smallest_accuracy,
                    lr=lr,
                    seconds=time.perf_counter() - started,
                )
                save_checkpoint(
                    checkpoint,
                    snapshot(
                        fingerprint=fingerprint,
                        epoch=epoch,
                        step=epoch * steps_per_epoch,
                        supernet=supernet,
                        optimizer=optimizer,
                        data_order=data_order,
                        children=children,
                        device=device,
                        reports=[_plain(r) for r in [*reports, epoch_report]],
                    ),
                )
            # Also the barrier: no rank starts the next epoch before the checkpoint exists.
            reports.append(parallel.broadcast_object(epoch_report))
            if on_epoch is not None and parallel.is_main:
                on_epoch(reports[-1])
    finally:
        if parallel.distributed and callable(sync_batch_norm):
            sync_batch_norm(False)
    return reports


def _loader(
    dataset: Dataset[Any], batch_size: int, order: torch.Generator, parallel: DataParallelContext
) -> DataLoader[Any]:
    """Shuffled batches from ``order``; this rank's share of each when data parallel."""
    if not parallel.distributed:
        return DataLoader(
            dataset,
            batch_size=batch_size,
            shuffle=True,
            generator=order,
            num_workers=0,
            drop_last=False,
        )
    # The loader built above, batch for batch: the same sampler chain and the same draws
    # from `order` (the DataLoader also takes a base seed from it every epoch).
    sampler = RandomSampler(cast("Sized", dataset), generator=order)
    batches = BatchSampler(sampler, batch_size, drop_last=False)
    shards = _ShardedBatches(batches, parallel.rank, parallel.world_size)
    return DataLoader(dataset, batch_sampler=shards, generator=order, num_workers=0)


class _ShardedBatches(Sampler[list[int]]):
    """Each global batch's every ``world``-th index from ``rank``: shares differ by at most
    one example, and ranks load only their own."""

    def __init__(self, batches: BatchSampler, rank: int, world: int) -> None:
        self._batches, self._rank, self._world = batches, rank, world

    def __iter__(self) -> Iterator[list[int]]:
        for batch in self._batches:
            yield batch[self._rank :: self._world]

    def __len__(self) -> int:
        return len(self._batches)


def _check_same_progress(parallel: DataParallelContext, epochs: int, checkpoint: Path) -> None:
    """Refuse (on every rank at once) ranks that read different checkpoints."""
    seen = parallel.all_gather_object(epochs)
    if len(set(seen)) > 1:
        raise NasError(
            f"Data-parallel ranks see different supernet checkpoints at {checkpoint} "
            f"(epochs per rank: {seen}); all processes need the same file system."
        )


class _EpochLoop:
    """One epoch of sandwich steps over the loader; the mean per-example loss."""

    def __init__(
        self,
        loader: DataLoader[Any],
        optimizer: torch.optim.Optimizer,
        child_step: ChildSchedule,
        params: list[nn.Parameter],
        settings: SupernetSettings,
        num_train: int,
        parallel: DataParallelContext,
    ) -> None:
        self._loader, self._optimizer, self._child_step = loader, optimizer, child_step
        self._params, self._settings = params, settings
        self._num_train, self._parallel = num_train, parallel

    def run(
        self, epoch: int, device: torch.device, on_step: Callable[[int, int], None] | None
    ) -> tuple[float, float]:
        """Train one epoch; (mean per-example loss over the global batches, last lr)."""
        settings, parallel, optimizer = self._settings, self._parallel, self._optimizer
        steps_per_epoch, batch_size = len(self._loader), settings.batch_size
        step_losses = torch.zeros(steps_per_epoch, device=device)
        examples = checked = 0
        lr = settings.lr
        for step, (inputs, targets) in enumerate(self._loader, start=1):
            lr = supernet_learning_rate(
                settings, (epoch - 1) * steps_per_epoch + step - 1, steps_per_epoch
            )
            for group in optimizer.param_groups:
                group["lr"] = lr
            inputs, targets = inputs.to(device), targets.to(device)
            # Only the last step of an epoch may be smaller.
            global_batch = min(batch_size, self._num_train - (step - 1) * batch_size)
            scale = parallel.world_size / global_batch if parallel.distributed else None
            optimizer.zero_grad(set_to_none=True)
            step_losses[step - 1] = self._child_step.step(inputs, targets, scale)
            if settings.grad_clip > 0:
                nn.utils.clip_grad_norm_(self._params, settings.grad_clip)
            optimizer.step()
            examples += global_batch
            if step % _CHECK_EVERY == 0 or step == steps_per_epoch:
                if parallel.distributed:
                    # Global sums on every rank, so that all ranks stop together.
                    window = step_losses[checked:step].clone()
                    all_reduce_([window])
                    step_losses[checked:step] = window
                    checked = step
                _check_finite(step_losses[:step], epoch, settings)
            if on_step is not None:
                on_step(step, steps_per_epoch)
        return float(step_losses.sum()) / max(examples, 1), lr


def inherited_accuracy(
    child: nn.Module, data: DatasetSplits, *, device: torch.device, batches: int, batch_size: int
) -> float:
    """Validation accuracy of a child extracted from a supernet, after its BN statistics
    are recalibrated; every child sees the same calibration batches (``CALIBRATION_SEED``),
    so their scores compare fairly."""
    recalibrate_batch_norm(
        child,
        data.train,
        device=device,
        batches=batches,
        batch_size=batch_size,
        seed=CALIBRATION_SEED,
    )
    return evaluate_accuracy(child, data.val, device=device)


def child_accuracy(
    net: Supernet, arch: Any, data: DatasetSplits, settings: SupernetSettings, device: torch.device
) -> float:
    """``arch``'s validation accuracy with the weights it inherits from ``net``
    (``inherited_accuracy`` of ``net.extract(arch)``, calibrated as ``settings`` say)."""
    # Extracting may build a module (random initialisation); it must not shift the random
    # stream that training continues from.
    with preserved_rng(device):
        child = net.extract(arch).to(device)
    return inherited_accuracy(
        child,
        data,
        device=device,
        batches=settings.calibration_batches,
        batch_size=settings.batch_size,
    )


def _check_finite(step_losses: torch.Tensor, epoch: int, settings: SupernetSettings) -> None:
    bad = ~torch.isfinite(step_losses)
    if bool(bad.any()):
        step = int(bad.nonzero()[0]) + 1
        value = float(step_losses[step - 1])
        hint = " or enable grad_clip (e.g. 1)" if settings.grad_clip == 0 else ""
        raise TrainingDiverged(
            f"Supernet training loss became {value} at epoch {epoch} step "
            f"{step}; lower lr={settings.lr:g}{hint}."
        )


def _plain(report: SupernetEpochReport) -> dict[str, Any]:
    plain = asdict(report)
    return {key: plain[key] for key in _REPORT_KEYS}
