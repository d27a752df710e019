"""Layers from the literature as graphs of the space, and as direct formulas.

The graphs (:func:`named_layers`) are what the search compares against; the direct
formula modules (:data:`FORMULAS`) are hand-written from the papers, independently of
the graph machinery, to check the graphs against (the tests, to 1e-5 in training and
inference) and to time them (``benchmarks/evonorm.py``):

* BN-ReLU: ``nn.BatchNorm2d`` then ReLU (Ioffe & Szegedy 2015);
* GN-ReLU: ``nn.GroupNorm`` then ReLU (Wu & He 2018);
* EvoNorm-B0: ``x / max(sqrt(s2_bhw(x) + eps), v*x + sqrt(s2_hw(x) + eps)) * gamma + beta``
  (Liu et al. 2020), the batch variance's moving average serving inference;
* EvoNorm-S0: ``x * sigmoid(v*x) / sqrt(s2_ghw(x) + eps) * gamma + beta``, over groups of
  channels (32 in the paper).
"""

from __future__ import annotations

from collections.abc import Callable

import torch
from torch import nn

from search_spaces.evonorm import ops
from search_spaces.evonorm.graph import LayerGraph, padded

# Leaves: 0 x, 1 zero, 2 gamma, 3 beta, 4 v; the first node is index 5.
_NAMED_NODES: dict[str, list[tuple[str, tuple[int, ...]]]] = {
    "bn-relu": [
        ("batch_mean", (0,)),  # 5
        ("neg", (5,)),  # 6
        ("add", (0, 6)),  # 7: x - mean
        ("batch_std", (0,)),  # 8
        ("div", (7, 8)),  # 9
        ("mul", (9, 2)),  # 10: * gamma
        ("add", (10, 3)),  # 11: + beta
        ("max", (11, 1)),  # 12: ReLU
    ],
    "gn-relu": [
        ("group_mean", (0,)),
        ("neg", (5,)),
        ("add", (0, 6)),
        ("group_std", (0,)),
        ("div", (7, 8)),
        ("mul", (9, 2)),
        ("add", (10, 3)),
        ("max", (11, 1)),
    ],
    "evonorm-b0": [
        ("batch_std", (0,)),  # 5
        ("mul", (4, 0)),  # 6: v * x
        ("instance_std", (0,)),  # 7
        ("add", (6, 7)),  # 8
        ("max", (5, 8)),  # 9
        ("div", (0, 9)),  # 10
        ("mul", (10, 2)),  # 11
        ("add", (11, 3)),  # 12
    ],
    "evonorm-s0": [
        ("mul", (4, 0)),  # 5: v * x
        ("sigmoid", (5,)),  # 6
        ("mul", (0, 6)),  # 7: x * sigmoid(v * x)
        ("group_std", (0,)),  # 8
        ("div", (7, 8)),  # 9
        ("mul", (9, 2)),  # 10
        ("add", (10, 3)),  # 11
    ],
}
NAMES = tuple(_NAMED_NODES)
SMALLEST_GENOME = max(len(nodes) for nodes in _NAMED_NODES.values())


def named_layers(length: int) -> dict[str, LayerGraph]:
    """The named layers as genomes of ``length`` nodes (dead filler first)."""
    return {name: padded(nodes, length) for name, nodes in _NAMED_NODES.items()}


class BNReLU(nn.Sequential):
    def __init__(self, channels: int, groups: int) -> None:
        super().__init__(nn.BatchNorm2d(channels), nn.ReLU())


class GNReLU(nn.Sequential):
    def __init__(self, channels: int, groups: int) -> None:
        super().__init__(nn.GroupNorm(ops.group_count(channels, groups), channels), nn.ReLU())


class _Affine(nn.Module):
    def __init__(self, channels: int) -> None:
        super().__init__()
        self.gamma = nn.Parameter(torch.ones(1, channels, 1, 1))
        self.beta = nn.Parameter(torch.zeros(1, channels, 1, 1))
        self.v = nn.Parameter(torch.ones(1, channels, 1, 1))


class EvoNormB0(_Affine):
    """EvoNorm-B0 written out (Liu et al. 2020, Table 1)."""

    running_var: torch.Tensor

    def __init__(self, channels: int, groups: int, momentum: float = 0.1) -> None:
        super().__init__(channels)
        self.momentum = momentum
        self.register_buffer("running_var", torch.ones(1, channels, 1, 1))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if self.training:
            batch_var = x.var(dim=(0, 2, 3), keepdim=True, unbiased=False)
            n = x.numel() / x.shape[1]
            with torch.no_grad():
                self.running_var.mul_(1 - self.momentum).add_(
                    self.momentum * batch_var * n / (n - 1)
                )
        else:
            batch_var = self.running_var
        instance_var = x.var(dim=(2, 3), keepdim=True, unbiased=False)
        denominator = torch.maximum(
            (batch_var + ops.EPS).sqrt(), self.v * x + (instance_var + ops.EPS).sqrt()
        )
        return x / denominator * self.gamma + self.beta


class EvoNormS0(_Affine):
    """EvoNorm-S0 written out (Liu et al. 2020, Table 1)."""

    def __init__(self, channels: int, groups: int) -> None:
        super().__init__(channels)
        self.groups = ops.group_count(channels, groups)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        b, c, h, w = x.shape
        grouped = x.reshape(b, self.groups, c // self.groups, h, w)
        var = grouped.var(dim=(2, 3, 4), keepdim=True, unbiased=False)
        std = (var + ops.EPS).sqrt().expand_as(grouped).reshape(b, c, h, w)
        return x * torch.sigmoid(self.v * x) / std * self.gamma + self.beta


FORMULAS: dict[str, Callable[[int, int], nn.Module]] = {
    "bn-relu": BNReLU,
    "gn-relu": GNReLU,
    "evonorm-b0": EvoNormB0,
    "evonorm-s0": EvoNormS0,
}
