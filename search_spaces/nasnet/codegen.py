"""Standalone PyTorch source for a NASNet architecture.

The generated file imports only torch. It holds the op classes the architecture uses
(copied verbatim from :mod:`search_spaces.nasnet.ops`), one class per cell type whose
``forward`` spells out the wiring, a ``Network`` class and ``build_network()``. Its module
structure is the platform model's, so ``export_state_dict(model)`` loads with
``strict=True``.

Only validated values reach the text: ints (rendered with ``int``) and op names from the
fixed list, which select constructor specs; nothing from the stored data is pasted in.
"""

from __future__ import annotations

import inspect
import textwrap
from typing import Any

from torch import nn

from search_spaces._codegen import code_int as _int
from search_spaces.nasnet import ops as ops_module
from search_spaces.nasnet.genotype import Cell, NASNetArch, describe_arch
from search_spaces.nasnet.ops import (
    OPS,
    FactorizedReduce,
    ReLUConvBN,
    SepConv,
    SpatialSepConv,
    UnusedCell,
    op_spec,
)
from search_spaces.nasnet.plan import CellSlot, MacroConfig, NetworkPlan, plan_network

# Order in which helper classes appear in the generated file.
_EXPORTED_CLASSES: tuple[type[nn.Module], ...] = (
    ReLUConvBN,
    SpatialSepConv,
    SepConv,
    FactorizedReduce,
    UnusedCell,
)


# Variable names the generated cell constructors may pass to helper classes.
_VARIABLES = frozenset({"c", "2 * c", "c_prev", "c_prev_prev", "c0"})


def _literal(value: Any) -> str:
    if type(value) is bool:
        return "True" if value else "False"
    if isinstance(value, str):
        if value not in _VARIABLES:
            raise ValueError(f"unexpected expression {value!r} in generated code")
        return value
    return _int(value)


def _int_tuple(values: tuple[int, ...]) -> str:
    items = ", ".join(_int(v) for v in values)
    return f"({items},)" if len(values) == 1 else f"({items})"


def _state_name(index: int) -> str:
    return ("h0", "h1")[index] if index < 2 else f"b{index - 2}"


