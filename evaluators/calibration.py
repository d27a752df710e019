"""Batch-norm recalibration: fresh running statistics for one child of a supernet.

A supernet's BN layers average statistics over every child that ran during training,
which fit no single child; BigNAS and once-for-all recompute them per child, on a few
batches of training data, before that child is evaluated.
"""

from __future__ import annotations

import contextlib
from collections.abc import Iterator
from typing import Any

import torch
from torch import nn
from torch.utils.data import DataLoader, Dataset

from nas.core.errors import NasError
from nas.core.validation import check_number

# Every child of every study is calibrated on the same batches, so that accuracies stay
# comparable; deliberately not the trial seed.
CALIBRATION_SEED = 0


def recalibrate_batch_norm(
    model: nn.Module,
    dataset: Dataset[Any],
    *,
    device: torch.device,
    batches: int,
    batch_size: int,
    seed: int,
) -> None:
    """Replace the running statistics of every BN layer of ``model`` with fresh ones.

    Each BN layer's statistics are reset and then accumulated as a plain average over
    ``batches`` shuffled batches of ``dataset`` (``momentum=None``), so the result does
    not depend on the stale values; each layer's momentum is restored afterwards. The
    mean is the exact mean of the batches' examples when the batches are equally large;
    the variance is the average of the per-batch (unbiased) variances.

    Only the BN layers run in training mode: dropout and drop-path stay in eval mode, so
    the statistics describe the activations the model sees at evaluation time. The
    forward passes run under ``torch.no_grad()``, and the training flag of every
    sub-module is restored afterwards.

    Calibration never disturbs training: the batch order comes from a generator seeded
    with ``seed``, and torch's global generator (which augmentation draws from) is
    reseeded with ``seed`` and restored afterwards.

    Meant for static networks such as ``supernet.extract(arch)``: a supernet whose
    forward slices BN buffers through ``F.batch_norm`` must pass each layer's own
    ``momentum`` for the cumulative average to apply.

    Args:
        model: The network, already on ``device``. A model without BN layers is left as is.
        dataset: Training examples, ``(image, label)`` pairs; labels are ignored.
        device: Where ``model`` is.
        batches: At most this many batches; fewer if ``dataset`` runs out first.
        batch_size: Examples per batch.
        seed: Fixes the batches, e.g. ``CALIBRATION_SEED``.

    Raises:
        ConfigError: ``batches`` or ``batch_size`` is not a positive integer.
        NasError: ``dataset`` is empty.
    """
    for name, value in (("batches", batches), ("batch_size", batch_size)):
        check_number(name, value, integer=True, low=1)
    norms = [
        module
        for module in model.modules()
        if isinstance(module, nn.modules.batchnorm._BatchNorm) and module.track_running_stats
    ]
    if not norms:
        return
    size = len(dataset)  # type: ignore[arg-type]
    if size == 0:
        raise NasError("Cannot recalibrate batch norm on an empty training set; add examples.")
    modes = [(module, module.training) for module in model.modules()]
    momenta = [(norm, norm.momentum) for norm in norms]
    # Equal batches make the cumulative average the exact mean; a short last batch would
    # count as much as a full one.
    loader = DataLoader(
        dataset,
        batch_size=batch_size,
        shuffle=True,
        generator=torch.Generator().manual_seed(seed),
        num_workers=0,
        drop_last=size >= batch_size,
    )
    try:
        with preserved_rng(device), torch.no_grad():
            _seed_global(seed, device)
            model.eval()
            for norm in norms:
                norm.reset_running_stats()
                norm.momentum = None
                norm.train()
            for index, (inputs, _) in enumerate(loader):
                if index >= batches:
                    break
                model(inputs.to(device))
    finally:
        for norm, momentum in momenta:
            norm.momentum = momentum
        for module, training in modes:
            module.training = training


@contextlib.contextmanager
def preserved_rng(device: torch.device) -> Iterator[None]:
    """Restore torch's global CPU generator, and ``device``'s if CUDA, on exit.

    Wrap work that may draw random numbers (augmentation, building a module) but must
    not shift the random stream that training continues from.
    """
    if device.type == "cuda":
        index = device.index if device.index is not None else torch.cuda.current_device()
        with torch.random.fork_rng(devices=[index], device_type="cuda"):
            yield
    else:
        with torch.random.fork_rng(devices=[]):
            yield


def _seed_global(seed: int, device: torch.device) -> None:
    # Not torch.manual_seed: that reseeds every CUDA device, and preserved_rng restores
    # only the one in use.
    torch.default_generator.manual_seed(seed)
    if device.type == "cuda":
        index = device.index if device.index is not None else torch.cuda.current_device()
        with torch.cuda.device(index):
            torch.cuda.manual_seed(seed)
