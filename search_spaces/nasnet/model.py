"""The NASNet network: a stem, three stages of normal cells, two reduction cells, a classifier.

Layout (``N`` = ``cells_per_stage``)::

    stem -> N x normal -> reduction -> N x normal -> reduction -> N x normal -> pool -> linear

Channels per hidden state (``C``) double at each reduction cell; a cell's output has
``len(concat) * C`` channels. The auxiliary head, when enabled, reads the output of the
cell just before the second reduction (as in the TF-slim reference). The module structure
(attribute names ``stem``, ``cells``, ``preprocess0``, ``preprocess1``, ``ops``, ``merge``,
``classifier``) is the one the exported source rebuilds, so state-dict keys agree.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import torch
from torch import nn

from nas.core.validation import check_bool, check_number
from search_spaces.nasnet.genotype import Cell, NASNetArch
from search_spaces.nasnet.ops import (
    FactorizedReduce,
    ReLUConvBN,
    ScheduledDropPath,
    UnusedCell,
    make_op,
)

AUX_HIDDEN = 768  # width of the auxiliary head's last conv (TF-slim)


@dataclass(frozen=True)
class MacroConfig:
    """The network's macro settings: the NASNet space's ``model.*`` settings group."""

    cells_per_stage: int = 2  # N normal cells per stage
    init_channels: int = 16  # C of the first stage's hidden states
    stem_multiplier: int = 3  # stem outputs stem_multiplier * C channels
    num_blocks: int = 5  # B blocks per cell
    auxiliary_head: bool = False
    auxiliary_weight: float = 0.4  # weight of the auxiliary loss, read by the trainer
    drop_path: float = 0.0  # drop-path probability of the last cell at the end of training

    def __post_init__(self) -> None:
        for name in ("cells_per_stage", "stem_multiplier", "num_blocks"):
            check_number(name, getattr(self, name), integer=True, low=1)
        # At least 2: a factorized reduction splits the channels in two halves.
        check_number("init_channels", self.init_channels, integer=True, low=2)
        check_bool("auxiliary_head", self.auxiliary_head)
        check_number("auxiliary_weight", self.auxiliary_weight, low=0.0)
        check_number("drop_path", self.drop_path, low=0.0, high=1.0, high_open=True)

    @property
    def num_cells(self) -> int:
        return 3 * self.cells_per_stage + 2

    @property
    def aux_cell_index(self) -> int:
        """The cell just before the second reduction."""
        return 2 * self.cells_per_stage

    def is_reduction(self, index: int) -> bool:
        return index in (self.cells_per_stage, 2 * self.cells_per_stage + 1)


@dataclass(frozen=True)
class CellSlot:
    """Where a cell sits in the network and the channel counts it is built with."""

    index: int
    reduction: bool
    c_prev_prev: int  # channels of s0, the output of cell index-2 (or the stem)
    c_prev: int  # channels of s1, the output of cell index-1 (or the stem)
    c: int  # channels of each hidden state inside the cell
    reduction_prev: bool  # s0 has twice the resolution of s1
    live: bool  # the cell's output reaches the classifier (or the auxiliary head)


def plan_cells(arch: NASNetArch, cfg: MacroConfig) -> tuple[CellSlot, ...]:
    """Channel counts and liveness of every cell; shared by the builder and the code generator."""
    n = cfg.num_cells
    genotypes = [arch.reduction if cfg.is_reduction(i) else arch.normal for i in range(n)]
    # Liveness, from the classifier backwards: cell j's output is s1 of cell j+1 and s0 of
    # cell j+2, and matters only if a live consumer reads that input.
    live = [False] * n
    live[-1] = True
    if cfg.auxiliary_head:
        live[cfg.aux_cell_index] = True
    for j in reversed(range(n)):
        if live[j]:
            if j >= 1 and genotypes[j].uses_state(1):
                live[j - 1] = True
            if j >= 2 and genotypes[j].uses_state(0):
                live[j - 2] = True

    slots = []
    c = cfg.init_channels
    c_prev_prev = c_prev = cfg.stem_multiplier * c
    reduction_prev = False
    for i in range(n):
        reduction = cfg.is_reduction(i)
        if reduction:
            c *= 2
        slots.append(CellSlot(i, reduction, c_prev_prev, c_prev, c, reduction_prev, live[i]))
        c_prev_prev, c_prev = c_prev, len(genotypes[i].concat) * c
        reduction_prev = reduction
    return tuple(slots)


def preprocess_modules(genotype: Cell, slot: CellSlot) -> tuple[nn.Module | None, nn.Module | None]:
    """Bring the cell's inputs to ``C`` channels; ``None`` for an input the cell never reads."""
    pre0: nn.Module | None = None
    pre1: nn.Module | None = None
    if genotype.uses_state(0):
        # After a reduction, s0 still has the previous resolution: halve it on the way in.
        pre0 = (
            FactorizedReduce(slot.c_prev_prev, slot.c)
            if slot.reduction_prev
            else ReLUConvBN(slot.c_prev_prev, slot.c, 1)
        )
    if genotype.uses_state(1):
        pre1 = ReLUConvBN(slot.c_prev, slot.c, 1)
    return pre0, pre1