class _Writer:
    """Collects generated cell classes and remembers which helper classes they need."""

    def __init__(self) -> None:
        self.used: set[type[nn.Module]] = set()

    def call(self, cls: type[nn.Module], args: tuple[Any, ...], kwargs: dict[str, Any]) -> str:
        if cls.__module__ == ops_module.__name__:
            self.used.add(cls)
            name = cls.__name__
        else:  # a torch.nn class (Identity, MaxPool2d, AvgPool2d)
            name = f"nn.{cls.__name__}"
        parts = [_literal(a) for a in args] + [f"{k}={_literal(v)}" for k, v in kwargs.items()]
        return f"{name}({', '.join(parts)})"

    def cell_class(self, cell_type: str, genotype: Cell, slots: list[CellSlot]) -> str:
        """Source of ``NormalCell`` or ``ReductionCell``."""
        reduction = cell_type == "reduction"
        raw = any(s.raw_s0 for s in slots)  # the ImageNet layout's first stem cell
        class_name = "ReductionCell" if reduction else "NormalCell"
        what = "halves the resolution" if reduction else "keeps the resolution"
        lines = [
            f"class {class_name}(nn.Module):",
            f'    """{cell_type.capitalize()} cell: {what}.',
            "",
            "    h0 / h1: outputs of the cell before the previous one / the previous cell,",
            "    brought to c channels; bK: output of block K.",
            '    """',
            "",
            f"    multiplier = {_int(len(genotype.concat))}"
            "  # hidden states concatenated into the output, c channels each",
            "",
            "    def __init__(self, c_prev_prev: int, c_prev: int, c: int,"
            f" reduction_prev: bool{', raw_s0: bool = False' if raw else ''}) -> None:",
            "        super().__init__()",
        ]
        lines += self._preprocess(genotype, slots)
        if raw:
            lines.append(
                "        c0 = c_prev_prev if raw_s0 else c  # ops read s0 unprocessed if raw_s0"
            )
        lines.append("        self.ops = nn.ModuleList([")
        for b, block in enumerate(genotype.blocks):
            for side, name, source in (
                ("left", block.op1, block.input1),
                ("right", block.op2, block.input2),
            ):
                if name not in OPS:
                    raise ValueError(f"unknown op {name!r}")
                stride = 2 if reduction and source < 2 else 1
                call = self.call(*op_spec(name, stride, "c0" if raw and source == 0 else "c"))
                lines.append(f"            {call},  # b{_int(b)} {side}, on {_state_name(source)}")
        lines.append("        ])")
        concat_blocks = [b for b, block in enumerate(genotype.blocks) if block.combine == "concat"]
        if concat_blocks:
            # Same combiner as the platform: cat of two C-channel maps back to C channels.
            merge = self.call(ReLUConvBN, ("2 * c", "c", 1), {})
            lines.append("        self.merge = nn.ModuleDict({  # cat(left, right) -> c channels")
            lines += [f'            "b{_int(b)}": {merge},' for b in concat_blocks]
            lines.append("        })")
        lines += ["", "    def forward(self, s0: torch.Tensor, s1: torch.Tensor) -> torch.Tensor:"]
        for k in (0, 1):
            if genotype.uses_state(k):
                lines.append(f"        h{k} = self.preprocess{k}(s{k})")
        for b, block in enumerate(genotype.blocks):
            left = f"self.ops[{_int(2 * b)}]({_state_name(block.input1)})"
            right = f"self.ops[{_int(2 * b + 1)}]({_state_name(block.input2)})"
            if block.combine == "add":
                lines.append(f"        b{_int(b)} = {left} + {right}")
            else:
                lines.append(
                    f'        b{_int(b)} = self.merge["b{_int(b)}"]'
                    f"(torch.cat([{left}, {right}], dim=1))"
                )
        outputs = ", ".join(_state_name(i) for i in genotype.concat)
        if len(genotype.concat) == 1:
            lines.append(f"        return {outputs}")
        else:
            lines.append(f"        return torch.cat([{outputs}], dim=1)")
        return "\n".join(lines)

    def _preprocess(self, genotype: Cell, slots: list[CellSlot]) -> list[str]:
        lines = []
        if not genotype.uses_state(0):
            lines.append("        # s0 is never read by this cell, so it is not preprocessed.")
        else:
            conv = self.call(ReLUConvBN, ("c_prev_prev", "c", 1), {})
            reduced = {s.reduction_prev for s in slots}
            if any(s.raw_s0 for s in slots):
                factorized = self.call(FactorizedReduce, ("c_prev_prev", "c"), {})
                lines += [
                    "        if raw_s0:  # the stem conv's output, read as it is",
                    "            self.preprocess0 = nn.Identity()",
                    "        elif reduction_prev:  # s0 has twice the resolution of s1",
                    f"            self.preprocess0 = {factorized}",
                    "        else:",
                    f"            self.preprocess0 = {conv}",
                ]
            elif True in reduced:
                factorized = self.call(FactorizedReduce, ("c_prev_prev", "c"), {})
                lines += [
                    "        if reduction_prev:  # s0 has twice the resolution of s1",
                    f"            self.preprocess0 = {factorized}",
                    "        else:",
                    f"            self.preprocess0 = {conv}",
                ]
            else:
                lines += [
                    "        # No cell of this type follows a reduction (reduction_prev is",
                    "        # always False), so s0 already has s1's resolution.",
                    f"        self.preprocess0 = {conv}",
                ]
        if genotype.uses_state(1):
            conv1 = self.call(ReLUConvBN, ("c_prev", "c", 1), {})
            lines.append(f"        self.preprocess1 = {conv1}")
        else:
            lines.append("        # s1 is never read by this cell, so it is not preprocessed.")
        return lines


_NETWORK = '''
class Network(nn.Module):
    """{layout_doc}"""

    # One row per cell: (cell class, c_prev_prev, c_prev, c, reduction_prev, s0_back,
    # raw_s0): the channels of its inputs s0 / s1 and of its hidden states, whether s0
    # has twice s1's resolution, how many cells back s0 comes from, and whether s0 is
    # read unprocessed. Each cell's s1 is the cell before it.
    CELLS = (
{cell_rows}
    )

    def __init__(self, in_channels: int, num_classes: int{unused_param}) -> None:
        super().__init__()
        self.stem = nn.Sequential(  # {stem_doc}
            nn.Conv2d(in_channels, {stem_channels}, 3, {stem_args}, bias=False),
            nn.BatchNorm2d({stem_channels}),
        )
        self.cells = nn.ModuleList()
        self.s0_back = [row[5] for row in self.CELLS]
{loop}
{append_cell}
        self.global_pool = nn.Sequential(nn.ReLU(), nn.AdaptiveAvgPool2d(1))
        self.dropout = nn.Dropout({dropout})
        self.classifier = nn.Linear(NormalCell.multiplier * self.CELLS[-1][3], num_classes)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        # The last three outputs (the stem's stands in for cells before the first).
        recent = [self.stem(x)] * 3
        for cell, back in zip(self.cells, self.s0_back):
            recent = [*recent[1:], cell(recent[-back], recent[-1])]
        pooled = torch.flatten(self.global_pool(recent[-1]), 1)
        return self.classifier(self.dropout(pooled))  # (B, num_classes)


def build_network() -> nn.Module:
    """{summary}"""
    return Network(in_channels={in_channels}, num_classes={num_classes}{unused_arg})
'''


def _cell_rows(plan: NetworkPlan) -> str:
    rows = []
    for slot in plan.cells:
        name = "ReductionCell" if slot.reduction else "NormalCell"
        values = [
            _int(slot.c_prev_prev),
            _int(slot.c_prev),
            _int(slot.c),
            _literal(slot.reduction_prev),
            _int(slot.s0_back),
            _literal(slot.raw_s0),
        ]
        rows.append(f"        ({name}, {', '.join(values)}),  # cell {_int(slot.index)}")
    return "\n".join(rows)


