"""ViT-ResNAS: multi-stage vision transformers searched with weight sharing (Liao et al.,
"Searching for Efficient Multi-Stage Vision Transformers", 2021,
https://arxiv.org/abs/2109.00642).

    >>> from search_spaces import create_space
    >>> space = create_space("vit_resnas", preset="tiny")
    >>> space.describe(space.smallest())
    '24: h2m48 - - | 48: h2m96 - - | 80: h3m160 -'
"""

from __future__ import annotations

from search_spaces.vit_resnas.arch import BlockArch, StageArch, ViTResArch
from search_spaces.vit_resnas.model import ViTRes
from search_spaces.vit_resnas.presets import IMAGENET, PRESETS, TINY, Preset, StageSpec
from search_spaces.vit_resnas.space import ViTResNASSpace
from search_spaces.vit_resnas.supernet import ViTResSupernet

__all__ = [
    "IMAGENET",
    "PRESETS",
    "TINY",
    "BlockArch",
    "Preset",
    "StageArch",
    "StageSpec",
    "ViTRes",
    "ViTResArch",
    "ViTResNASSpace",
    "ViTResSupernet",
]
