"""Static BigNAS children: plain ``nn.Conv2d`` / ``nn.BatchNorm2d`` / ``nn.Linear`` networks.

``ConvBNAct``, ``SqueezeExcite``, ``MBConv`` and ``BigNASNetwork`` are copied verbatim
(``inspect.getsource``) into the standalone source that :mod:`search_spaces.bignas.codegen`
writes, so the platform model, the child extracted from the supernet and the exported file
share one module structure and their state-dict keys agree. These classes may therefore
refer only to ``torch``, ``nn`` and ``F``, and their docstrings must make sense on their own.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn

from search_spaces.bignas.arch import BigNASArch, plan_blocks
from search_spaces.bignas.presets import Preset


class ConvBNAct(nn.Module):
    """Conv (no bias: BN follows) -> BN -> optional swish (SiLU); "same" padding."""

    def __init__(
        self,
        c_in: int,
        c_out: int,
        kernel: int,
        stride: int = 1,
        *,
        depthwise: bool = False,
        act: bool = True,
    ) -> None:
        super().__init__()
        groups = c_in if depthwise else 1
        self.conv = nn.Conv2d(c_in, c_out, kernel, stride, kernel // 2, groups=groups, bias=False)
        self.bn = nn.BatchNorm2d(c_out)
        self.act = act

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = self.bn(self.conv(x))
        return F.silu(x) if self.act else x


class SqueezeExcite(nn.Module):
    """Channel gates from globally pooled features: FC -> swish -> FC -> sigmoid."""

    def __init__(self, channels: int, hidden: int) -> None:
        super().__init__()
        self.fc1 = nn.Linear(channels, hidden)
        self.fc2 = nn.Linear(hidden, channels)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        gate = torch.sigmoid(self.fc2(F.silu(self.fc1(x.mean((2, 3))))))  # (B, C)
        return x * gate[:, :, None, None]


class MBConv(nn.Module):
    """Inverted residual: 1x1 expand -> kxk depthwise -> squeeze-excite -> 1x1 project.

    The expansion conv is left out when ``expand == 1`` (as in MobileNetV2). With stride 1
    and equal in/out channels the block adds its input back; during training the branch
    is then dropped for whole samples with probability ``drop_connect`` (stochastic depth).
    """

    def __init__(self, c_in: int, c_out: int, kernel: int, stride: int, expand: int) -> None:
        super().__init__()
        mid = c_in * expand
        self.expand = ConvBNAct(c_in, mid, 1) if expand > 1 else nn.Identity()
        self.depthwise = ConvBNAct(mid, mid, kernel, stride, depthwise=True)
        # Squeeze to a quarter of the block's input width, as EfficientNet (se_ratio 0.25).
        self.se = SqueezeExcite(mid, max(1, c_in // 4))
        self.project = ConvBNAct(mid, c_out, 1, act=False)
        self.residual = stride == 1 and c_in == c_out
        self.drop_connect = 0.0

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        y = self.project(self.se(self.depthwise(self.expand(x))))
        if not self.residual:
            return y
        if self.training and self.drop_connect > 0.0:
            keep = 1.0 - self.drop_connect
            # One draw per sample, rescaled so the expected output is unchanged.
            y = y * x.new_empty(x.shape[0], 1, 1, 1).bernoulli_(keep) / keep
        return x + y


class BigNASNetwork(nn.Module):
    """Resize -> stem -> MBConv blocks -> 1x1 "last conv" -> pool -> dropout -> linear.

    Args:
        in_channels: Image channels.
        num_classes: Logits per example.
        resolution: Side the input is resized to (bilinear) when it has another size, so
            the network accepts the data set's images as they are.
        stem: Output channels of the stem 3x3 conv.
        stem_stride: Stride of the stem conv.
        blocks: ``(c_in, c_out, kernel, stride, expand)`` of every MBConv block, in order.
        head: Output channels of the last 1x1 conv.
        dropout: Dropout before the classifier (training only).
        drop_connect: Stochastic-depth rate of the last block; block ``n`` of ``N`` uses
            ``drop_connect * n / N`` (training only).
    """

    def __init__(
        self,
        in_channels: int,
        num_classes: int,
        resolution: int,
        stem: int,
        stem_stride: int,
        blocks: list[tuple[int, int, int, int, int]],
        head: int,
        dropout: float = 0.0,
        drop_connect: float = 0.0,
    ) -> None:
        super().__init__()
        self.resolution = resolution
        self.stem = ConvBNAct(in_channels, stem, 3, stem_stride)
        self.blocks = nn.ModuleList(MBConv(*block) for block in blocks)
        self.head = ConvBNAct(blocks[-1][1], head, 1)
        self.classifier = nn.Linear(head, num_classes)
        self.set_regularization(dropout=dropout, drop_connect=drop_connect)

    def set_regularization(self, *, dropout: float, drop_connect: float) -> None:
        """Dropout before the classifier; stochastic depth growing linearly with depth."""
        self.dropout = dropout
        for n, block in enumerate(self.blocks):
            if isinstance(block, MBConv):
                block.drop_connect = drop_connect * n / len(self.blocks)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        r = self.resolution
        if x.shape[-2] != r or x.shape[-1] != r:
            x = F.interpolate(x, size=(r, r), mode="bilinear", align_corners=False)
        x = self.stem(x)  # (B, stem, R / stem_stride, R / stem_stride)
        for block in self.blocks:
            x = block(x)  # each stride-2 block halves H and W
        x = self.head(x).mean((2, 3))  # (B, head)
        if self.training and self.dropout > 0.0:
            x = F.dropout(x, self.dropout, training=True)
        return self.classifier(x)  # (B, num_classes)


# ----------------------------------------------------------------------------- builders
def block_table(arch: BigNASArch, preset: Preset) -> list[tuple[int, int, int, int, int]]:
    """``(c_in, c_out, kernel, stride, expand)`` of each block of a validated child."""
    return [(b.c_in, b.c_out, b.kernel, b.stride, b.expand) for b in plan_blocks(arch, preset)]


def init_weights(model: nn.Module, residual_blocks: list[nn.Module]) -> None:
    """MobileNetV3-style initialisation, then zero gamma of each residual block's last BN.

    The zero gamma (BigNAS) makes every residual block start as the identity, which
    stabilises the training of many children that share the weights.

    Args:
        model: A static child or the supernet (it has a ``classifier``).
        residual_blocks: Blocks that add their input back (for some child, in a supernet);
            each has a ``project.bn``.
    """
    for module in model.modules():
        if isinstance(module, nn.Conv2d):
            nn.init.kaiming_normal_(module.weight, mode="fan_out")
        elif isinstance(module, nn.BatchNorm2d):
            nn.init.ones_(module.weight)
            nn.init.zeros_(module.bias)
    classifier = model.get_submodule("classifier")
    assert isinstance(classifier, nn.Linear)
    nn.init.normal_(classifier.weight, std=0.01)
    nn.init.zeros_(classifier.bias)
    for block in residual_blocks:
        bn = block.get_submodule("project.bn")
        assert isinstance(bn, nn.BatchNorm2d)
        nn.init.zeros_(bn.weight)


def build_network(
    arch: BigNASArch,
    preset: Preset,
    in_channels: int,
    num_classes: int,
    *,
    dropout: float,
    drop_connect: float,
) -> BigNASNetwork:
    """A freshly initialised static child (``arch`` must be validated)."""
    model = BigNASNetwork(
        in_channels,
        num_classes,
        resolution=arch.resolution,
        stem=arch.stem,
        stem_stride=preset.stem_stride,
        blocks=block_table(arch, preset),
        head=arch.head,
        dropout=dropout,
        drop_connect=drop_connect,
    )
    init_weights(model, [b for b in model.blocks if isinstance(b, MBConv) and b.residual])
    return model
