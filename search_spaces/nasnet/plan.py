"""The NASNet macro-architecture: settings, and the plan of cells the network is built from.

Two layouts, as in Zoph et al., "Learning Transferable Architectures for Scalable Image
Recognition" (CVPR 2018), Sec. 4 and the authors' TF-slim code:

* ``cifar``: a 3x3 stride-1 conv stem with ``stem_multiplier * C`` filters, then
  ``N`` normal cells, a reduction cell, ``N`` normal, a reduction, ``N`` normal.
* ``imagenet``: a 3x3 stride-2 conv stem without padding with ``32 * stem_multiplier``
  filters, then two reduction cells ("stem cells") with ``C/4`` and ``C/2`` filters,
  then the same three stages. The first stem cell reads the stem conv's output as its
  h_{i-1} unprocessed, where its ops are convolutions (they change the channel count
  themselves).

``C`` (``init_channels``) is the filters of each hidden state in the first stage and
doubles at each reduction; "N @ F" names a network by its normal cells per stage and the
channels F = 6 * 4 * C of the last cell (NASNet-A's normal cell concatenates six
states). Every cell reads the two cells before it; with ``skip_reduction_input`` (NASNet-A
Large) the first cell after a reduction reads the cell two before that reduction instead
of the one just before it. The auxiliary head reads the cell before the last reduction.
A ReLU precedes global average pooling (as in the reference code).
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from dataclasses import dataclass
from types import MappingProxyType
from typing import Any

from nas.core.errors import ConfigError
from nas.core.validation import check_bool, check_choice, check_number
from search_spaces.nasnet.genotype import NASNetArch
from search_spaces.nasnet.ops import CHANNEL_MAPPING_OPS

LAYOUTS = ("auto", "cifar", "imagenet")
AUTO_IMAGENET_ABOVE = 64  # layout=auto: images larger than this many pixels take "imagenet"
IMAGENET_STEM_FILTERS = 32  # times stem_multiplier (TF-slim)
IMAGENET_MIN_CHANNELS = 8  # the first stem cell's C/4 is split in two by a factorized reduction

# Published networks' macro settings (``model.preset=...``); keys they leave out keep
# their defaults, and the user's own settings win over them.
PRESETS: Mapping[str, Mapping[str, Any]] = MappingProxyType(
    {
        # CIFAR-10 NASNet-A 6 @ 768: 3.3M parameters (paper, Table 1).
        "cifar": {
            "layout": "cifar",
            "cells_per_stage": 6,
            "init_channels": 32,
            "stem_multiplier": 3,
            "auxiliary_head": True,
            "drop_path": 0.4,
        },
        # NASNet-A Mobile 4 @ 1056 at 224 px: 5.3M parameters, 564M mult-adds (Table 2).
        "mobile": {
            "layout": "imagenet",
            "cells_per_stage": 4,
            "init_channels": 44,
            "stem_multiplier": 1,
            "skip_reduction_input": False,
            "auxiliary_head": True,
            "dropout": 0.5,
        },
        # NASNet-A Large 6 @ 4032 at 331 px: 88.9M parameters, 23.8B mult-adds (Table 2).
        "large": {
            "layout": "imagenet",
            "cells_per_stage": 6,
            "init_channels": 168,
            "stem_multiplier": 3,
            "skip_reduction_input": True,
            "auxiliary_head": True,
            "drop_path": 0.3,
            "dropout": 0.5,
        },
    }
)


@dataclass(frozen=True)
class MacroConfig:
    """The network's macro settings: the NASNet space's ``model.*`` settings group."""

    preset: str = ""  # a published network's settings: cifar | mobile | large ("" none)
    layout: str = "auto"  # cifar | imagenet | auto (imagenet above 64 px)
    cells_per_stage: int = 2  # N normal cells per stage
    init_channels: int = 16  # C of the first stage's hidden states
    stem_multiplier: int = 3  # stem filters: stem_multiplier * C (cifar), * 32 (imagenet)
    num_blocks: int = 5  # B blocks per cell
    skip_reduction_input: bool = False  # after a reduction, read the cell two before it
    auxiliary_head: bool = False  # a second classifier on the cell before the last reduction
    auxiliary_weight: float = 0.4  # weight of the auxiliary loss, read by the trainer
    drop_path: float = 0.0  # drop-path probability of the last cell at the end of training
    dropout: float = 0.0  # before the classifier, while training

    def __post_init__(self) -> None:
        check_choice("preset", self.preset, ("", *PRESETS))
        check_choice("layout", self.layout, LAYOUTS)
        for name in ("cells_per_stage", "stem_multiplier", "num_blocks"):
            check_number(name, getattr(self, name), integer=True, low=1)
        # At least 2: a factorized reduction splits the channels in two halves (the
        # imagenet layout needs 8: its first stem cell has C/4; see plan_network).
        check_number("init_channels", self.init_channels, integer=True, low=2)
        check_bool("skip_reduction_input", self.skip_reduction_input)
        check_bool("auxiliary_head", self.auxiliary_head)
        check_number("auxiliary_weight", self.auxiliary_weight, low=0.0)
        check_number("drop_path", self.drop_path, low=0.0, high=1.0, high_open=True)
        check_number("dropout", self.dropout, low=0.0, high=1.0, high_open=True)

    def layout_for(self, image_size: int) -> str:
        """The concrete layout for ``image_size``-pixel images."""
        if self.layout != "auto":
            return self.layout
        return "imagenet" if image_size > AUTO_IMAGENET_ABOVE else "cifar"


@dataclass(frozen=True)
class CellSlot:
    """Where a cell sits in the network and the channel counts it is built with."""

    index: int
    reduction: bool
    c_prev_prev: int  # channels of s0, the output of cell index - s0_back (or the stem)
    c_prev: int  # channels of s1, the output of cell index-1 (or the stem)
    c: int  # channels of each hidden state inside the cell
    reduction_prev: bool  # s0 has twice the resolution of s1
    live: bool  # the cell's output reaches the classifier (or the auxiliary head)
    s0_back: int = 2  # s0 is the output of the cell this many places back (3: skip)
    raw_s0: bool = False  # s0 enters unprocessed; ops on it map c_prev_prev -> c
    map_size: int = 0  # the cell's output resolution


@dataclass(frozen=True)
class NetworkPlan:
    """Everything the builder and the code generator need about the macro-architecture."""

    layout: str
    stem_channels: int
    stem_stride: int  # 1: padded 3x3 conv (cifar); 2: unpadded stride-2 3x3 (imagenet)
    cells: tuple[CellSlot, ...]
    aux_index: int | None  # the cell the auxiliary head reads, None without one

    @property
    def aux_slot(self) -> CellSlot | None:
        return None if self.aux_index is None else self.cells[self.aux_index]


def _cell_kinds(cfg: MacroConfig, layout: str) -> list[tuple[bool, int]]:
    """(reduction, channels) of every cell in order."""
    n, c = cfg.cells_per_stage, cfg.init_channels
    stem = [(True, c // 4), (True, c // 2)] if layout == "imagenet" else []
    body = [(False, c)] * n + [(True, 2 * c)] + [(False, 2 * c)] * n
    return stem + body + [(True, 4 * c)] + [(False, 4 * c)] * n


def _s0_back(kinds: list[tuple[bool, int]], i: int, stem_cells: int, skip: bool) -> int:
    """How many cells back cell ``i``'s s0 comes from."""
    after_body_reduction = i - 1 >= stem_cells and kinds[i - 1][0]
    return 3 if skip and not kinds[i][0] and after_body_reduction else 2


