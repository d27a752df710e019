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
    """The supernet, run so that chunk ``k`` of a batch goes through child ``k``.

    One module call for all of them: under ``DistributedDataParallel`` a step is one
    forward and one backward, however many children it trains.
    """

    def __init__(self, supernet: nn.Module) -> None:
        super().__init__()
        self.supernet = supernet
        self.children_per_chunk: list[Any] | None = None  # None: the active child only

    def forward(self, inputs: torch.Tensor) -> torch.Tensor:
        children = self.children_per_chunk
        if children is None:
            return cast(torch.Tensor, self.supernet(inputs))
        net = cast("Supernet", self.supernet)
        outputs = []
        for child, chunk in zip(children, inputs.tensor_split(len(children)), strict=True):
            net.set_active(child)
            outputs.append(self.supernet(chunk))
        return torch.cat(outputs)


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

    def weight_decay_penalty(self) -> torch.Tensor | float:
        """Half the squared norm of the weights times ``weight_decay`` (its gradient is
        SGD's weight decay), for optimizers without decay of their own; else 0."""
        settings = self.settings
        if settings.weight_decay == 0 or settings.optimizer != "sgd":
            return 0.0
        return 0.5 * settings.weight_decay * sum(p.pow(2).sum() for p in self.params)


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
    """SGD with Nesterov momentum and no weight decay of its own: the schedules decay
    through an explicit L2 term in the loss (BigNAS decays the biggest child only)."""
    return torch.optim.SGD(
        params,
        lr=settings.lr,
        momentum=settings.momentum,
        nesterov=settings.momentum > 0,  # torch refuses Nesterov without momentum
        weight_decay=0.0,
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
        # Through this loss only, so only the biggest child decays.
        loss = loss + context.weight_decay_penalty()
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
    ``sub_batches`` chunks and trains a random child on each, all in one forward and one
    backward pass; every child gets dropout and drop-connect.

    The loss is the label-smoothed cross-entropy of the whole batch (each example
    through its chunk's child), plus the weight-decay penalty with ``optimizer=sgd``.
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
        # Fewer chunks than sub_batches when the batch (a last one, a rank's share) is small.
        chunks = max(1, min(settings.sub_batches, inputs.shape[0]))
        teacher, total = None, torch.zeros((), device=inputs.device)
        if settings.distill:
            context.net.set_active(self._largest)
            logits = context.module(inputs)
            loss = _cross_entropy(logits, targets, settings.label_smoothing, scale)
            total = total + loss.detach()
            (loss + context.weight_decay_penalty()).backward()
            teacher = logits.detach().softmax(dim=1)
        children = [context.random_child() for _ in range(chunks)]
        logits = context.forward_per_chunk(children, inputs)
        if teacher is None:
            loss = _cross_entropy(logits, targets, settings.label_smoothing, scale)
            total = total + loss.detach()
            loss = loss + context.weight_decay_penalty()
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
