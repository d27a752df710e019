"""The pruned CIFAR ResNets the TAS authors released, as architectures of this space.

Dong & Yang, "Network Pruning via Transformable Architecture Search" (NeurIPS 2019):
the shapes of their CIFAR tables, as released in D-X-Y/AutoDL-Projects
(``configs/NeurIPS-2019/C010-ResNet*.config``, ``C100-ResNet56.config``). Each lists the
input's and every prunable conv's channels (``xchannels``, dropped blocks included) and
the blocks each stage keeps (``xblocks``), with the multiply-adds the authors' search
estimated (``estimated_FLOP``, millions).
"""

from __future__ import annotations

from typing import NamedTuple

from search_spaces.tas.arch import TASArch, arch_from_layers
from search_spaces.tas.presets import PRESETS, Preset


class Released(NamedTuple):
    preset: str
    num_classes: int
    xchannels: tuple[int, ...]
    xblocks: tuple[int, int, int]
    estimated_macs_m: float  # the authors' estimate, millions of multiply-adds


RELEASED: dict[str, Released] = {
    "tas-resnet20-c10": Released(
        "resnet20", 10,
        (3, 16, 6, 4, 4, 4, 4, 4, 32, 32, 12, 19, 32, 28, 64, 64, 64, 64, 64, 44),
        (3, 3, 3), 22.444472,
    ),
    "tas-resnet32-c10": Released(
        "resnet32", 10,
        (3, 16, 6, 4, 12, 4, 4, 16, 9, 9, 6, 14, 32, 32, 9, 19, 28, 9, 32, 19, 32, 9,
         64, 64, 64, 64, 64, 64, 64, 32, 38, 32),
        (5, 5, 5), 34.945344,
    ),
    "tas-resnet56-c10": Released(
        "resnet56", 10,
        (3, 16, 16, 16, 14, 11, 9, 16, 12, 16, 6, 16, 4, 8, 4, 14, 6, 4, 4, 4, 32, 32,
         32, 32, 32, 32, 22, 28, 32, 32, 19, 9, 19, 16, 9, 25, 16, 9, 64, 64, 64, 64, 64,
         64, 64, 64, 64, 51, 19, 19, 32, 19, 19, 32, 19, 25),
        (5, 5, 5), 57.93305,
    ),
    "tas-resnet56-c100": Released(
        "resnet56", 100,
        (3, 16, 16, 9, 14, 16, 14, 16, 8, 16, 8, 14, 4, 4, 4, 8, 4, 6, 4, 4, 32, 32, 32,
         28, 32, 32, 32, 22, 32, 32, 32, 9, 25, 19, 25, 12, 9, 9, 64, 64, 64, 64, 64, 64,
         64, 64, 64, 51, 19, 19, 19, 19, 25, 38, 19, 19),
        (5, 5, 7), 59.472556,
    ),
    "tas-resnet164-c10": Released(
        "resnet164", 10,
        (3, 16, 8, 16, 64, 6, 16, 64, 14, 16, 64, 8, 16, 64, 4, 16, 64, 6, 16, 64, 6, 16,
         64, 11, 11, 64, 4, 14, 64, 4, 4, 57, 4, 16, 64, 9, 12, 57, 4, 16, 64, 4, 8, 57, 6,
         6, 51, 6, 4, 44, 6, 4, 57, 6, 6, 19, 32, 32, 128, 32, 32, 128, 32, 32, 128, 9, 32,
         128, 32, 32, 128, 25, 28, 115, 12, 32, 128, 32, 32, 128, 32, 32, 128, 32, 32, 102,
         28, 32, 128, 16, 32, 128, 28, 19, 128, 32, 9, 51, 16, 12, 102, 12, 22, 115, 9, 12,
         51, 12, 16, 38, 64, 64, 256, 64, 64, 256, 64, 64, 256, 64, 64, 256, 64, 64, 256,
         64, 64, 256, 64, 64, 256, 64, 64, 256, 64, 64, 256, 64, 64, 256, 64, 57, 204, 64,
         25, 179, 19, 25, 204, 44, 19, 153, 38, 25, 76, 19, 32, 128, 19, 51, 76, 57, 32,
         76),
        (13, 15, 13), 173.023672,
    ),
}  # fmt: skip


def released_arch(released: Released) -> TASArch:
    """The architecture a released configuration describes."""
    preset = PRESETS[released.preset]
    return arch_from_layers(preset, released.xchannels[1], released.xchannels[2:], released.xblocks)


def published_for(preset: Preset) -> dict[str, TASArch]:
    """The released networks pruned from ``preset``, by name."""
    return {
        name: released_arch(released)
        for name, released in RELEASED.items()
        if released.preset == preset.name
    }
