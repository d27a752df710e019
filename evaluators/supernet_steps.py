"""The parts of weight-sharing training that differ between recipes, injected into
``train_supernet``: which children learn from each batch and how (a ``ChildSchedule``),
and the optimizer.

BigNAS's sandwich rule is the default: Yu et al., "BigNAS: Scaling Up Neural Architecture
Search with Big Single-Stage Models" (ECCV 2020). Another recipe (for example one child
per sub-batch, as in ViT-ResNAS's multi-architectural sampling) is a new ``ChildSchedule``;
``train_supernet`` keeps the data order, learning-rate schedule, checkpoints, exact resume
and data parallelism for all of them.
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


@dataclass(frozen=True)
class StepContext:
    """What a child schedule works with.

    Attributes:
        space: The weight-sharing space (samples children, names the extremes).
        net: The supernet (``set_active``, ``set_regularization``).
        module: What to call for a forward pass: the supernet, or its
            ``DistributedDataParallel`` wrapper when data parallel.
        settings: The training settings.
        params: The trainable parameters.
        rng: The seeded generator children are drawn from (saved in checkpoints).
    """

    space: WeightSharingSpace[Any]
    net: Supernet
    module: nn.Module
    settings: SupernetSettings
    params: list[nn.Parameter]
    rng: np.random.Generator


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
    """SGD with Nesterov momentum and no weight decay of its own: BigNAS decays the
    biggest child only, through an explicit L2 term in its loss (``SandwichRule``)."""
    return torch.optim.SGD(
        params,
        lr=settings.lr,
        momentum=settings.momentum,
        nesterov=settings.momentum > 0,  # torch refuses Nesterov without momentum
        weight_decay=0.0,
    )


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
        if settings.weight_decay > 0:
            # Half the squared norm, so that the gradient is weight_decay * w as with SGD's
            # own weight_decay; through this loss only, so only the biggest child decays.
            penalty = sum(parameter.pow(2).sum() for parameter in context.params)
            loss = loss + 0.5 * settings.weight_decay * penalty
        loss.backward()
        teacher = logits.detach().softmax(dim=1)  # (B, classes)
        # BigNAS regularises only the biggest child: the small ones tend to underfit.
        net.set_regularization(dropout=0.0, drop_connect=0.0)
        # The space draws no randomness itself: RandomTrial answers its suggest_* calls
        # from the seeded generator (duck-typed, hence the cast).
        others = [self._smallest] + [
            context.space.sample(cast("optuna.trial.BaseTrial", RandomTrial(context.rng)))
            for _ in range(settings.random_children)
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
