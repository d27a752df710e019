"""TAS architectures: the kept width of every prunable conv and the kept depth of every
stage of a CIFAR ResNet.

An architecture lists the stem's width, then per stage the widths of each kept block's
convs (its depth is how many blocks it keeps). Architectures read back from a database
are untrusted: :func:`decode_arch` checks every field against the preset and reports
the first problem in one line.

:func:`block_plans` lays the pruned network out (input width, stride, shortcut of every
block); the builder, the code generator and :func:`arch_macs`, the exact multiply-adds,
all read it.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass
from typing import Any, NamedTuple

from search_spaces._untrusted import check_keys, invalid
from search_spaces.tas.presets import Preset, width_choices

_FAMILY = "TAS"
_KEYS = ("stem", "stages")

Widths = tuple[int, ...]  # one kept block: the widths of its prunable convs


@dataclass(frozen=True)
class TASArch:
    """A pruned network: the stem's width and, per stage, each kept block's conv widths."""

    stem: int
    stages: tuple[tuple[Widths, ...], ...]


class BlockPlan(NamedTuple):
    """One block of a pruned network, in network order."""

    stage: int
    position: int  # in the stage, from 0
    in_width: int
    widths: Widths
    stride: int
    in_side: int  # feature-map side at the block's input
    side: int  # and at its output
    shortcut: str  # "pool" (avg-pool + 1x1 conv) | "project" (1x1 conv + BN) | "identity"


def arch_from_layers(
    preset: Preset, stem: int, widths: Sequence[int], depths: Sequence[int]
) -> TASArch:
    """The architecture keeping the first ``depths[i]`` blocks of stage ``i``, from the
    widths of every prunable conv after the stem in network order (dropped blocks' too)."""
    per_block = len(preset.block_channels[0])
    stages, at = [], 0
    for depth in depths:
        blocks = (
            tuple(widths[at + b * per_block : at + (b + 1) * per_block]) for b in range(depth)
        )
        stages.append(tuple(blocks))
        at += preset.blocks * per_block
    return TASArch(stem, tuple(stages))


def block_plans(arch: TASArch, image_size: int) -> Iterator[BlockPlan]:
    """The blocks of a (validated) pruned network, in order."""
    width, side = arch.stem, image_size
    for stage, blocks in enumerate(arch.stages):
        for index, widths in enumerate(blocks):
            stride = 2 if stage > 0 and index == 0 else 1
            out_side = side // stride
            if stride == 2:
                shortcut = "pool"
            elif width != widths[-1]:
                shortcut = "project"
            else:
                shortcut = "identity"
            yield BlockPlan(stage, index, width, widths, stride, side, out_side, shortcut)
            width, side = widths[-1], out_side


def arch_macs(arch: TASArch, in_channels: int, num_classes: int, image_size: int) -> int:
    """Multiply-adds of one image through the pruned network: every conv (the shortcuts'
    too) and the classifier; BN, ReLU, pooling and additions are not counted (as
    ``nas.metrics.count_flops``, which counts two FLOPs per multiply-add)."""
    macs = 9 * in_channels * arch.stem * image_size**2
    width = arch.stem
    for plan in block_plans(arch, image_size):
        macs += block_macs(plan)
        width = plan.widths[-1]
    return macs + width * num_classes


def block_macs(plan: BlockPlan) -> int:
    """Multiply-adds of one block (its shortcut included)."""
    inner = plan.side**2
    if len(plan.widths) == 2:  # basic: 3x3 (stride), 3x3
        a, b = plan.widths
        macs = 9 * plan.in_width * a * inner + 9 * a * b * inner
    else:  # bottleneck: 1x1, 3x3 (stride), 1x1
        a, b, c = plan.widths
        macs = plan.in_width * a * plan.in_side**2 + 9 * a * b * inner + b * c * inner
    if plan.shortcut != "identity":
        macs += plan.in_width * plan.widths[-1] * inner
    return macs


def extreme_arch(preset: Preset, pick: Callable[[tuple[int, ...]], int]) -> TASArch:
    """The network taking ``pick`` (``min``/``max``) of every width and depth choice."""
    stages = tuple(
        tuple(tuple(pick(width_choices(c)) for c in channels) for _ in range(pick(preset.depths)))
        for channels in preset.block_channels
    )
    return TASArch(pick(width_choices(preset.stem)), stages)


def uniform_arch(preset: Preset, tenths: int) -> TASArch:
    """Every layer at ``tenths``/10 of its channels (rounded down, at least 1), full depth."""

    def keep(channels: int) -> int:
        return max(1, channels * tenths // 10)

    stages = tuple(
        tuple(tuple(keep(c) for c in channels) for _ in range(preset.blocks))
        for channels in preset.block_channels
    )
    return TASArch(keep(preset.stem), stages)


# ----------------------------------------------------------------------------- encode / describe
def encode_arch(arch: TASArch) -> dict[str, Any]:
    """A JSON-safe dict; :func:`decode_arch` inverts it."""
    return {
        "stem": arch.stem,
        "stages": [[list(widths) for widths in blocks] for blocks in arch.stages],
    }


def describe_arch(arch: TASArch) -> str:
    """E.g. ``16 | 3: 11-16 14-16 8-16 | ...``: the stem's width, then per stage its depth
    and each kept block's conv widths."""
    stages = " | ".join(
        f"{len(blocks)}: " + " ".join("-".join(str(w) for w in widths) for widths in blocks)
        for blocks in arch.stages
    )
    return f"{arch.stem} | {stages}"


# ----------------------------------------------------------------------------- validation
def _check_choice(path: str, value: object, choices: tuple[int, ...], preset: Preset) -> None:
    # `type(...) is int`: bool is an int subclass, and a stored `true` is not a width of 1.
    if type(value) is not int or value not in choices:
        allowed = ", ".join(str(c) for c in choices)
        raise invalid(_FAMILY, path, f"must be one of {allowed} (preset '{preset.name}')", value)


def _check_list(path: str, value: object, rule: str, ok: Callable[[int], bool]) -> None:
    if not isinstance(value, (tuple, list)) or not ok(len(value)):
        raise invalid(
            _FAMILY, path, rule, len(value) if isinstance(value, (tuple, list)) else value
        )


def validate_arch(arch: object, preset: Preset) -> None:
    """Raise ``ArchitectureError`` unless ``arch`` is a pruned network of ``preset``."""
    if not isinstance(arch, TASArch):
        raise invalid(_FAMILY, "architecture", "must be a TASArch", arch)
    _check_choice("stem", arch.stem, width_choices(preset.stem), preset)
    stages = len(preset.block_channels)
    _check_list("stages", arch.stages, f"must hold exactly {stages} stages", lambda n: n == stages)
    depths = ", ".join(str(d) for d in preset.depths)
    for i, (blocks, channels) in enumerate(zip(arch.stages, preset.block_channels, strict=True)):
        _check_list(
            f"stages[{i}]", blocks, f"must keep {depths} blocks", lambda n: n in preset.depths
        )
        convs = len(channels)
        for j, widths in enumerate(blocks):
            path = f"stages[{i}][{j}]"
            _check_list(path, widths, f"must hold {convs} widths", lambda n: n == convs)  # noqa: B023
            for k, (width, full) in enumerate(zip(widths, channels, strict=True)):
                _check_choice(f"{path}[{k}]", width, width_choices(full), preset)


def decode_arch(data: Any, preset: Preset) -> TASArch:
    """Parse and validate an untrusted encoded architecture."""
    fields = check_keys(_FAMILY, data, "architecture", _KEYS)
    stages = fields["stages"]
    _check_list("stages", stages, "must be a list of stages", lambda n: True)
    decoded = []
    for i, blocks in enumerate(stages):
        _check_list(f"stages[{i}]", blocks, "must be a list of blocks", lambda n: True)
        for j, widths in enumerate(blocks):
            _check_list(f"stages[{i}][{j}]", widths, "must be a list of widths", lambda n: True)
        decoded.append(tuple(tuple(widths) for widths in blocks))
    arch = TASArch(fields["stem"], tuple(decoded))
    validate_arch(arch, preset)
    return arch