_ROW = "(cell_cls, c_prev_prev, c_prev, c, reduction_prev, _, raw_s0)"
_LOOP = f"        for {_ROW} in self.CELLS:"
_LOOP_UNUSED = f"        for i, {_ROW} in enumerate(self.CELLS):"
_RAW = """\
            extra = {"raw_s0": True} if raw_s0 else {}  # the first stem cell only
"""

_APPEND_CELL = """\
{raw}            self.cells.append(cell_cls(c_prev_prev, c_prev, c, reduction_prev{extra}))"""

_APPEND_CELL_OR_UNUSED = """\
            if i in unused_cells:  # nothing reads this cell's output: see UnusedCell
                self.cells.append(UnusedCell())
                continue
{raw}            self.cells.append(cell_cls(c_prev_prev, c_prev, c, reduction_prev{extra}))"""


def export_source(
    arch: NASNetArch, cfg: MacroConfig, in_channels: int, num_classes: int, image_size: int
) -> str:
    """Source of a module defining ``build_network()`` for a validated ``arch``."""
    plan = plan_network(arch, cfg, image_size)
    writer = _Writer()
    cells = [
        writer.cell_class(
            name,
            arch.cell(name),
            [s for s in plan.cells if s.live and s.reduction == (name == "reduction")],
        )
        for name in ("normal", "reduction")
    ]
    unused = tuple(s.index for s in plan.cells if not s.live)
    if unused:
        writer.used.add(UnusedCell)
    helpers = [
        textwrap.dedent(inspect.getsource(cls)) for cls in _EXPORTED_CLASSES if cls in writer.used
    ]
    imports = ["import torch"]
    if FactorizedReduce in writer.used:
        imports.append("import torch.nn.functional as F")
    imports.append("from torch import nn")
    summary = _summary(arch, cfg, plan, (in_channels, num_classes, image_size))
    raw = any(s.raw_s0 for s in plan.cells)
    append = _APPEND_CELL_OR_UNUSED if unused else _APPEND_CELL
    network = _NETWORK.format(
        layout_doc=_LAYOUT_DOC[plan.layout],
        cell_rows=_cell_rows(plan),
        unused_param=", unused_cells: tuple[int, ...] = ()" if unused else "",
        stem_channels=_int(plan.stem_channels),
        stem_args="padding=1" if plan.stem_stride == 1 else "stride=2",
        stem_doc="same size" if plan.stem_stride == 1 else "stride 2, no padding",
        loop=_LOOP_UNUSED if unused else _LOOP,
        append_cell=append.format(raw=_RAW if raw else "", extra=", **extra" if raw else ""),
        dropout=repr(float(cfg.dropout)),
        summary=summary,
        in_channels=_int(in_channels),
        num_classes=_int(num_classes),
        unused_arg=f", unused_cells={_int_tuple(unused)}" if unused else "",
    )
    parts = [_header(arch, summary, imports), *helpers, *cells]
    return "\n\n\n".join(p.strip("\n") for p in parts) + "\n\n" + network


_LAYOUT_DOC = {
    "cifar": "Stem, then three stages of normal cells with a reduction cell between stages.",
    "imagenet": (
        "Strided stem and two reduction stem cells, then three stages of normal cells\n"
        "    with a reduction cell between stages (NASNet's ImageNet layout)."
    ),
}


def _summary(
    arch: NASNetArch, cfg: MacroConfig, plan: NetworkPlan, data: tuple[int, int, int]
) -> str:
    in_channels, num_classes, image_size = data
    final_channels = len(arch.normal.concat) * plan.cells[-1].c
    return (
        f"NASNet {_int(cfg.cells_per_stage)} @ {_int(final_channels)} ({plan.layout} layout) for "
        f"{_int(in_channels)}x{_int(image_size)}x{_int(image_size)} images, "
        f"{_int(num_classes)} classes."
    )


def _header(arch: NASNetArch, summary: str, imports: list[str]) -> str:
    return "\n".join(
        [
            f'"""{summary}',
            "",
            "Architecture (search space 'nasnet'; hidden state 0 = h_{i-1}, 1 = h_i, "
            "2+K = block K):",
            "",
            # The one-line form, wrapped at its spaces to keep lines short.
            *textwrap.wrap(
                describe_arch(arch),
                width=96,
                break_on_hyphens=False,
                break_long_words=False,
                subsequent_indent="    ",
            ),
            "",
            "Generated by nas for inference and fine-tuning: the auxiliary head and the scheduled",
            "drop-path used while training in the search are left out. Load exported weights with",
            "",
            "    model = build_network()",
            '    model.load_state_dict(safetensors.torch.load_file("weights.safetensors"))',
            '"""',
            "",
            "from __future__ import annotations",
            "",
            *imports,
        ]
    )
