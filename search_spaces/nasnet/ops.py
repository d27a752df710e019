"""The 13 NASNet operations and the building blocks around them.

``ReLUConvBN``, ``SpatialSepConv``, ``SepConv``, ``FactorizedReduce`` and ``UnusedCell`` are
copied verbatim (``inspect.getsource``) into the standalone source that
:mod:`search_spaces.nasnet.codegen` writes, so that the platform model and the exported file
share one module structure and their state-dict keys agree. These classes may therefore
refer only to ``torch``, ``nn`` and ``F``, and their docstrings must make sense on their own.

Every op maps ``C`` channels to ``C`` channels (convolutions may read another count:
the ImageNet layout's first stem cell); ``stride`` is 2 for ops that read a reduction
cell's inputs and 1 everywhere else.
"""

from __future__ import annotations

from typing import Any

import torch
import torch.nn.functional as F
from torch import nn

# The search space's operations, in the order offered to the sampler. Never reorder: stored
# Optuna trials refer to these names, and the order defines the categorical distribution.
OPS: tuple[str, ...] = (
    "identity",
    "conv_1x3_3x1",
    "conv_1x7_7x1",
    "dil_conv_3x3",
    "avg_pool_3x3",
    "max_pool_3x3",
    "max_pool_5x5",
    "max_pool_7x7",
    "conv_1x1",
    "conv_3x3",
    "sep_conv_3x3",
    "sep_conv_5x5",
    "sep_conv_7x7",
)


class ReLUConvBN(nn.Module):
    """ReLU -> conv (no bias: BN follows) -> BN."""

    def __init__(
        self,
        c_in: int,
        c_out: int,
        kernel_size: int,
        stride: int = 1,
        padding: int = 0,
        dilation: int = 1,
    ) -> None:
        super().__init__()
        self.op = nn.Sequential(
            nn.ReLU(),
            nn.Conv2d(
                c_in,
                c_out,
                kernel_size,
                stride=stride,
                padding=padding,
                dilation=dilation,
                bias=False,
            ),
            nn.BatchNorm2d(c_out),
        )

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.op(x)


class SpatialSepConv(nn.Module):
    """ReLU -> 1xk conv -> kx1 conv -> BN: a kxk receptive field from 2k weights."""

    def __init__(self, c_in: int, c: int, kernel_size: int, stride: int = 1) -> None:
        super().__init__()
        pad = kernel_size // 2
        self.op = nn.Sequential(
            nn.ReLU(),
            nn.Conv2d(c_in, c, (1, kernel_size), stride=(1, stride), padding=(0, pad), bias=False),
            nn.Conv2d(c, c, (kernel_size, 1), stride=(stride, 1), padding=(pad, 0), bias=False),
            nn.BatchNorm2d(c),
        )

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.op(x)


class SepConv(nn.Module):
    """Depthwise-separable conv applied twice, as in NASNet; stride only in the first,
    whose pointwise conv maps ``c_in`` to ``c`` channels."""

    def __init__(self, c_in: int, c: int, kernel_size: int, stride: int = 1) -> None:
        super().__init__()
        pad = kernel_size // 2
        self.op = nn.Sequential(
            nn.ReLU(),
            nn.Conv2d(c_in, c_in, kernel_size, stride=stride, padding=pad, groups=c_in, bias=False),
            nn.Conv2d(c_in, c, 1, bias=False),
            nn.BatchNorm2d(c),
            nn.ReLU(),
            nn.Conv2d(c, c, kernel_size, stride=1, padding=pad, groups=c, bias=False),
            nn.Conv2d(c, c, 1, bias=False),
            nn.BatchNorm2d(c),
        )

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.op(x)


