"""The TAS search network: every width and depth of a CIFAR ResNet at once.

Dong & Yang, "Network Pruning via Transformable Architecture Search" (NeurIPS 2019).
Each prunable conv keeps its full filters and one BN per width choice; a child keeps
a conv's first ``w`` filters and the BN of width ``w``. The architecture is learned as
one categorical distribution per conv's width and per stage's depth
(``arch_parameters``). A search step (``search_forward``):

* per conv, two widths are drawn from a Gumbel-softmax over its distribution; the
  conv runs at the larger, each width's slice goes through its own BN, the two are
  aligned to the larger width by channel-wise interpolation (:func:`interpolate_channels`,
  an adaptive average over channels) and summed, weighted by their renormalised
  Gumbel probabilities;
* per stage, the outputs after each candidate depth are aligned the same way and
  summed, weighted by a Gumbel-softmax over the depths;
* ``expected_macs`` is the differentiable expectation of the pruned network's
  multiply-adds under the distributions; with one-hot distributions it equals
  :func:`search_spaces.tas.arch.arch_macs` exactly.

``set_active(arch)`` runs one pruned network with the shared weights, and
``extract(arch)`` copies them into a :class:`~search_spaces.tas.model.CifarResNet`
(a shortcut that only pruning makes necessary, ``project``, has its own weights here,
untouched by the search, as the authors' pruned networks start it afresh).
"""

from __future__ import annotations

import math
from typing import TYPE_CHECKING, cast

import torch
import torch.nn.functional as F
from torch import nn

from search_spaces.tas.arch import TASArch, arch_from_layers, arch_macs, block_plans
from search_spaces.tas.model import CifarResNet
from search_spaces.tas.presets import Preset, width_choices

if TYPE_CHECKING:
    State = dict[str, torch.Tensor]

_KERNELS = {2: (3, 3), 3: (1, 3, 1)}
_EPS = 1e-7


def interpolate_channels(x: torch.Tensor, channels: int) -> torch.Tensor:
    """Channel-wise interpolation: ``x`` (N, C, H, W) resized to ``channels`` channels;
    output channel ``i`` averages input channels ``floor(i*C/channels)`` up to
    ``ceil((i+1)*C/channels) - 1`` (an adaptive average pool over the channel axis)."""
    if x.shape[1] == channels:
        return x
    return F.adaptive_avg_pool3d(x.unsqueeze(1), (channels, x.shape[2], x.shape[3])).squeeze(1)


def add_padded(a: torch.Tensor, b: torch.Tensor) -> torch.Tensor:
    """``a + b`` where the narrower one adds to the wider one's first channels."""
    if a.shape[1] == b.shape[1]:
        return a + b
    wide, narrow = (a, b) if a.shape[1] > b.shape[1] else (b, a)
    width = narrow.shape[1]
    return torch.cat([wide[:, :width] + narrow, wide[:, width:]], dim=1)


def gumbel_pick_two(logits: torch.Tensor, tau: float) -> tuple[list[int], torch.Tensor]:
    """Two different choices drawn from a Gumbel-softmax of ``logits`` at temperature
    ``tau`` (one if there is one), and their probabilities renormalised over the pair."""
    scores = gumbel_scores(logits, tau)
    count = min(2, logits.numel())
    with torch.no_grad():
        index = torch.multinomial(scores.softmax(0) + _EPS, count, replacement=False)
    return index.tolist(), scores[index].softmax(0)


def gumbel_scores(logits: torch.Tensor, tau: float) -> torch.Tensor:
    """``(log_softmax(logits) + Gumbel noise) / tau``."""
    uniform = torch.empty_like(logits).exponential_().clamp_min(1e-20)
    return (logits.log_softmax(0) - uniform.log()) / tau


