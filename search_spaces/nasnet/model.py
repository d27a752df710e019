"""The NASNet network: a stem, three stages of normal cells, two reduction cells, a classifier.

Layout (``N`` = ``cells_per_stage``; the ImageNet layout adds a strided stem and two
reduction "stem cells", see :mod:`search_spaces.nasnet.plan`)::

    stem -> N x normal -> reduction -> N x normal -> reduction -> N x normal
         -> ReLU -> pool -> linear

Channels per hidden state (``C``) double at each reduction cell; a cell's output has
``len(concat) * C`` channels. The auxiliary head, when enabled, reads the output of the
cell just before the last reduction (as in the TF-slim reference). The module structure
(attribute names ``stem``, ``cells``, ``preprocess0``, ``preprocess1``, ``ops``, ``merge``,
``classifier``) is the one the exported source rebuilds, so state-dict keys agree.
"""

from __future__ import annotations

import torch
from torch import nn

from search_spaces.nasnet.genotype import Cell, NASNetArch
from search_spaces.nasnet.ops import (
    FactorizedReduce,
    ReLUConvBN,
    ScheduledDropPath,
    UnusedCell,
    make_op,
)
from search_spaces.nasnet.plan import CellSlot, MacroConfig, NetworkPlan, plan_network

AUX_HIDDEN = 768  # width of the auxiliary head's last conv (TF-slim)


def preprocess_modules(genotype: Cell, slot: CellSlot) -> tuple[nn.Module | None, nn.Module | None]:
    """Bring the cell's inputs to ``C`` channels; ``None`` for an input the cell never reads."""
    pre0: nn.Module | None = None
    pre1: nn.Module | None = None
    if genotype.uses_state(0) and slot.raw_s0:
        pre0 = nn.Identity()  # its ops bring it to C themselves
    elif genotype.uses_state(0):
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
                raw = source == 0 and slot.raw_s0
                ops.append(make_op(name, slot.c, stride, slot.c_prev_prev if raw else None))
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
        plan = plan_network(arch, cfg, image_size)
        self._s0_back = [slot.s0_back for slot in plan.cells]
        self._aux_index = plan.aux_index
        self.stem = stem(in_channels, plan)
        self.cells = nn.ModuleList(
            NASNetCell(arch.reduction if s.reduction else arch.normal, s)
            if s.live
            else UnusedCell()
            for s in plan.cells
        )
        self.aux_head: AuxiliaryHead | None = None
        if plan.aux_slot is not None:
            aux = plan.aux_slot
            c_aux = len(arch.cell("reduction" if aux.reduction else "normal").concat) * aux.c
            self.aux_head = AuxiliaryHead(c_aux, num_classes, aux.map_size)
        self.global_pool = nn.Sequential(nn.ReLU(), nn.AdaptiveAvgPool2d(1))
        self.dropout = nn.Dropout(cfg.dropout)
        last = plan.cells[-1]
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
        # The last three outputs (the stem's stands in for cells before the first):
        # a cell reads the one before it and the one two (or three) before it.
        recent = [self.stem(x)] * 3  # (B, stem channels, H', W')
        for i, cell in enumerate(self.cells):
            recent = [*recent[1:], cell(recent[-self._s0_back[i]], recent[-1])]
            if i == self._aux_index and self.aux_head is not None and self.training:
                self.aux_logits = self.aux_head(recent[-1])
        pooled = torch.flatten(self.global_pool(recent[-1]), 1)
        return self.classifier(self.dropout(pooled))  # (B, num_classes)


def stem(in_channels: int, plan: NetworkPlan) -> nn.Sequential:
    """The first conv and its BN: padded at stride 1 (cifar), unpadded at stride 2 (imagenet)."""
    padding = 1 if plan.stem_stride == 1 else 0
    return nn.Sequential(
        nn.Conv2d(
            in_channels, plan.stem_channels, 3, stride=plan.stem_stride, padding=padding, bias=False
        ),
        nn.BatchNorm2d(plan.stem_channels),
    )
