"""ViT-ResNAS architectures: frozen, JSON-safe choices of every elastic dimension.

A child fixes each stage's embedding width and, for every block position of the
supernet's stage, either the block's attention heads and MLP width or ``None``: the
block is skipped (only the preset's skippable positions may be). Architectures read
back from a database are untrusted: :func:`decode_arch` checks every field's type,
length and choice against the preset and reports the first problem in one line.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, NamedTuple

from search_spaces._untrusted import check_keys, invalid
from search_spaces.vit_resnas.presets import Preset

_FAMILY = "ViT-ResNAS"
_STAGE_KEYS = ("dim", "blocks")
_BLOCK_KEYS = ("heads", "mlp")


@dataclass(frozen=True)
class BlockArch:
    """A block that runs: ``heads`` attention heads (of the stage's head width) and an
    MLP of ``mlp`` hidden units."""

    heads: int
    mlp: int


@dataclass(frozen=True)
class StageArch:
    """One stage: its embedding width and one entry per block position (None: skipped)."""

    dim: int
    blocks: tuple[BlockArch | None, ...]


@dataclass(frozen=True)
class ViTResArch:
    """A child of the supernet: its stages, in order."""

    stages: tuple[StageArch, ...]


class BlockPlan(NamedTuple):
    """One block that runs in a child, in network order."""

    stage: int
    position: int  # index among the supernet stage's blocks
    dim: int
    heads: int
    head_dim: int
    mlp: int
    drop_path: float


def plan_blocks(arch: ViTResArch, preset: Preset, drop_path: float) -> list[BlockPlan]:
    """The blocks a (validated) child runs; stochastic depth rises linearly from 0 to
    ``drop_path`` over them (as in DeiT), shared by the builders and the code generator."""
    kept = [
        (i, j, stage.dim, block)
        for i, stage in enumerate(arch.stages)
        for j, block in enumerate(stage.blocks)
        if block is not None
    ]
    last = max(len(kept) - 1, 1)
    return [
        BlockPlan(
            i, j, dim, block.heads, preset.stages[i].head_dim, block.mlp, drop_path * n / last
        )
        for n, (i, j, dim, block) in enumerate(kept)
    ]


def extreme_arch(preset: Preset, pick: Any) -> ViTResArch:
    """The child taking ``pick`` (``min`` or ``max``) of every choice; ``min`` skips every
    skippable block."""
    stages = []
    for spec in preset.stages:
        block = BlockArch(pick(spec.heads), pick(spec.mlp))
        skip = pick is min
        stages.append(
            StageArch(
                pick(spec.dims),
                tuple(None if skip and j in spec.skippable else block for j in range(spec.blocks)),
            )
        )
    return ViTResArch(tuple(stages))


# ----------------------------------------------------------------------------- encode / describe
def encode_arch(arch: ViTResArch) -> dict[str, Any]:
    """A JSON-safe dict (skipped blocks as null); :func:`decode_arch` inverts it."""
    return {
        "stages": [
            {
                "dim": stage.dim,
                "blocks": [
                    None if b is None else {"heads": b.heads, "mlp": b.mlp} for b in stage.blocks
                ],
            }
            for stage in arch.stages
        ]
    }


def describe_arch(arch: ViTResArch) -> str:
    """E.g. ``176: h3m704 h3m576 - | 352: ...``: per stage the width, then each block's
    heads and MLP width (``-`` a skipped block)."""
    return " | ".join(
        f"{stage.dim}: "
        + " ".join("-" if b is None else f"h{b.heads}m{b.mlp}" for b in stage.blocks)
        for stage in arch.stages
    )


# ----------------------------------------------------------------------------- validation
def _fail(path: str, rule: str, value: object) -> Exception:
    return invalid(_FAMILY, path, rule, value)


def _check_choice(path: str, value: object, choices: tuple[int, ...], preset: Preset) -> None:
    # `type(...) is int`: bool is an int subclass, and a stored `true` is not a width of 1.
    if type(value) is not int or value not in choices:
        allowed = ", ".join(str(c) for c in choices)
        raise _fail(path, f"must be one of {allowed} (preset '{preset.name}')", value)


def _check_length(path: str, value: object, length: int, what: str) -> None:
    if not isinstance(value, (tuple, list)) or len(value) != length:
        size = len(value) if isinstance(value, (tuple, list)) else value
        raise _fail(path, f"must hold exactly {length} {what}", size)


def validate_arch(arch: object, preset: Preset) -> None:
    """Raise ``ArchitectureError`` unless ``arch`` is a child of ``preset``'s supernet."""
    if not isinstance(arch, ViTResArch):
        raise _fail("architecture", "must be a ViTResArch", arch)
    _check_length("stages", arch.stages, len(preset.stages), "stages")
    if not isinstance(arch.stages, tuple):
        raise _fail("stages", "must be a tuple", arch.stages)
    for i, (stage, spec) in enumerate(zip(arch.stages, preset.stages, strict=True)):
        where = f"stages[{i}]"
        if not isinstance(stage, StageArch):
            raise _fail(where, "must be a StageArch", stage)
        _check_choice(f"{where}.dim", stage.dim, spec.dims, preset)
        _check_length(f"{where}.blocks", stage.blocks, spec.blocks, "block positions")
        if not isinstance(stage.blocks, tuple):
            raise _fail(f"{where}.blocks", "must be a tuple", stage.blocks)
        for j, block in enumerate(stage.blocks):
            at = f"{where}.blocks[{j}]"
            if block is None:
                if j not in spec.skippable:
                    skippable = ", ".join(str(s) for s in spec.skippable)
                    raise _fail(at, f"cannot be skipped (skippable: {skippable})", block)
                continue
            if not isinstance(block, BlockArch):
                raise _fail(at, "must be a BlockArch or None (skipped)", block)
            _check_choice(f"{at}.heads", block.heads, spec.heads, preset)
            _check_choice(f"{at}.mlp", block.mlp, spec.mlp, preset)


# ----------------------------------------------------------------------------- decode
def _decode_block(data: object, path: str) -> BlockArch | None:
    if data is None:
        return None
    fields = check_keys(_FAMILY, data, path, _BLOCK_KEYS)
    return BlockArch(heads=fields["heads"], mlp=fields["mlp"])


def decode_arch(data: Any, preset: Preset) -> ViTResArch:
    """Parse an untrusted encoded architecture; ``ArchitectureError`` on any defect."""
    fields = check_keys(_FAMILY, data, "architecture", ("stages",))
    raw_stages = fields["stages"]
    # Lengths are checked before the items, so that a huge list costs nothing.
    _check_length("stages", raw_stages, len(preset.stages), "stages")
    stages = []
    for i, (raw, spec) in enumerate(zip(raw_stages, preset.stages, strict=True)):
        where = f"stages[{i}]"
        item = check_keys(_FAMILY, raw, where, _STAGE_KEYS)
        blocks = item["blocks"]
        _check_length(f"{where}.blocks", blocks, spec.blocks, "block positions")
        decoded = tuple(_decode_block(b, f"{where}.blocks[{j}]") for j, b in enumerate(blocks))
        stages.append(StageArch(dim=item["dim"], blocks=decoded))
    arch = ViTResArch(tuple(stages))
    validate_arch(arch, preset)
    return arch