def _present(x: torch.Tensor | None) -> torch.Tensor:
    # Inputs a genotype never reads are not preprocessed (None); reading one is a bug.
    if x is None:
        raise RuntimeError("NASNet cell read a hidden state that it did not compute.")
    return x


class NASNetCell(nn.Module):
    """A normal or reduction cell built from a genotype; wiring read from it at run time."""

    def __init__(self, genotype: Cell, slot: CellSlot) -> None:
        super().__init__()
        self.genotype = genotype
        self.reduction = slot.reduction
        self.preprocess0, self.preprocess1 = preprocess_modules(genotype, slot)
        ops = []
        for block in genotype.blocks:
            for name, source in ((block.op1, block.input1), (block.op2, block.input2)):
                stride = 2 if slot.reduction and source < 2 else 1
                ops.append(make_op(name, slot.c, stride))
        # ops[2b] and ops[2b + 1] are block b's first and second op.
        self.ops = nn.ModuleList(ops)
        # Identity outputs are never dropped: that would cut the cell's only plain path.
        self._droppable = [name != "identity" for b in genotype.blocks for name in (b.op1, b.op2)]
        # The "concat" combiner maps cat(op1, op2) (2C channels) back to C with
        # ReLU-1x1 conv-BN, so every hidden state, and hence every op, stays at C channels.
        merge = {
            f"b{b}": ReLUConvBN(2 * slot.c, slot.c, 1)
            for b, block in enumerate(genotype.blocks)
            if block.combine == "concat"
        }
        if merge:
            self.merge = nn.ModuleDict(merge)
        self.drop_path = ScheduledDropPath()

    def _apply_op(self, k: int, x: torch.Tensor | None) -> torch.Tensor:
        y = self.ops[k](_present(x))
        return self.drop_path(y) if self._droppable[k] else y

    def forward(self, s0: torch.Tensor | None, s1: torch.Tensor | None) -> torch.Tensor:
        states: list[torch.Tensor | None] = [
            self.preprocess0(s0) if self.preprocess0 is not None else None,
            self.preprocess1(s1) if self.preprocess1 is not None else None,
        ]
        for b, block in enumerate(self.genotype.blocks):
            left = self._apply_op(2 * b, states[block.input1])
            right = self._apply_op(2 * b + 1, states[block.input2])
            if block.combine == "add":
                states.append(left + right)
            else:
                states.append(self.merge[f"b{b}"](torch.cat([left, right], dim=1)))
        return torch.cat([_present(states[i]) for i in self.genotype.concat], dim=1)