class FactorizedReduce(nn.Module):
    """Halve the resolution without losing every other pixel.

    Two 1x1 stride-2 convs see the input and the input shifted by one pixel, so between
    them they sample all four positions of each 2x2 patch; their outputs are concatenated.
    """

    def __init__(self, c_in: int, c_out: int) -> None:
        super().__init__()
        self.relu = nn.ReLU()
        self.conv_a = nn.Conv2d(c_in, c_out // 2, 1, stride=2, bias=False)
        self.conv_b = nn.Conv2d(c_in, c_out - c_out // 2, 1, stride=2, bias=False)
        self.bn = nn.BatchNorm2d(c_out)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = self.relu(x)
        # Pad right/bottom before shifting, so both paths give ceil(H/2) x ceil(W/2).
        shifted = F.pad(x, (0, 1, 0, 1))[:, :, 1:, 1:]
        return self.bn(torch.cat([self.conv_a(x), self.conv_b(shifted)], dim=1))


class UnusedCell(nn.Module):
    """Stands in for a cell whose output no later layer reads.

    A cell genotype may ignore one of its inputs; then the cell that feeds only that input
    cannot affect the logits. Building it would add parameters that never get a gradient
    and would inflate parameter counts, so the network keeps this empty placeholder to
    preserve cell numbering (and state-dict keys) instead.
    """

    def forward(self, s0: torch.Tensor | None, s1: torch.Tensor | None) -> None:
        return None


def drop_path(x: torch.Tensor, drop_prob: float) -> torch.Tensor:
    """Zero whole samples of ``x`` with probability ``drop_prob``; rescale the rest by 1/keep.

    The rescaling keeps the expected value of every element equal to ``x``.
    """
    if drop_prob <= 0.0:
        return x
    keep = 1.0 - drop_prob
    mask = torch.empty((x.shape[0],) + (1,) * (x.dim() - 1), dtype=x.dtype, device=x.device)
    return x * mask.bernoulli_(keep) / keep


class ScheduledDropPath(nn.Module):
    """Drop-path whose probability the network sets from cell depth and training progress.

    Active only in training mode; ``drop_prob`` is updated by
    ``NASNetwork.set_training_progress``. Not exported: inference code has no drop path.
    """

    def __init__(self) -> None:
        super().__init__()
        self.drop_prob = 0.0

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if not self.training or self.drop_prob <= 0.0:
            return x
        return drop_path(x, self.drop_prob)

    def extra_repr(self) -> str:
        return f"drop_prob={self.drop_prob:.4f}"


# Ops whose input may have another channel count than their output (the convolutions).
CHANNEL_MAPPING_OPS = frozenset(
    {"conv_1x3_3x1", "conv_1x7_7x1", "dil_conv_3x3", "conv_1x1", "conv_3x3"}
    | {f"sep_conv_{k}x{k}" for k in (3, 5, 7)}
)

# An op's constructor call: class, positional args, keyword args. The strings "c" and
# ``c_in`` stand for the cell's channel count and the op's input channels; every other
# value is a plain int or bool, so the same spec both builds the module here and is
# rendered into exported source without evaluating text.
OpSpec = tuple[type[nn.Module], tuple[Any, ...], dict[str, Any]]


def op_spec(name: str, stride: int, c_in: str = "c") -> OpSpec:
    """How to construct op ``name`` with ``stride`` (1 or 2) reading ``c_in`` channels
    (another count than ``"c"`` only for ``CHANNEL_MAPPING_OPS``)."""
    if c_in != "c" and name not in CHANNEL_MAPPING_OPS:
        raise ValueError(f"NASNet op {name!r} cannot change the channel count.")
    if name == "identity":
        # A strided identity must still halve the resolution (reduction-cell input).
        return (FactorizedReduce, ("c", "c"), {}) if stride > 1 else (nn.Identity, (), {})
    if name in ("conv_1x3_3x1", "conv_1x7_7x1"):
        k = 3 if name == "conv_1x3_3x1" else 7
        return SpatialSepConv, (c_in, "c"), {"kernel_size": k, "stride": stride}
    if name == "dil_conv_3x3":
        return (
            ReLUConvBN,
            (c_in, "c"),
            {"kernel_size": 3, "stride": stride, "padding": 2, "dilation": 2},
        )
    if name == "avg_pool_3x3":
        # Border averages ignore the zero padding, so they do not shrink toward zero.
        return nn.AvgPool2d, (3,), {"stride": stride, "padding": 1, "count_include_pad": False}
    if name.startswith("max_pool_"):
        k = int(name[-1])
        return nn.MaxPool2d, (k,), {"stride": stride, "padding": k // 2}
    if name in ("conv_1x1", "conv_3x3"):
        k = int(name[-1])
        return ReLUConvBN, (c_in, "c"), {"kernel_size": k, "stride": stride, "padding": k // 2}
    if name.startswith("sep_conv_"):
        return SepConv, (c_in, "c"), {"kernel_size": int(name[-1]), "stride": stride}
    raise ValueError(f"Unknown NASNet op {name!r}; expected one of {', '.join(OPS)}.")


def make_op(name: str, c: int, stride: int, c_in: int | None = None) -> nn.Module:
    """Instantiate op ``name`` for ``c`` channels (read from ``c_in``, default ``c``)."""
    values = {"c": c, "c_in": c if c_in is None else c_in}
    cls, args, kwargs = op_spec(name, stride, "c" if c_in is None else "c_in")
    return cls(*(values.get(a, a) if isinstance(a, str) else a for a in args), **kwargs)
