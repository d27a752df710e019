"""Host networks whose every BatchNorm+ReLU is a given normalization-activation layer.

``norm_act(channels)`` makes each such layer. A ResNet (pre-activation, He et al. 2016,
where every BatchNorm is followed by a ReLU) and a MobileNetV2 (Sandler et al. 2018,
whose linear bottleneck keeps its BatchNorm: it has no activation to replace), at the
widths the caller gives. This module imports only torch: exported networks hold it
verbatim.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence

import torch
from torch import nn

NormAct = Callable[[int], nn.Module]


class PreActBlock(nn.Module):
    """norm_act -> 3x3 conv (stride) -> norm_act -> 3x3 conv, plus the shortcut (a 1x1
    conv of the activated input where the shape changes)."""

    def __init__(self, in_width: int, width: int, stride: int, norm_act: NormAct) -> None:
        super().__init__()
        self.norm1 = norm_act(in_width)
        self.conv1 = nn.Conv2d(in_width, width, 3, stride, 1, bias=False)
        self.norm2 = norm_act(width)
        self.conv2 = nn.Conv2d(width, width, 3, 1, 1, bias=False)
        self.shortcut = (
            None
            if stride == 1 and in_width == width
            else nn.Conv2d(in_width, width, 1, stride, bias=False)
        )

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        out = self.norm1(x)
        shortcut = x if self.shortcut is None else self.shortcut(out)
        out = self.conv2(self.norm2(self.conv1(out)))
        return out + shortcut


class PreActResNet(nn.Module):
    """A 3x3 stem, one pre-activation block per width (the first at stride 1, then
    stride 2), a last norm_act, global average pooling and a linear classifier."""

    def __init__(
        self, in_channels: int, num_classes: int, widths: Sequence[int], norm_act: NormAct
    ) -> None:
        super().__init__()
        self.stem = nn.Conv2d(in_channels, widths[0], 3, 1, 1, bias=False)
        blocks, in_width = [], widths[0]
        for i, width in enumerate(widths):
            blocks.append(PreActBlock(in_width, width, 1 if i == 0 else 2, norm_act))
            in_width = width
        self.blocks = nn.Sequential(*blocks)
        self.norm = norm_act(in_width)
        self.classifier = nn.Linear(in_width, num_classes)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = self.norm(self.blocks(self.stem(x)))
        return self.classifier(x.mean(dim=(2, 3)))


class InvertedResidual(nn.Module):
    """1x1 expansion -> norm_act -> 3x3 depthwise (stride) -> norm_act -> 1x1 projection
    -> BatchNorm, added to the input where the shape allows."""

    def __init__(
        self, in_width: int, width: int, stride: int, expansion: int, norm_act: NormAct
    ) -> None:
        super().__init__()
        hidden = in_width * expansion
        self.expand = nn.Conv2d(in_width, hidden, 1, bias=False)
        self.norm1 = norm_act(hidden)
        self.depthwise = nn.Conv2d(hidden, hidden, 3, stride, 1, groups=hidden, bias=False)
        self.norm2 = norm_act(hidden)
        self.project = nn.Conv2d(hidden, width, 1, bias=False)
        self.bn = nn.BatchNorm2d(width)
        self.residual = stride == 1 and in_width == width

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        out = self.norm2(self.depthwise(self.norm1(self.expand(x))))
        out = self.bn(self.project(out))
        return x + out if self.residual else out


class MobileNetV2(nn.Module):
    """A 3x3 stem with norm_act, one inverted residual per width (expansion 4; the
    first at stride 1, then stride 2), a 1x1 head conv with norm_act, global average
    pooling and a linear classifier."""

    def __init__(
        self,
        in_channels: int,
        num_classes: int,
        widths: Sequence[int],
        head: int,
        norm_act: NormAct,
    ) -> None:
        super().__init__()
        self.stem = nn.Conv2d(in_channels, widths[0], 3, 1, 1, bias=False)
        self.stem_norm = norm_act(widths[0])
        blocks, in_width = [], widths[0]
        for i, width in enumerate(widths):
            blocks.append(InvertedResidual(in_width, width, 1 if i == 0 else 2, 4, norm_act))
            in_width = width
        self.blocks = nn.Sequential(*blocks)
        self.head = nn.Conv2d(in_width, head, 1, bias=False)
        self.head_norm = norm_act(head)
        self.classifier = nn.Linear(head, num_classes)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = self.blocks(self.stem_norm(self.stem(x)))
        x = self.head_norm(self.head(x))
        return self.classifier(x.mean(dim=(2, 3)))