class AuxiliaryHead(nn.Module):
    """TF-slim's auxiliary classifier: ReLU, 5x5/3 avg pool, 1x1 conv 128, conv 768, linear."""

    def __init__(self, c_in: int, num_classes: int, map_size: int) -> None:
        super().__init__()
        pool: nn.Module
        if map_size >= 5:
            pool = nn.AvgPool2d(5, stride=3)
            pooled = (map_size - 5) // 3 + 1
        else:
            # Too small for a 5x5 window (tiny images): pool to at most 2x2 instead.
            pooled = min(2, map_size)
            pool = nn.AdaptiveAvgPool2d(pooled)
        self.features = nn.Sequential(
            nn.ReLU(),
            pool,
            nn.Conv2d(c_in, 128, 1, bias=False),
            nn.BatchNorm2d(128),
            nn.ReLU(),
            # Covers the whole remaining map, i.e. a fully connected layer over it.
            nn.Conv2d(128, AUX_HIDDEN, pooled, bias=False),
            nn.BatchNorm2d(AUX_HIDDEN),
            nn.ReLU(),
        )
        self.classifier = nn.Linear(AUX_HIDDEN, num_classes)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.classifier(torch.flatten(self.features(x), 1))


class NASNetwork(nn.Module):
    """A NASNet network for ``in_channels`` x ``image_size``² images.

    Attributes:
        auxiliary_weight: Weight the trainer gives the auxiliary loss.
        aux_logits: Auxiliary-head logits of the last forward pass; ``None`` in eval mode
            or without an auxiliary head.
    """

    def __init__(
        self,
        arch: NASNetArch,
        cfg: MacroConfig,
        in_channels: int,
        num_classes: int,
        image_size: int,
    ) -> None:
        super().__init__()
        self.auxiliary_weight = float(cfg.auxiliary_weight)
        self.aux_logits: torch.Tensor | None = None
        self._max_drop_path = cfg.drop_path
        self._aux_index = cfg.aux_cell_index
        slots = plan_cells(arch, cfg)
        stem_c = slots[0].c_prev
        self.stem = nn.Sequential(
            nn.Conv2d(in_channels, stem_c, 3, padding=1, bias=False),
            nn.BatchNorm2d(stem_c),
        )
        self.cells = nn.ModuleList(
            NASNetCell(arch.reduction if s.reduction else arch.normal, s)
            if s.live
            else UnusedCell()
            for s in slots
        )
        self.aux_head: AuxiliaryHead | None = None
        if cfg.auxiliary_head:
            aux_slot = slots[self._aux_index + 1]  # the next cell's s1 is the aux cell's output
            map_size = math.ceil(image_size / 2)  # one reduction before the aux cell
            self.aux_head = AuxiliaryHead(aux_slot.c_prev, num_classes, map_size)
        self.global_pool = nn.AdaptiveAvgPool2d(1)
        last = slots[-1]
        self.classifier = nn.Linear(len(arch.normal.concat) * last.c, num_classes)

    def set_training_progress(self, progress: float) -> None:
        """Scale drop-path to ``progress`` (0 at the start of training, 1 at the end).

        Cell ``i`` of ``n`` drops each non-identity op output with probability
        ``drop_path * (i + 1) / n * progress`` (ScheduledDropPath).
        """
        if not 0.0 <= progress <= 1.0:
            raise ValueError(f"progress must be in [0, 1], got {progress!r}.")
        n = len(self.cells)
        for i, cell in enumerate(self.cells):
            if isinstance(cell, NASNetCell):
                cell.drop_path.drop_prob = self._max_drop_path * (i + 1) / n * progress

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        self.aux_logits = None
        s0 = s1 = self.stem(x)  # (B, stem_c, H, W)
        for i, cell in enumerate(self.cells):
            s0, s1 = s1, cell(s0, s1)
            if i == self._aux_index and self.aux_head is not None and self.training:
                self.aux_logits = self.aux_head(s1)
        return self.classifier(torch.flatten(self.global_pool(s1), 1))  # (B, num_classes)
