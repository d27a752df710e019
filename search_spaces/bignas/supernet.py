"""The BigNAS supernet: one max-size weight per layer, sliced to the active child.

Every dynamic layer keeps the largest child's weights in plain ``nn.Conv2d`` /
``nn.BatchNorm2d`` / ``nn.Linear`` holders (so initialisation, BN recalibration and
state dicts work as usual) and runs a child with views of them: the first ``c_out``
filters on the first ``c_in`` input channels, the centre ``k x k`` of a depthwise kernel,
BN parameters and running statistics of the active channels (updated in place). Skipped
blocks do not run. The slicing rule is also what :meth:`BigNASSupernet.extract` copies,
so an extracted child computes exactly what the active supernet computes.
"""

from __future__ import annotations

from typing import Any

import torch
import torch.nn.functional as F
from torch import nn

from search_spaces.bignas.arch import BigNASArch, extreme_arch, plan_blocks, validate_arch
from search_spaces.bignas.model import BigNASNetwork, block_table, init_weights
from search_spaces.bignas.presets import Preset
from search_spaces.sync_batch_norm import global_batch_norm


def sub_weight(weight: torch.Tensor, size: tuple[int, ...]) -> torch.Tensor:
    """``weight[:n0, :n1, centre n2, centre n3]`` as one view (``weight`` itself if full).

    One ``as_strided`` instead of a slice per dimension: each view op is a node in the
    backward pass that scatters its gradient into a zero tensor of the full size, and for
    a small child these nodes rival the convolutions in cost. Built from the parameter's
    own strides and offset, so any memory layout (e.g. channels-last) is handled. The
    centre crop of a kernel dimension starts at ``(full - size) // 2``.
    """
    full = weight.shape
    if full == size:
        return weight
    stride = weight.stride()
    offset = weight.storage_offset()
    if len(size) == 4 and size[2] < full[2]:  # square kernels: one offset for both axes
        offset += (full[2] - size[2]) // 2 * (stride[2] + stride[3])
    return weight.as_strided(size, stride, offset)


