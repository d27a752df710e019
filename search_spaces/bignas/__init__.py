"""BigNAS: the elastic MobileNetV3-like space of Yu et al., "BigNAS: Scaling Up Neural
Architecture Search with Big Single-Stage Models" (ECCV 2020, https://arxiv.org/abs/2003.11142).

    >>> from search_spaces import create_space
    >>> space = create_space("bignas", preset="tiny")
    >>> space.describe(space.smallest())
    'r10 stem8 | 8x1(k3e1) 16x2(k3e2,k3e2) 32x2(k3e2,k3e2) | head64'
"""

from __future__ import annotations

from search_spaces.bignas.arch import BigNASArch, StageArch
from search_spaces.bignas.model import BigNASNetwork, ConvBNAct, MBConv, SqueezeExcite
from search_spaces.bignas.presets import IMAGENET, PRESETS, TINY, Preset, StageSpec
from search_spaces.bignas.space import BigNASSpace
from search_spaces.bignas.supernet import BigNASSupernet

__all__ = [
    "IMAGENET",
    "PRESETS",
    "TINY",
    "BigNASArch",
    "BigNASNetwork",
    "BigNASSpace",
    "BigNASSupernet",
    "ConvBNAct",
    "MBConv",
    "Preset",
    "SqueezeExcite",
    "StageArch",
    "StageSpec",
]
