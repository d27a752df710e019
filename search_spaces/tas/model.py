"""The pruned CIFAR ResNet as a plain PyTorch module (exported verbatim by ``codegen``).

A block runs its convs (3x3, 3x3 for a basic block; 1x1, 3x3, 1x1 for a bottleneck;
the 3x3 takes the stride), each followed by BN and, but for the last, ReLU; then adds
its shortcut and applies ReLU. The shortcut is an average-pooled 1x1 conv where the
block halves the resolution (``pool``), a 1x1 conv + BN where pruning left its input
and output widths different (``project``, as in the TAS authors' pruned networks), and
the identity otherwise.
"""

from __future__ import annotations

from collections.abc import Sequence

import torch
import torch.nn.functional as F
from torch import nn

# One block: (input width, widths of its convs, stride, shortcut kind).
BlockSpec = tuple[int, Sequence[int], int, str]


class ConvBN(nn.Module):
    """A bias-free conv ("same" padding) followed by batch norm."""

    def __init__(self, in_width: int, out_width: int, kernel: int, stride: int) -> None:
        super().__init__()
        self.conv = nn.Conv2d(in_width, out_width, kernel, stride, kernel // 2, bias=False)
        self.bn = nn.BatchNorm2d(out_width)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.bn(self.conv(x))


def make_shortcut(in_width: int, out_width: int, kind: str) -> nn.Module:
    if kind == "pool":
        return nn.Sequential(nn.AvgPool2d(2), nn.Conv2d(in_width, out_width, 1, bias=False))
    if kind == "project":
        return nn.Sequential(
            nn.Conv2d(in_width, out_width, 1, bias=False), nn.BatchNorm2d(out_width)
        )
    return nn.Identity()


class Block(nn.Module):
    """A residual block: basic with two widths, bottleneck with three."""

    def __init__(self, in_width: int, widths: Sequence[int], stride: int, shortcut: str) -> None:
        super().__init__()
        kernels = (3, 3) if len(widths) == 2 else (1, 3, 1)
        strided = kernels.index(3)  # the first 3x3 conv takes the stride
        layers, width = [], in_width
        for i, (kernel, out_width) in enumerate(zip(kernels, widths, strict=True)):
            layers.append(ConvBN(width, out_width, kernel, stride if i == strided else 1))
            width = out_width
        self.layers = nn.ModuleList(layers)
        self.shortcut = make_shortcut(in_width, widths[-1], shortcut)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        out = x
        for i, layer in enumerate(self.layers):
            out = layer(out)
            if i < len(self.layers) - 1:
                out = F.relu(out)
        return F.relu(out + self.shortcut(x))


class CifarResNet(nn.Module):
    """Stem (3x3 conv, BN, ReLU), the residual blocks, global average pooling, a linear head."""

    def __init__(
        self, in_channels: int, num_classes: int, stem: int, blocks: Sequence[BlockSpec]
    ) -> None:
        super().__init__()
        self.stem = ConvBN(in_channels, stem, 3, 1)
        self.blocks = nn.Sequential(*[Block(*spec) for spec in blocks])
        width = blocks[-1][1][-1] if blocks else stem
        self.classifier = nn.Linear(width, num_classes)
        for module in self.modules():
            if isinstance(module, nn.Conv2d):
                nn.init.kaiming_normal_(module.weight, mode="fan_out", nonlinearity="relu")

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = self.blocks(F.relu(self.stem(x)))
        return self.classifier(x.mean(dim=(2, 3)))
