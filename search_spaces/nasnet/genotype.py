"""NASNet genotypes: frozen, JSON-safe descriptions of a normal and a reduction cell.

A cell holds ``B`` blocks. Hidden states are numbered: 0 is ``h_{i-1}`` (output of the
cell before the previous one), 1 is ``h_i`` (previous cell's output) and ``2 + b`` is the
output of block ``b``. Block ``b`` may read hidden states ``0 .. 1 + b`` only.

Architectures read back from a database are untrusted: :func:`decode_arch` checks every
field's type and range before a value is built, and reports the first problem as a one-line
``ArchitectureError`` that names the field (``reduction.blocks[3].input2``) and the rule.
"""

from __future__ import annotations

import itertools
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from typing import Any, Literal

from nas.core.errors import ArchitectureError, close_match_hint
from search_spaces._untrusted import MAX_REPR, check_keys, invalid, show
from search_spaces.nasnet.ops import OPS

Combine = Literal["add", "concat"]
COMBINERS: tuple[Combine, ...] = ("add", "concat")
CELL_TYPES: tuple[str, ...] = ("normal", "reduction")

# Longest repr of an offending value quoted in an error message: untrusted input may be huge.


@dataclass(frozen=True)
class Block:
    """Two ops applied to two hidden states, combined into a new hidden state."""

    input1: int
    input2: int
    op1: str
    op2: str
    combine: Combine = "add"


@dataclass(frozen=True)
class Cell:
    """``blocks`` in order, and the hidden states concatenated into the cell output."""

    blocks: tuple[Block, ...]
    concat: tuple[int, ...]

    def uses_state(self, index: int) -> bool:
        """Whether hidden state ``index`` is read by a block or is part of the output."""
        return index in self.concat or any(index in (b.input1, b.input2) for b in self.blocks)

    def ops_reading(self, index: int) -> list[str]:
        """The names of the ops applied to hidden state ``index``."""
        return [
            op
            for b in self.blocks
            for op, source in ((b.op1, b.input1), (b.op2, b.input2))
            if source == index
        ]


@dataclass(frozen=True)
class NASNetArch:
    """A NASNet architecture: one normal and one reduction cell genotype."""

    normal: Cell
    reduction: Cell

    def cell(self, cell_type: str) -> Cell:
        return self.normal if cell_type == "normal" else self.reduction


def unused_block_outputs(blocks: Iterable[Block]) -> tuple[int, ...]:
    """Block outputs (indices >= 2) that no block reads: the paper's cell output."""
    blocks = tuple(blocks)
    read = {i for b in blocks for i in (b.input1, b.input2)}
    return tuple(2 + b for b in range(len(blocks)) if 2 + b not in read)


# ----------------------------------------------------------------------------- NASNet-A
def _a(i1: int, op1: str, i2: int, op2: str) -> Block:
    return Block(input1=i1, input2=i2, op1=op1, op2=op2, combine="add")


# From the TF-slim reference (nasnet_utils.py), as summarised in PAPERS.md.
NASNET_A = NASNetArch(
    normal=Cell(
        blocks=(
            _a(1, "sep_conv_5x5", 0, "sep_conv_3x3"),
            _a(0, "sep_conv_5x5", 0, "sep_conv_3x3"),
            _a(1, "avg_pool_3x3", 0, "identity"),
            _a(0, "avg_pool_3x3", 0, "avg_pool_3x3"),
            _a(1, "sep_conv_3x3", 1, "identity"),
        ),
        concat=(0, 2, 3, 4, 5, 6),
    ),
    reduction=Cell(
        blocks=(
            _a(1, "sep_conv_5x5", 0, "sep_conv_7x7"),
            _a(1, "max_pool_3x3", 0, "sep_conv_7x7"),
            _a(1, "avg_pool_3x3", 0, "sep_conv_5x5"),
            _a(3, "identity", 2, "avg_pool_3x3"),
            _a(2, "sep_conv_3x3", 1, "max_pool_3x3"),
        ),
        concat=(3, 4, 5, 6),
    ),
)