def _live(
    arch: NASNetArch, kinds: list[tuple[bool, int]], backs: list[int], aux: int | None
) -> list[bool]:
    """Which cells' outputs reach the classifier (or the auxiliary head), from the end
    backwards: a cell matters only if a live consumer reads that input."""
    n = len(kinds)
    live = [False] * n
    live[-1] = True
    if aux is not None:
        live[aux] = True
    for j in reversed(range(n)):
        if not live[j]:
            continue
        genotype = arch.reduction if kinds[j][0] else arch.normal
        if j >= 1 and genotype.uses_state(1):
            live[j - 1] = True
        if j >= backs[j] and genotype.uses_state(0):
            live[j - backs[j]] = True
    return live


def plan_network(arch: NASNetArch, cfg: MacroConfig, image_size: int) -> NetworkPlan:
    """The cells of ``arch``'s network for ``image_size``² images."""
    layout = cfg.layout_for(image_size)
    imagenet = layout == "imagenet"
    if imagenet and (cfg.init_channels < IMAGENET_MIN_CHANNELS or image_size < 3):
        raise ConfigError(
            f"The imagenet layout needs model.init_channels >= {IMAGENET_MIN_CHANNELS} "
            f"(got {cfg.init_channels}) and images of 3 px or more (got {image_size}); "
            "raise init_channels or use model.layout=cifar."
        )
    stem_cells = 2 if imagenet else 0
    kinds = _cell_kinds(cfg, layout)
    backs = [_s0_back(kinds, i, stem_cells, cfg.skip_reduction_input) for i in range(len(kinds))]
    last_reduction = max(i for i, (reduction, _) in enumerate(kinds) if reduction)
    aux = last_reduction - 1 if cfg.auxiliary_head else None
    live = _live(arch, kinds, backs, aux)

    stem_channels = (
        IMAGENET_STEM_FILTERS * cfg.stem_multiplier
        if imagenet
        else (cfg.stem_multiplier * cfg.init_channels)
    )
    stem_size = (image_size - 3) // 2 + 1 if imagenet else image_size
    # (channels, resolution) of every output so far, the stem's first.
    outputs = [(stem_channels, stem_size)]
    slots = []
    for i, (reduction, c) in enumerate(kinds):
        genotype = arch.reduction if reduction else arch.normal
        s1 = outputs[-1]
        s0 = outputs[max(0, len(outputs) - backs[i])]
        # TF-slim feeds the first stem cell's h_{i-1} unprocessed; ops that cannot change
        # the channel count (pools, identity) need it brought to C first.
        raw = (
            imagenet
            and i == 0
            and 0 not in genotype.concat
            and all(op in CHANNEL_MAPPING_OPS for op in genotype.ops_reading(0))
        )
        size = math.ceil(s1[1] / 2) if reduction else s1[1]
        slots.append(
            CellSlot(
                index=i,
                reduction=reduction,
                c_prev_prev=s0[0],
                c_prev=s1[0],
                c=c,
                reduction_prev=s0[1] != s1[1],
                live=live[i],
                s0_back=backs[i],
                raw_s0=raw,
                map_size=size,
            )
        )
        outputs.append((len(genotype.concat) * c, size))
    return NetworkPlan(layout, stem_channels, 2 if imagenet else 1, tuple(slots), aux)