class ElasticConv(nn.Module):
    """A full-width conv whose children keep its first filters, with one BN per width."""

    def __init__(
        self, in_width: int, out_width: int, kernel: int, stride: int, *, norm: bool = True
    ) -> None:
        super().__init__()
        self.conv = nn.Conv2d(in_width, out_width, kernel, stride, kernel // 2, bias=False)
        self.choices = width_choices(out_width)
        self.bns = nn.ModuleList(nn.BatchNorm2d(w) for w in self.choices) if norm else None

    def _bn(self, width: int) -> nn.BatchNorm2d:
        assert self.bns is not None
        return cast(nn.BatchNorm2d, self.bns[self.choices.index(width)])

    def _conv(self, x: torch.Tensor, width: int) -> torch.Tensor:
        conv = self.conv
        weight = conv.weight[:width, : x.shape[1]]
        return F.conv2d(x, weight, None, conv.stride, conv.padding)

    def forward(self, x: torch.Tensor, width: int) -> torch.Tensor:
        """The child keeping ``width`` filters."""
        out = self._conv(x, width)
        return out if self.bns is None else self._bn(width)(out)

    def mixture(self, x: torch.Tensor, picks: list[int], weights: torch.Tensor) -> torch.Tensor:
        """The weighted sum of the picked widths' outputs, aligned to the widest."""
        widths = [self.choices[i] for i in picks]
        top = max(widths)
        out = self._conv(x, top)
        total: torch.Tensor | None = None
        for width, weight in zip(widths, weights, strict=True):
            part = out[:, :width]
            if self.bns is not None:
                part = self._bn(width)(part)
            part = interpolate_channels(part, top) * weight
            total = part if total is None else total + part
        assert total is not None
        return total

    def child_state(self, in_width: int, width: int, conv: str, bn: str | None) -> State:
        state = {f"{conv}.weight": self.conv.weight[:width, :in_width]}
        if bn is not None and self.bns is not None:
            chosen = self._bn(width).state_dict()
            state.update({f"{bn}.{k}": v for k, v in chosen.items()})
        return state


class ElasticBlock(nn.Module):
    """A residual block holding every width of its convs and both kinds of shortcut."""

    def __init__(self, in_width: int, channels: tuple[int, ...], stride: int) -> None:
        super().__init__()
        kernels = _KERNELS[len(channels)]
        strided = kernels.index(3)
        layers, width = [], in_width
        for i, (kernel, out_width) in enumerate(zip(kernels, channels, strict=True)):
            layers.append(ElasticConv(width, out_width, kernel, stride if i == strided else 1))
            width = out_width
        self.layers = nn.ModuleList(layers)
        self.convs: list[ElasticConv] = layers  # the same modules, typed
        self.stride = stride
        # Pooled 1x1 conv where the block halves the resolution; otherwise a 1x1 conv + BN,
        # used where the input and output widths differ.
        self.shortcut = ElasticConv(in_width, channels[-1], 1, 1, norm=stride == 1)
        # Whether the unpruned block has a shortcut conv (an identity one pads when searching).
        self.projects = stride == 2 or in_width != channels[-1]

    def _shortcut_input(self, x: torch.Tensor) -> torch.Tensor:
        return F.avg_pool2d(x, 2) if self.stride == 2 else x

    def forward(self, x: torch.Tensor, widths: tuple[int, ...]) -> torch.Tensor:
        out = x
        for i, (layer, width) in enumerate(zip(self.convs, widths, strict=True)):
            out = layer(out, width)
            if i < len(self.convs) - 1:
                out = F.relu(out)
        if self.stride == 2 or x.shape[1] != widths[-1]:
            return F.relu(out + self.shortcut(self._shortcut_input(x), widths[-1]))
        return F.relu(out + x)

    def mixture(
        self, x: torch.Tensor, picks: list[list[int]], weights: list[torch.Tensor]
    ) -> torch.Tensor:
        out = x
        for i, layer in enumerate(self.convs):
            out = layer.mixture(out, picks[i], weights[i])
            if i < len(self.convs) - 1:
                out = F.relu(out)
        if self.projects:  # shares the last conv's widths and weights
            residual = self.shortcut.mixture(self._shortcut_input(x), picks[-1], weights[-1])
            return F.relu(out + residual)
        return F.relu(add_padded(out, x))


class TASSupernet(nn.Module):
    """Every pruned network of one CIFAR ResNet (see the module's docstring)."""

    def __init__(self, preset: Preset, in_channels: int, num_classes: int, image_size: int) -> None:
        super().__init__()
        self.preset, self.in_channels = preset, in_channels
        self.num_classes, self.image_size = num_classes, image_size
        self.stem = ElasticConv(in_channels, preset.stem, 3, 1)
        self.blocks: list[list[ElasticBlock]] = []  # per stage, typed (``stages`` registers them)
        width = preset.stem
        for stage, channels in enumerate(preset.block_channels):
            blocks: list[ElasticBlock] = []
            for index in range(preset.blocks):
                blocks.append(ElasticBlock(width, channels, 2 if stage and not index else 1))
                width = channels[-1]
            self.blocks.append(blocks)
        self.stages = nn.ModuleList(nn.ModuleList(blocks) for blocks in self.blocks)
        self.classifier = nn.Linear(width, num_classes)
        for module in self.modules():
            if isinstance(module, nn.Conv2d):
                nn.init.kaiming_normal_(module.weight, mode="fan_out", nonlinearity="relu")
        convs = self.prunable_convs()
        # The architecture: one distribution per prunable conv's width, one per stage's depth.
        self.width_logits = nn.ParameterList(
            nn.Parameter(1e-2 * torch.randn(len(conv.choices))) for conv in convs
        )
        self.depth_logits = nn.ParameterList(
            nn.Parameter(1e-2 * torch.randn(len(preset.depths))) for _ in preset.block_channels
        )
        self._width_values = [torch.tensor(conv.choices, dtype=torch.float32) for conv in convs]
        self.active: TASArch | None = None

    # ------------------------------------------------------------------ the architecture
    def prunable_convs(self) -> list[ElasticConv]:
        """The convs whose widths are searched, in network order (the stem first)."""
        convs = [self.stem]
        for blocks in self.blocks:
            for block in blocks:
                convs.extend(block.convs)
        return convs

    def arch_parameters(self) -> list[nn.Parameter]:
        return [*self.width_logits, *self.depth_logits]

    def weight_parameters(self) -> list[nn.Parameter]:
        """Every parameter but the architecture's."""
        arch = {id(p) for p in self.arch_parameters()}
        return [p for p in self.parameters() if id(p) not in arch]

    def derive(self) -> TASArch:
        """The most likely width of every conv and depth of every stage."""
        widths = [
            conv.choices[int(logits.argmax())]
            for conv, logits in zip(self.prunable_convs(), self.width_logits, strict=True)
        ]
        depths = [self.preset.depths[int(logits.argmax())] for logits in self.depth_logits]
        return arch_from_layers(self.preset, widths[0], widths[1:], depths)

    def arch_macs(self, arch: TASArch) -> int:
        """Exact multiply-adds of ``arch``'s network (one image)."""
        return arch_macs(arch, self.in_channels, self.num_classes, self.image_size)

    def expected_macs(self) -> torch.Tensor:
        """Expected multiply-adds of the pruned network (one image) under the current
        distributions, differentiable in ``arch_parameters``."""
        device = self.width_logits[0].device
        probs = [logits.softmax(0) for logits in self.width_logits]
        means = [(p * v.to(device)).sum() for p, v in zip(probs, self._width_values, strict=True)]
        convs = self.prunable_convs()
        side = self.image_size
        macs = 9 * self.in_channels * means[0] * side**2
        width_in, layer = means[0], 0  # expected width entering the next block
        for stage, blocks in enumerate(self.blocks):
            depth_probs = self.depth_logits[stage].softmax(0)
            depths = self.preset.depths
            stage_out = torch.zeros((), device=device)
            for index, block in enumerate(blocks):
                first, last = layer + 1, layer + len(block.convs)
                in_side, side = side, side // block.stride
                block_macs = _block_macs(block, width_in, means[first : last + 1], in_side, side)
                if block.stride == 2:
                    block_macs = block_macs + width_in * means[last] * side**2
                else:  # a projection where the kept widths differ
                    differ = 1 - _same_width(convs[layer], probs[layer], convs[last], probs[last])
                    block_macs = block_macs + differ * width_in * means[last] * side**2
                kept = depth_probs[[k for k, d in enumerate(depths) if d > index]].sum()
                macs = macs + kept * block_macs
                if index + 1 in depths:
                    stage_out = stage_out + depth_probs[depths.index(index + 1)] * means[last]
                width_in, layer = means[last], last
            width_in = stage_out
        return macs + width_in * self.num_classes

    # ------------------------------------------------------------------ forward passes
    def search_forward(self, x: torch.Tensor, tau: float) -> torch.Tensor:
        """Logits of one search step at Gumbel temperature ``tau`` (see the module doc)."""
        drawn = [gumbel_pick_two(logits, tau) for logits in self.width_logits]
        picks, weights = [p for p, _ in drawn], [w for _, w in drawn]
        x = F.relu(self.stem.mixture(x, picks[0], weights[0]))
        layer = 1
        for stage, blocks in enumerate(self.blocks):
            depth_weights = gumbel_scores(self.depth_logits[stage], tau).softmax(0)
            outputs = []
            for index, block in enumerate(blocks):
                count = len(block.convs)
                x = block.mixture(
                    x, list(picks[layer : layer + count]), list(weights[layer : layer + count])
                )
                layer += count
                if index + 1 in self.preset.depths:
                    outputs.append(x)
            top = max(out.shape[1] for out in outputs)
            x = sum(
                (
                    interpolate_channels(out, top) * w
                    for out, w in zip(outputs, depth_weights, strict=True)
                ),
                start=torch.zeros((), device=x.device),
            )
        features = x.mean(dim=(2, 3))
        weight = self.classifier.weight[:, : features.shape[1]]
        return F.linear(features, weight, self.classifier.bias)

    def set_active(self, arch: TASArch) -> None:
        self.active = arch

    def set_regularization(self, **rates: float) -> None:
        """TAS trains without dropout or drop-connect: no rate applies."""

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """The active pruned network (default: the unpruned one)."""
        arch = self.active
        if arch is None:
            raise RuntimeError("set_active(arch) first, or use search_forward")
        x = F.relu(self.stem(x, arch.stem))
        for plan in block_plans(arch, self.image_size):
            x = self.blocks[plan.stage][plan.position](x, plan.widths)
        features = x.mean(dim=(2, 3))
        return F.linear(
            features, self.classifier.weight[:, : features.shape[1]], self.classifier.bias
        )

    # ------------------------------------------------------------------ children
    def child_state(self, arch: TASArch) -> State:
        """The state dict of ``CifarResNet`` for ``arch``, sliced from the shared weights."""
        state = self.stem.child_state(self.in_channels, arch.stem, "stem.conv", "stem.bn")
        width = arch.stem
        for k, plan in enumerate(block_plans(arch, self.image_size)):
            block = self.blocks[plan.stage][plan.position]
            for i, (layer, out) in enumerate(zip(block.convs, plan.widths, strict=True)):
                prefix = f"blocks.{k}.layers.{i}"
                state.update(layer.child_state(width, out, f"{prefix}.conv", f"{prefix}.bn"))
                width = out
            names = {"pool": ("shortcut.1", None), "project": ("shortcut.0", "shortcut.1")}
            if plan.shortcut in names:
                conv, bn = names[plan.shortcut]
                state.update(
                    block.shortcut.child_state(
                        plan.in_width,
                        plan.widths[-1],
                        f"blocks.{k}.{conv}",
                        None if bn is None else f"blocks.{k}.{bn}",
                    )
                )
        state["classifier.weight"] = self.classifier.weight[:, :width]
        state["classifier.bias"] = self.classifier.bias
        return {name: tensor.detach().clone() for name, tensor in state.items()}

    def extract(self, arch: TASArch) -> nn.Module:
        blocks = [
            (plan.in_width, plan.widths, plan.stride, plan.shortcut)
            for plan in block_plans(arch, self.image_size)
        ]
        child = CifarResNet(self.in_channels, self.num_classes, arch.stem, blocks)
        child.load_state_dict(self.child_state(arch), strict=True)
        return child.to(self.classifier.weight.device).train(self.training)


def _block_macs(
    block: ElasticBlock, width_in: torch.Tensor, widths: list[torch.Tensor], in_side: int, side: int
) -> torch.Tensor:
    """Expected multiply-adds of a block's convs (without its shortcut)."""
    macs = torch.zeros((), device=width_in.device)
    previous, current_side = width_in, in_side
    for layer, width in zip(block.convs, widths, strict=True):
        kernel, stride = layer.conv.kernel_size[0], layer.conv.stride[0]
        current_side = current_side // stride
        macs = macs + kernel * kernel * previous * width * current_side**2
        previous = width
    return macs


def _same_width(
    a: ElasticConv, p_a: torch.Tensor, b: ElasticConv, p_b: torch.Tensor
) -> torch.Tensor:
    """The probability that convs ``a`` and ``b`` keep the same width (independently drawn)."""
    total = torch.zeros((), device=p_a.device)
    for i, width in enumerate(a.choices):
        if width in b.choices:
            total = total + p_a[i] * p_b[b.choices.index(width)]
    return total


def anneal_temperature(progress: float, tau_max: float, tau_min: float) -> float:
    """Cosine from ``tau_max`` at ``progress`` 0 to ``tau_min`` at 1."""
    return tau_min + (tau_max - tau_min) * (1 + math.cos(math.pi * progress)) / 2
