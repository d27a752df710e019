"""The networks TAS prunes: CIFAR-style ResNets, and what each layer may keep.

He et al.'s CIFAR ResNets (three stages of 16 / 32 / 64 channels after a 16-channel stem;
ResNet-20/32/56/110 with basic blocks, ResNet-164 with bottlenecks) as the TAS authors
build them (Dong & Yang, "Network Pruning via Transformable Architecture Search",
NeurIPS 2019; D-X-Y/AutoDL-Projects): a block that halves the resolution has an
average-pooling 1x1 projection shortcut. ``digits`` keeps ResNet-20's layout at half
the width, for the embedded 8x8 digits on a CPU.

Every convolution but the shortcuts is prunable: it keeps ``C * k // 10`` of its ``C``
channels for k = 3..10 (the fractions 0.3, 0.4, ..., 1.0 of the authors' code). A stage
of ``n`` blocks keeps its first 1, 3, 5, ... or ``n`` blocks (1, 2 or 3 of three), the
depths of the authors' search network (``SearchCifarResNet``), which found their
released pruned networks: the ``n // 3``, ``2n // 3``, ``n`` of their ``SoftSelect`` helper
would leave out ResNet-56's 5 of 9 blocks and ResNet-164's 13 and 15 of 18.
"""

from __future__ import annotations

from dataclasses import dataclass
from functools import cached_property

WIDTH_TENTHS = tuple(range(3, 11))  # 0.3, 0.4, ..., 1.0 of a layer's channels
EXPANSION = {"basic": 1, "bottleneck": 4}
CONVS_PER_BLOCK = {"basic": 2, "bottleneck": 3}


def width_choices(channels: int) -> tuple[int, ...]:
    """The widths a layer of ``channels`` channels may keep, ascending, without repeats."""
    return tuple(sorted({max(1, channels * tenths // 10) for tenths in WIDTH_TENTHS}))


def depth_choices(blocks: int) -> tuple[int, ...]:
    """The depths a stage of ``blocks`` blocks may keep, ascending: every one up to three
    blocks, else the odd ones and ``blocks``."""
    if blocks <= 3:
        return tuple(range(1, blocks + 1))
    return tuple(sorted({*range(1, blocks + 1, 2), blocks}))


@dataclass(frozen=True)
class Preset:
    """An unpruned CIFAR ResNet.

    Attributes:
        name: The preset's name (``resnet56``).
        block: ``basic`` (two 3x3 convs) or ``bottleneck`` (1x1, 3x3, 1x1 x4).
        blocks: Blocks per stage.
        stem: Channels of the stem's 3x3 conv.
        planes: Per stage the planes of its blocks (a bottleneck outputs 4x as many).
    """

    name: str
    block: str
    blocks: int
    stem: int = 16
    planes: tuple[int, ...] = (16, 32, 64)

    @property
    def depth(self) -> int:
        """Weighted layers, as in the network's name (ResNet-56: 56)."""
        return CONVS_PER_BLOCK[self.block] * self.blocks * len(self.planes) + 2

    @cached_property
    def block_channels(self) -> tuple[tuple[int, ...], ...]:
        """Per stage, the unpruned channels of each of a block's prunable convs."""
        expansion = EXPANSION[self.block]
        if self.block == "basic":
            return tuple((p, p) for p in self.planes)
        return tuple((p, p, p * expansion) for p in self.planes)

    @cached_property
    def depths(self) -> tuple[int, ...]:
        return depth_choices(self.blocks)


def _resnet(depth: int, block: str = "basic") -> Preset:
    per_block = CONVS_PER_BLOCK[block] * 3
    if (depth - 2) % per_block:
        raise ValueError(f"no CIFAR ResNet-{depth} with {block} blocks")
    return Preset(f"resnet{depth}", block, (depth - 2) // per_block)


PRESETS: dict[str, Preset] = {
    preset.name: preset
    for preset in (
        _resnet(20),
        _resnet(32),
        _resnet(56),
        _resnet(110),
        _resnet(164, "bottleneck"),
        Preset("digits", "basic", 3, stem=8, planes=(8, 16, 32)),
    )
}
