"""The parts of weight-sharing training that differ between recipes, injected into
``train_supernet``: which children learn from each batch and how (a ``ChildSchedule``),
and the optimizer.

Two recipes ship, chosen by ``supernet.sampling``: BigNAS's sandwich rule (Yu et al.,
"BigNAS: Scaling Up Neural Architecture Search with Big Single-Stage Models", ECCV 2020)
and ViT-ResNAS's multi-architectural sampling, one child per sub-batch (Liao et al.,
"Searching for Efficient Multi-Stage Vision Transformers", 2021). Another recipe is a new
``ChildSchedule``; ``train_supernet`` keeps the data order, learning-rate schedule,
checkpoints, exact resume and data parallelism for all of them.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, Protocol, cast

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn

from nas.core.random_trial import RandomTrial

if TYPE_CHECKING:
    import optuna

    from evaluators.supernet import SupernetSettings
    from search_spaces.base import Supernet, WeightSharingSpace


class ChildPerChunk(nn.Module):
    """The supernet, run so that each of several children gets its own share of a batch.

    With ``children_per_chunk`` set to n children, example ``g`` of the global batch goes
    to child ``g mod n`` (the authors' layout). A data-parallel rank holds examples
    ``rank, rank + world, ...`` of the global batch, so each child sees the same examples
    however many processes share it. One module call for all of them: under
    ``DistributedDataParallel`` a step is one forward and one backward, however many
    children it trains. Every child runs on every rank, even on no examples, so that
    collectives (synchronised batch norm) happen in the same order everywhere.
    """

    def __init__(self, supernet: nn.Module, rank: int = 0, world: int = 1) -> None:
        super().__init__()
        self.supernet, self.rank, self.world = supernet, rank, world
        self.children_per_chunk: list[Any] | None = None  # None: the active child only

    def forward(self, inputs: torch.Tensor) -> torch.Tensor:
        children = self.children_per_chunk
        if children is None:
            return cast(torch.Tensor, self.supernet(inputs))
        net = cast("Supernet", self.supernet)
        # The examples' owners are known from the batch size alone: the indices are made
        # on the CPU and copied over, with no device synchronisation per child.
        positions = torch.arange(inputs.shape[0])
        owner = (self.rank + self.world * positions) % len(children)
        logits: torch.Tensor | None = None
        for k, child in enumerate(children):
            index = positions[owner == k].to(inputs.device, non_blocking=True)
            net.set_active(child)
            part = self.supernet(inputs.index_select(0, index))
            if logits is None:
                logits = part.new_zeros(inputs.shape[0], *part.shape[1:])
            logits = logits.index_copy(0, index, part)  # out of place: autograd follows
        assert logits is not None  # at least one child
        return logits


@dataclass(frozen=True)
class StepContext:
    """What a child schedule works with.

    Attributes:
        space: The weight-sharing space (samples children, names the extremes).
        net: The supernet (``set_active``, ``set_regularization``).
        module: What to call for a forward pass: the supernet's ``ChildPerChunk``, or
            its ``DistributedDataParallel`` wrapper when data parallel.
        settings: The training settings.
        params: The trainable parameters.
        rng: The seeded generator children are drawn from (saved in checkpoints).
        chunks: The ``ChildPerChunk`` inside ``module``.
    """

    space: WeightSharingSpace[Any]
    net: Supernet
    module: nn.Module
    settings: SupernetSettings
    params: list[nn.Parameter]
    rng: np.random.Generator
    chunks: ChildPerChunk

    def random_child(self) -> Any:
        # The space draws no randomness itself: RandomTrial answers its suggest_* calls
        # from the seeded generator (duck-typed, hence the cast).
        return self.space.sample(cast("optuna.trial.BaseTrial", RandomTrial(self.rng)))

    def forward_per_chunk(self, children: list[Any], inputs: torch.Tensor) -> torch.Tensor:
        """Logits of ``inputs`` with its ``len(children)`` chunks through one child each."""
        self.chunks.children_per_chunk = children
        try:
            return cast(torch.Tensor, self.module(inputs))
        finally:
            self.chunks.children_per_chunk = None


class ChildSchedule(Protocol):
    """One training step's forward and backward passes over one batch."""

    def step(
        self, inputs: torch.Tensor, targets: torch.Tensor, scale: float | None = None
    ) -> torch.Tensor:
        """Accumulate the gradients of the step's children; return their detached total
        loss times the batch size (``scale`` None) or the summed loss (data parallel:
        each loss is the sum over this rank's share times ``scale``, W / global batch,
        so that the ranks' average gradient is the global batch's mean gradient)."""


ScheduleFactory = Callable[[StepContext], ChildSchedule]
OptimizerFactory = Callable[[list[nn.Parameter], "SupernetSettings"], torch.optim.Optimizer]


def nesterov_sgd(params: list[nn.Parameter], settings: SupernetSettings) -> torch.optim.Optimizer:
    """SGD with Nesterov momentum. Under the sandwich rule it has no weight decay of its
    own: BigNAS decays through an explicit L2 term in the biggest child's loss, so that
    the decay is clipped with the gradient. Other rules use SGD's own decay (a term in
    a loss would reach weights that no child of the step used, which data-parallel
    training has already marked as unused)."""
    return torch.optim.SGD(
        params,
        lr=settings.lr,
        momentum=settings.momentum,
        nesterov=settings.momentum > 0,  # torch refuses Nesterov without momentum
        weight_decay=0.0 if settings.sampling == "sandwich" else settings.weight_decay,
    )


def adamw(params: list[nn.Parameter], settings: SupernetSettings) -> torch.optim.Optimizer:
    """AdamW (the ViT recipe of DeiT and ViT-ResNAS): decoupled weight decay of the
    weight matrices and embeddings, none of biases and norms (one-dimensional)."""
    decayed = [p for p in params if p.dim() > 1]
    plain = [p for p in params if p.dim() <= 1]
    groups = [
        {"params": decayed, "weight_decay": settings.weight_decay},
        {"params": plain, "weight_decay": 0.0},
    ]
    return torch.optim.AdamW(groups, lr=settings.lr)


OPTIMIZERS: dict[str, OptimizerFactory] = {"sgd": nesterov_sgd, "adamw": adamw}


class SandwichRule:
    """The sandwich rule with inplace distillation (BigNAS).

    Each step, on one batch: the biggest child, with dropout and drop-connect, learns
    the labels (label-smoothed cross-entropy plus the weight-decay penalty); then,
    without regularisation, the smallest child and ``random_children`` random ones learn
    the biggest child's detached predictions (KL divergence). Their gradients add up.
    """

    def __init__(self, context: StepContext) -> None:
        self._context = context
        self._largest, self._smallest = context.space.largest(), context.space.smallest()
        self._criterion = nn.CrossEntropyLoss(label_smoothing=context.settings.label_smoothing)

    def step(
        self, inputs: torch.Tensor, targets: torch.Tensor, scale: float | None = None
    ) -> torch.Tensor:
        context = self._context
        settings, net, module = context.settings, context.net, context.module
        net.set_active(self._largest)
        net.set_regularization(dropout=settings.dropout, drop_connect=settings.drop_connect)
        logits = module(inputs)  # (B, classes)
        if scale is None:
            loss = self._criterion(logits, targets)
            total = loss.detach()
        else:
            summed = F.cross_entropy(
                logits, targets, label_smoothing=settings.label_smoothing, reduction="sum"
            )
            total, loss = summed.detach(), summed * scale
        if settings.weight_decay > 0 and settings.optimizer == "sgd":
            # Half the squared norm, so that the gradient is weight_decay * w as with SGD's
            # own weight_decay; through this loss only, so only the biggest child decays.
            penalty = sum(parameter.pow(2).sum() for parameter in context.params)
            loss = loss + 0.5 * settings.weight_decay * penalty
        loss.backward()
        teacher = logits.detach().softmax(dim=1)  # (B, classes)
        # BigNAS regularises only the biggest child: the small ones tend to underfit.
        net.set_regularization(dropout=0.0, drop_connect=0.0)
        others = [self._smallest] + [
            context.random_child() for _ in range(settings.random_children)
        ]
        for arch in others:
            net.set_active(arch)
            child = F.log_softmax(module(inputs), dim=1)
            # KL(teacher || child): the soft cross-entropy minus the teacher's constant entropy.
            if scale is None:
                distillation = F.kl_div(child, teacher, reduction="batchmean")
                distillation.backward()
                total = total + distillation.detach()
            else:
                summed = F.kl_div(child, teacher, reduction="sum")
                (summed * scale).backward()
                total = total + summed.detach()
        # Every child's backward through DistributedDataParallel averages the gradients
        # (no no_sync): what earlier children accumulated is equal on every rank already,
        # so averaging old + new gives old + the average of new.
        return total * targets.shape[0] if scale is None else total


class MultiArchSampling:
    """Multi-architectural sampling (ViT-ResNAS): each step splits the batch into
    ``sub_batches`` shares (example ``g`` to child ``g mod n``, see ``ChildPerChunk``) and
    trains a random child on each, all in one forward and one backward pass; every child
    gets dropout and drop-connect.

    The loss is the label-smoothed cross-entropy of the whole batch (each example
    through its child); the optimizer decays the weights.
    With ``distill`` the biggest child first learns the labels on the whole batch and
    the chunks' children learn its detached predictions instead (KL divergence), as
    BigNAS's inplace distillation; the authors' scripts train without it.
    """

    def __init__(self, context: StepContext) -> None:
        self._context = context
        self._largest = context.space.largest()

    def step(
        self, inputs: torch.Tensor, targets: torch.Tensor, scale: float | None = None
    ) -> torch.Tensor:
        context = self._context
        settings = context.settings
        context.net.set_regularization(dropout=settings.dropout, drop_connect=settings.drop_connect)
        # Fewer children than sub_batches when the global batch (a last one) is smaller;
        # every rank draws the same ones (data parallel: scale = world / global batch).
        batch = inputs.shape[0] if scale is None else round(context.chunks.world / scale)
        chunks = max(1, min(settings.sub_batches, batch))
        teacher, total = None, torch.zeros((), device=inputs.device)
        if settings.distill:
            context.net.set_active(self._largest)
            logits = context.module(inputs)
            loss = _cross_entropy(logits, targets, settings.label_smoothing, scale)
            total = total + loss.detach()
            loss.backward()
            teacher = logits.detach().softmax(dim=1)
        children = [context.random_child() for _ in range(chunks)]
        logits = context.forward_per_chunk(children, inputs)
        if teacher is None:
            loss = _cross_entropy(logits, targets, settings.label_smoothing, scale)
            total = total + loss.detach()
        else:
            reduction = "batchmean" if scale is None else "sum"
            loss = F.kl_div(F.log_softmax(logits, dim=1), teacher, reduction=reduction)
            loss = loss if scale is None else loss * scale
            total = total + loss.detach()
        loss.backward()
        if scale is None:
            return total * targets.shape[0]
        return total / scale  # the summed loss over this rank's share


def _cross_entropy(
    logits: torch.Tensor, targets: torch.Tensor, smoothing: float, scale: float | None
) -> torch.Tensor:
    """The batch mean, or (data parallel) the sum times ``scale``."""
    if scale is None:
        return F.cross_entropy(logits, targets, label_smoothing=smoothing)
    return F.cross_entropy(logits, targets, label_smoothing=smoothing, reduction="sum") * scale


SCHEDULES: dict[str, ScheduleFactory] = {
    "sandwich": SandwichRule,
    "multi_arch": MultiArchSampling,
}