# ----------------------------------------------------------------------------- encode / describe
def encode_arch(arch: NASNetArch) -> dict[str, Any]:
    """A JSON-safe dict; :func:`decode_arch` inverts it."""
    return {
        name: {
            "blocks": [
                {
                    "input1": b.input1,
                    "input2": b.input2,
                    "op1": b.op1,
                    "op2": b.op2,
                    "combine": b.combine,
                }
                for b in arch.cell(name).blocks
            ],
            "concat": list(arch.cell(name).concat),
        }
        for name in CELL_TYPES
    }


def _ranges(indices: Iterable[int]) -> str:
    """``(0, 2, 3, 4, 5, 6)`` -> ``"0,2..6"``; runs shorter than three stay listed."""
    parts: list[str] = []
    run: list[int] = []
    for i in [*indices, None]:
        if run and i is not None and i == run[-1] + 1:
            run.append(i)
            continue
        if len(run) >= 3:
            parts.append(f"{run[0]}..{run[-1]}")
        else:
            parts.extend(str(r) for r in run)
        run = [] if i is None else [i]
    return ",".join(parts)


def describe_cell(cell: Cell) -> str:
    """E.g. ``[b0=sep_conv_5x5(1)+sep_conv_3x3(0) b1=cat(identity(0),conv_1x1(2))] concat(2,3)``."""
    blocks = []
    for n, b in enumerate(cell.blocks):
        left, right = f"{b.op1}({b.input1})", f"{b.op2}({b.input2})"
        expr = f"{left}+{right}" if b.combine == "add" else f"cat({left},{right})"
        blocks.append(f"b{n}={expr}")
    return f"[{' '.join(blocks)}] concat({_ranges(cell.concat)})"


def describe_arch(arch: NASNetArch) -> str:
    """One line: ``normal[...] concat(...) | reduction[...] concat(...)``."""
    return " | ".join(f"{name}{describe_cell(arch.cell(name))}" for name in CELL_TYPES)


# ----------------------------------------------------------------------------- validation
def _fail(path: str, rule: str, value: object) -> ArchitectureError:
    return invalid("NASNet", path, rule, value)


def _is_int(value: object) -> bool:
    # bool is an int subclass; a stored `true` must not pass as input 1.
    return type(value) is int


def _check_keys(data: object, path: str, required: tuple[str, ...]) -> Mapping[str, Any]:
    return check_keys("NASNet", data, path, required)


def _check_sequence(data: object, path: str, what: str) -> list[Any] | tuple[Any, ...]:
    # A str is a sequence too, but never a valid list of blocks or indices.
    if not isinstance(data, (list, tuple)):
        raise _fail(path, f"must be a list of {what}", data)
    return data


def validate_cell(cell: object, path: str, num_blocks: int, reduction: bool) -> None:
    """Raise ``ArchitectureError`` unless ``cell`` is a valid genotype with ``num_blocks``."""
    if not isinstance(cell, Cell):
        raise _fail(path, "must be a Cell", cell)
    blocks = cell.blocks
    if not isinstance(blocks, tuple) or len(blocks) != num_blocks:
        size = len(blocks) if isinstance(blocks, (tuple, list)) else blocks
        raise _fail(f"{path}.blocks", f"must hold exactly {num_blocks} blocks", size)
    for b, block in enumerate(blocks):
        where = f"{path}.blocks[{b}]"
        if not isinstance(block, Block):
            raise _fail(where, "must be a Block", block)
        for field in ("input1", "input2"):
            value = getattr(block, field)
            if not _is_int(value) or not 0 <= value <= 1 + b:
                raise _fail(
                    f"{where}.{field}",
                    f"must be an int in 0..{1 + b} (block {b} reads hidden states 0..{1 + b})",
                    value,
                )
        for field in ("op1", "op2"):
            value = getattr(block, field)
            if not isinstance(value, str) or value not in OPS:
                hint = close_match_hint(value[:MAX_REPR], OPS) if isinstance(value, str) else ""
                raise ArchitectureError(
                    f"Invalid NASNet architecture: {where}.{field} must be one of the 13 "
                    f"NASNet ops ({', '.join(OPS)}), got {show(value)}.{hint}"
                )
        if not isinstance(block.combine, str) or block.combine not in COMBINERS:
            raise _fail(f"{where}.combine", "must be 'add' or 'concat'", block.combine)
    _validate_concat(cell, path, num_blocks, reduction)


