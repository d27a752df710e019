"""TAS: pruning CIFAR ResNets by transformable architecture search (Dong & Yang,
"Network Pruning via Transformable Architecture Search", NeurIPS 2019,
https://arxiv.org/abs/1905.09717).

    >>> from search_spaces import create_space
    >>> space = create_space("tas", preset="resnet20")
    >>> space.describe(space.smallest())
    '4 | 1: 4-4 | 1: 9-9 | 1: 19-19'
"""

from __future__ import annotations

from search_spaces.tas.arch import TASArch, arch_macs
from search_spaces.tas.model import CifarResNet
from search_spaces.tas.presets import PRESETS, Preset
from search_spaces.tas.space import TASSpace
from search_spaces.tas.supernet import TASSupernet, interpolate_channels

__all__ = [
    "PRESETS",
    "CifarResNet",
    "Preset",
    "TASArch",
    "TASSpace",
    "TASSupernet",
    "arch_macs",
    "interpolate_channels",
]
