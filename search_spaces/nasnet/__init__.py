"""NASNet: the cell search space of Zoph et al., "Learning Transferable Architectures for
Scalable Image Recognition" (CVPR 2018, https://arxiv.org/abs/1707.07012).

    >>> from search_spaces import create_space
    >>> space = create_space("nasnet", cells_per_stage=6, init_channels=32)
    >>> arch = space.named_architectures()["nasnet-a"]
    >>> space.describe(arch)[:41]
    'normal[b0=sep_conv_5x5(1)+sep_conv_3x3(0)'
"""

from __future__ import annotations

from search_spaces.nasnet.genotype import NASNET_A, Block, Cell, NASNetArch
from search_spaces.nasnet.model import NASNetwork
from search_spaces.nasnet.ops import OPS, ScheduledDropPath, drop_path
from search_spaces.nasnet.plan import MacroConfig
from search_spaces.nasnet.space import NASNetSpace

__all__ = [
    "NASNET_A",
    "OPS",
    "Block",
    "Cell",
    "MacroConfig",
    "NASNetArch",
    "NASNetSpace",
    "NASNetwork",
    "ScheduledDropPath",
    "drop_path",
]