def _validate_concat(cell: Cell, path: str, num_blocks: int, reduction: bool) -> None:
    concat = cell.concat
    where = f"{path}.concat"
    if not isinstance(concat, tuple) or not concat:
        raise _fail(where, "must list at least one hidden state", concat)
    lowest = 2 if reduction else 0
    for i in concat:
        if not _is_int(i) or not lowest <= i <= 1 + num_blocks:
            why = " (reduction-cell inputs have twice the output resolution)" if reduction else ""
            raise _fail(where, f"entries must be ints in {lowest}..{1 + num_blocks}{why}", i)
    # One canonical order, so that equal architectures have equal encodings.
    if any(a >= b for a, b in itertools.pairwise(concat)):
        raise _fail(where, "must be strictly increasing (unique, sorted)", concat)
    read = {i for b in cell.blocks for i in (b.input1, b.input2)}
    for b in range(num_blocks):
        if 2 + b not in read and 2 + b not in concat:
            raise _fail(
                where,
                f"must include block {b}'s output {2 + b}: no block reads it, "
                "so it would be dead computation",
                concat,
            )


def validate_arch(arch: object, num_blocks: int) -> None:
    """Raise ``ArchitectureError`` unless ``arch`` is a valid ``NASNetArch``."""
    if not isinstance(arch, NASNetArch):
        raise _fail("architecture", "must be a NASNetArch", arch)
    validate_cell(arch.normal, "normal", num_blocks, reduction=False)
    validate_cell(arch.reduction, "reduction", num_blocks, reduction=True)


# ----------------------------------------------------------------------------- decode
def _decode_cell(data: object, path: str, num_blocks: int) -> Cell:
    fields = _check_keys(data, path, ("blocks", "concat"))
    raw_blocks = _check_sequence(fields["blocks"], f"{path}.blocks", "blocks")
    # Checked before iterating so that a huge list costs nothing.
    if len(raw_blocks) != num_blocks:
        raise _fail(f"{path}.blocks", f"must hold exactly {num_blocks} blocks", len(raw_blocks))
    blocks = []
    for b, raw in enumerate(raw_blocks):
        where = f"{path}.blocks[{b}]"
        item = _check_keys(raw, where, ("input1", "input2", "op1", "op2", "combine"))
        # Types are checked by validate_cell below; the dataclass only stores the values.
        blocks.append(
            Block(
                input1=item["input1"],
                input2=item["input2"],
                op1=item["op1"],
                op2=item["op2"],
                combine=item["combine"],
            )
        )
    raw_concat = _check_sequence(fields["concat"], f"{path}.concat", "hidden-state indices")
    if len(raw_concat) > 2 + num_blocks:
        raise _fail(
            f"{path}.concat", f"must list at most {2 + num_blocks} hidden states", len(raw_concat)
        )
    return Cell(blocks=tuple(blocks), concat=tuple(raw_concat))


def decode_arch(data: Any, num_blocks: int) -> NASNetArch:
    """Parse an untrusted encoded architecture; ``ArchitectureError`` on any defect."""
    fields = _check_keys(data, "architecture", CELL_TYPES)
    cells = {name: _decode_cell(fields[name], name, num_blocks) for name in CELL_TYPES}
    arch = NASNetArch(normal=cells["normal"], reduction=cells["reduction"])
    validate_arch(arch, num_blocks)
    return arch
