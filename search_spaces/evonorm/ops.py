"""The primitives of an EvoNorm layer (Liu et al., "Evolving Normalization-Activation
Layers", NeurIPS 2020), as plain torch functions.

Every tensor is 4-D, (batch, channels, height, width), or broadcasts to it. The paper's
safeguards keep each primitive finite where it has a pole: a denominator keeps at least
``EPS`` in magnitude, ``log`` and ``sqrt`` read at least ``EPS``, and a standard
deviation is ``sqrt(variance + EPS)`` (as BatchNorm and GroupNorm compute it). Variances
are biased (over the elements, as normalization layers use them).

This module imports only torch: an exported layer holds these functions verbatim, so
it computes exactly what the platform's layer computes.
"""

from __future__ import annotations

import torch
from torch import nn

EPS = 1e-5


def add(a: torch.Tensor, b: torch.Tensor) -> torch.Tensor:
    return a + b


def mul(a: torch.Tensor, b: torch.Tensor) -> torch.Tensor:
    return a * b


def div(a: torch.Tensor, b: torch.Tensor) -> torch.Tensor:
    """``a / b`` with ``|b|`` at least ``EPS`` (its sign kept): finite everywhere."""
    return a / b.abs().clamp_min(EPS).copysign(b)


def positive_div(a: torch.Tensor, b: torch.Tensor) -> torch.Tensor:
    """``a / b`` for a ``b`` that is positive by construction (a standard deviation,
    a sigmoid...): ``div`` without the guard, which would change nothing there."""
    return a / b


def maximum(a: torch.Tensor, b: torch.Tensor) -> torch.Tensor:
    return torch.maximum(a, b)


def relu(a: torch.Tensor) -> torch.Tensor:
    """``max(a, zero)``: one op forward and backward instead of a broadcast comparison."""
    return torch.relu(a)


def neg(a: torch.Tensor) -> torch.Tensor:
    return -a


def sigmoid(a: torch.Tensor) -> torch.Tensor:
    return torch.sigmoid(a)


def tanh(a: torch.Tensor) -> torch.Tensor:
    return torch.tanh(a)


def exp(a: torch.Tensor) -> torch.Tensor:
    return torch.exp(a)


def log(a: torch.Tensor) -> torch.Tensor:
    """``log |a|``, reading at least ``EPS``."""
    return torch.log(a.abs().clamp_min(EPS))


def absolute(a: torch.Tensor) -> torch.Tensor:
    return a.abs()


def sqrt(a: torch.Tensor) -> torch.Tensor:
    """``sqrt(max(a, 0) + EPS)``: finite, with a finite gradient at 0."""
    return torch.sqrt(a.clamp_min(0.0) + EPS)


def square(a: torch.Tensor) -> torch.Tensor:
    return a * a


def instance_mean(a: torch.Tensor) -> torch.Tensor:
    """Mean over height and width, per example and channel."""
    return a.mean(dim=(2, 3), keepdim=True)


def instance_var(a: torch.Tensor) -> torch.Tensor:
    return a.var(dim=(2, 3), keepdim=True, correction=0)


def instance_std(a: torch.Tensor) -> torch.Tensor:
    return torch.sqrt(instance_var(a) + EPS)


def group_count(channels: int, groups: int) -> int:
    """The most groups, at most ``groups``, that divide ``channels`` evenly."""
    return max(g for g in range(1, min(groups, channels) + 1) if channels % g == 0)


def _grouped(a: torch.Tensor, groups: int) -> torch.Tensor:
    """``a`` as (batch, groups, channels per group * height * width)."""
    return a.reshape(a.shape[0], groups, -1)


def _ungrouped(stat: torch.Tensor, channels: int) -> torch.Tensor:
    """A per-group statistic (batch, groups, 1) back as (batch, channels, 1, 1)."""
    groups = stat.shape[1]
    return stat.repeat_interleave(channels // groups, dim=1).reshape(stat.shape[0], channels, 1, 1)


def group_mean(a: torch.Tensor, groups: int) -> torch.Tensor:
    """Mean over each group of channels, height and width, per example."""
    return _ungrouped(_grouped(a, groups).mean(dim=2, keepdim=True), a.shape[1])


def group_var(a: torch.Tensor, groups: int) -> torch.Tensor:
    return _ungrouped(_grouped(a, groups).var(dim=2, keepdim=True, correction=0), a.shape[1])


def group_std(a: torch.Tensor, groups: int) -> torch.Tensor:
    return torch.sqrt(group_var(a, groups) + EPS)


class BatchMoment(nn.Module):
    """A moment over the batch, height and width, per channel (``mean``, ``var`` or
    ``std``), with a moving average used for inference, as BatchNorm keeps one.

    In training it returns the batch's moment and updates the moving average (of the
    unbiased variance, as ``nn.BatchNorm2d`` does, so that a layer built of these equals
    BatchNorm in both modes); in evaluation it returns the moving average's.
    """

    running_mean: torch.Tensor
    running_var: torch.Tensor

    def __init__(self, moment: str, channels: int, momentum: float = 0.1) -> None:
        super().__init__()
        self.moment = moment
        self.momentum = momentum
        if moment == "mean":
            self.register_buffer("running_mean", torch.zeros(1, channels, 1, 1))
        else:
            self.register_buffer("running_var", torch.ones(1, channels, 1, 1))

    def forward(self, a: torch.Tensor) -> torch.Tensor:
        if self.moment == "mean":
            return self._mean(a)
        var = self._var(a)
        return var if self.moment == "var" else torch.sqrt(var + EPS)

    def _mean(self, a: torch.Tensor) -> torch.Tensor:
        if not self.training:
            return self.running_mean
        mean = a.mean(dim=(0, 2, 3), keepdim=True)
        with torch.no_grad():
            self.running_mean.lerp_(mean, self.momentum)
        return mean

    def _var(self, a: torch.Tensor) -> torch.Tensor:
        if not self.training:
            return self.running_var
        var = a.var(dim=(0, 2, 3), keepdim=True, correction=0)
        count = a.numel() // a.shape[1]
        with torch.no_grad():
            unbiased = var * (count / (count - 1)) if count > 1 else var
            self.running_var.lerp_(unbiased, self.momentum)
        return var