class DynamicConvBN(nn.Module):
    """A conv (no bias) and BN holding the largest child's weights; optional swish."""

    def __init__(
        self, c_in: int, c_out: int, kernel: int, stride: int = 1, *, depthwise: bool = False
    ) -> None:
        super().__init__()
        groups = c_in if depthwise else 1
        self.conv = nn.Conv2d(c_in, c_out, kernel, stride, kernel // 2, groups=groups, bias=False)
        self.bn = nn.BatchNorm2d(c_out)
        self.stride = stride
        self.depthwise = depthwise
        # Set by BigNASSupernet.set_batch_norm_sync during data-parallel training.
        self.sync_batch_norm = False

    def forward(self, x: torch.Tensor, c_out: int, kernel: int, act: bool) -> torch.Tensor:
        """Run the first ``c_out`` filters (all of them if depthwise) with a ``kernel`` crop."""
        c_in = groups = x.shape[1]
        if self.depthwise:
            weight = sub_weight(self.conv.weight, (c_in, 1, kernel, kernel))
            c_out = c_in
        else:
            weight = sub_weight(self.conv.weight, (c_out, c_in, kernel, kernel))
            groups = 1
        x = F.conv2d(x, weight, None, self.stride, kernel // 2, 1, groups)
        x = self._batch_norm(x, c_out)
        return F.silu(x) if act else x

    def _batch_norm(self, x: torch.Tensor, c: int) -> torch.Tensor:
        # nn.BatchNorm2d's own arithmetic, on the first `c` channels. The BN module's flag
        # (not this module's) decides, so that BN-only recalibration works on the supernet.
        bn = self.bn
        assert bn.running_mean is not None and bn.running_var is not None
        factor = 0.0
        if bn.training:
            assert bn.num_batches_tracked is not None
            bn.num_batches_tracked.add_(1)
            momentum = bn.momentum
            factor = 1.0 / float(bn.num_batches_tracked) if momentum is None else momentum
        mean: torch.Tensor = bn.running_mean
        var: torch.Tensor = bn.running_var
        weight: torch.Tensor = bn.weight
        bias: torch.Tensor = bn.bias
        if c < bn.num_features:
            # Views: the in-place running-statistics update lands in the shared buffers.
            mean, var, weight, bias = mean[:c], var[:c], weight[:c], bias[:c]
        if bn.training and self.sync_batch_norm:
            return global_batch_norm(x, mean, var, weight, bias, factor, bn.eps)
        return F.batch_norm(x, mean, var, weight, bias, bn.training, factor, bn.eps)


class DynamicSqueezeExcite(nn.Module):
    """Squeeze-excite on the active channels, with the active hidden width."""

    def __init__(self, channels: int, hidden: int) -> None:
        super().__init__()
        self.fc1 = nn.Linear(channels, hidden)
        self.fc2 = nn.Linear(hidden, channels)

    def forward(self, x: torch.Tensor, hidden: int) -> torch.Tensor:
        c, h = x.shape[1], hidden
        w1: torch.Tensor = self.fc1.weight
        w2: torch.Tensor = self.fc2.weight
        b1: torch.Tensor = self.fc1.bias
        b2: torch.Tensor = self.fc2.bias
        if c < w1.shape[1] or h < w1.shape[0]:
            w1, b1, w2, b2 = sub_weight(w1, (h, c)), b1[:h], sub_weight(w2, (c, h)), b2[:c]
        gate = torch.sigmoid(F.linear(F.silu(F.linear(x.mean((2, 3)), w1, b1)), w2, b2))
        return x * gate[:, :, None, None]


class DynamicMBConv(nn.Module):
    """An MBConv block with elastic output width, kernel size and expansion ratio."""

    def __init__(self, c_in: int, c_out: int, kernel: int, stride: int, expand: int) -> None:
        super().__init__()
        mid = c_in * expand
        # A stage whose largest ratio is 1 never expands (MobileNetV2's first block).
        self.expand = DynamicConvBN(c_in, mid, 1) if expand > 1 else None
        self.depthwise = DynamicConvBN(mid, mid, kernel, stride, depthwise=True)
        # A quarter of the block's input width, as the static MBConv (EfficientNet's rule).
        self.se = DynamicSqueezeExcite(mid, max(1, c_in // 4))
        self.project = DynamicConvBN(mid, c_out, 1)

    def forward(
        self,
        x: torch.Tensor,
        c_out: int,
        kernel: int,
        expand: int,
        residual: bool,
        drop_connect: float,
    ) -> torch.Tensor:
        y = x
        if expand > 1:
            assert self.expand is not None
            y = self.expand(x, x.shape[1] * expand, 1, True)
        squeezed = self.se(self.depthwise(y, 0, kernel, True), max(1, x.shape[1] // 4))
        y = self.project(squeezed, c_out, 1, False)
        if not residual:
            return y
        if self.training and drop_connect > 0.0:
            keep = 1.0 - drop_connect
            # The static MBConv's expression, draw for draw (same random stream).
            y = y * x.new_empty(x.shape[0], 1, 1, 1).bernoulli_(keep) / keep
        return x + y


def _crop(source: torch.Tensor, shape: torch.Size) -> torch.Tensor:
    """First-N along output/input channels, centre crop along kernel dimensions."""
    if source.dim() != len(shape):
        raise RuntimeError(f"cannot crop {tuple(source.shape)} to {tuple(shape)}")
    index = []
    for dim, (have, want) in enumerate(zip(source.shape, shape, strict=True)):
        lo = 0 if dim < 2 else (have - want) // 2
        if want > have:
            raise RuntimeError(f"cannot crop {tuple(source.shape)} to {tuple(shape)}")
        index.append(slice(lo, lo + want))
    return source[tuple(index)]


class BigNASSupernet(nn.Module):
    """Every child of a preset in one network; ``set_active`` picks the child that runs.

    Args:
        preset: The elastic choices (and the layout) of the space.
        in_channels: Image channels.
        num_classes: Logits per example.
        dropout: Initial dropout before the classifier (see :meth:`set_regularization`).
        drop_connect: Initial stochastic-depth rate of the last active block.
    """

    def __init__(
        self,
        preset: Preset,
        in_channels: int,
        num_classes: int,
        *,
        dropout: float,
        drop_connect: float,
    ) -> None:
        super().__init__()
        self.preset = preset
        self.in_channels = in_channels
        self.num_classes = num_classes
        self.stem = DynamicConvBN(in_channels, max(preset.stems), 3, preset.stem_stride)
        stages = []
        residual_blocks: list[nn.Module] = []
        widths_in = preset.stems
        for spec in preset.stages:
            blocks = nn.ModuleList()
            for j in range(spec.max_depth):
                stride = spec.stride if j == 0 else 1
                block = DynamicMBConv(
                    max(widths_in), max(spec.widths), max(spec.kernels), stride, max(spec.expands)
                )
                blocks.append(block)
                # A block may add its input for some child: zero-init its last BN gamma.
                if stride == 1 and set(widths_in) & set(spec.widths):
                    residual_blocks.append(block)
                widths_in = spec.widths
            stages.append(blocks)
        self.stages = nn.ModuleList(stages)
        self.head = DynamicConvBN(max(widths_in), max(preset.heads), 1)
        self.classifier = nn.Linear(max(preset.heads), num_classes)
        init_weights(self, residual_blocks)
        self._dropout = 0.0
        self._drop_connect = 0.0
        self.set_regularization(dropout=dropout, drop_connect=drop_connect)
        self._arch = extreme_arch(preset, max)
        self._plan: list[tuple[DynamicMBConv, int, int, int, bool, float]] = []
        self.set_active(self._arch)

    # ------------------------------------------------------------------ child selection
    @property
    def active(self) -> BigNASArch:
        """The child that forward passes run."""
        return self._arch

    def set_active(self, arch: BigNASArch) -> None:
        """Run ``arch`` from now on (``ArchitectureError`` if it is not a child)."""
        validate_arch(arch, self.preset)
        blocks = plan_blocks(arch, self.preset)
        plan = []
        for n, b in enumerate(blocks):
            module = self.stages.get_submodule(f"{b.stage}.{b.position}")
            assert isinstance(module, DynamicMBConv)
            residual = b.stride == 1 and b.c_in == b.c_out
            # Stochastic depth grows linearly with the position among the active blocks.
            plan.append((module, b.c_out, b.kernel, b.expand, residual, n / len(blocks)))
        self._arch, self._plan = arch, plan

    def set_regularization(self, *, dropout: float, drop_connect: float) -> None:
        """Dropout before the classifier and the last block's stochastic-depth rate.

        BigNAS regularises only the biggest child: the trainer sets the rates before the
        biggest child's forward pass and zeros before the others'.
        """
        for name, value in (("dropout", dropout), ("drop_connect", drop_connect)):
            if (
                isinstance(value, bool)
                or not isinstance(value, (int, float))
                or not (0.0 <= value < 1.0)
            ):
                raise ValueError(f"{name} must be a number in [0, 1), got {value!r}.")
        self._dropout = float(dropout)
        self._drop_connect = float(drop_connect)

    def set_batch_norm_sync(self, enabled: bool) -> None:
        """Normalise training batches with statistics over every data-parallel process
        (torch.distributed's default group), so that W processes with a share of the batch
        each compute what one process with the whole batch computes."""
        for module in self.modules():
            if isinstance(module, DynamicConvBN):
                module.sync_batch_norm = enabled

    @property
    def regularization(self) -> dict[str, float]:
        """The current ``dropout`` and ``drop_connect`` rates."""
        return {"dropout": self._dropout, "drop_connect": self._drop_connect}

    # ------------------------------------------------------------------ forward / extract
    def forward(self, x: torch.Tensor) -> torch.Tensor:
        arch = self._arch
        r = arch.resolution
        if x.shape[-2] != r or x.shape[-1] != r:
            x = F.interpolate(x, size=(r, r), mode="bilinear", align_corners=False)
        x = self.stem(x, arch.stem, 3, True)  # (B, stem, R / stem_stride, R / stem_stride)
        rate = self._drop_connect
        for block, c_out, kernel, expand, residual, depth in self._plan:
            x = block(x, c_out, kernel, expand, residual, rate * depth)
        x = self.head(x, arch.head, 1, True).mean((2, 3))  # (B, head)
        if self.training and self._dropout > 0.0:
            x = F.dropout(x, self._dropout, training=True)
        weight = sub_weight(self.classifier.weight, (self.num_classes, arch.head))
        return F.linear(x, weight, self.classifier.bias)  # (B, num_classes)

    def extract(self, arch: BigNASArch) -> BigNASNetwork:
        """A static child holding copies of ``arch``'s weights and BN buffers.

        Its structure is ``build(arch, data)``'s; it lives on the supernet's device, has
        its training flag and current regularisation, and computes what the supernet
        computes with ``arch`` active (in training mode too, given the same random state).
        """
        validate_arch(arch, self.preset)
        reference = self.classifier.weight
        child = BigNASNetwork(
            self.in_channels,
            self.num_classes,
            resolution=arch.resolution,
            stem=arch.stem,
            stem_stride=self.preset.stem_stride,
            blocks=block_table(arch, self.preset),
            head=arch.head,
            **self.regularization,
        ).to(device=reference.device, dtype=reference.dtype)
        prefixes = {
            f"blocks.{n}.": f"stages.{b.stage}.{b.position}."
            for n, b in enumerate(plan_blocks(arch, self.preset))
        }
        shared = self.state_dict()
        state: dict[str, Any] = {}
        for key, target in child.state_dict().items():
            source = key
            if key.startswith("blocks."):
                prefix = key[: key.index(".", len("blocks.")) + 1]
                source = prefixes[prefix] + key[len(prefix) :]
            state[key] = _crop(shared[source], target.shape)
        child.load_state_dict(state, strict=True)  # copies
        return child.train(self.training)
