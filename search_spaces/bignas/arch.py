"""BigNAS architectures: frozen, JSON-safe choices of every elastic dimension.

Architectures read back from a database are untrusted: :func:`decode_arch` checks every
field's type, length and choice against the space's preset before a value is built, and
reports the first problem as a one-line ``ArchitectureError`` that names the field
(``stages[2].kernels[1]``) and the rule.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any, NamedTuple

from nas.core.errors import ArchitectureError
from search_spaces._untrusted import check_keys, invalid
from search_spaces.bignas.presets import Preset

# Longest repr of an offending value quoted in an error message: untrusted input may be huge.
_ARCH_KEYS = ("resolution", "stem", "stages", "head")
_STAGE_KEYS = ("width", "depth", "kernels", "expands")


@dataclass(frozen=True)
class StageArch:
    """One stage of a child: ``depth`` blocks of ``width`` channels.

    ``kernels[j]`` / ``expands[j]`` are block ``j``'s depthwise kernel size and expansion
    ratio; both tuples hold exactly ``depth`` entries (skipped blocks have no choices).
    """

    width: int
    depth: int
    kernels: tuple[int, ...]
    expands: tuple[int, ...]


@dataclass(frozen=True)
class BigNASArch:
    """A child of the supernet: input resolution, stem width, stages, last-conv width."""

    resolution: int
    stem: int
    stages: tuple[StageArch, ...]
    head: int


class BlockPlan(NamedTuple):
    """One MBConv block that runs in a child, in network order."""

    stage: int
    position: int  # index in its stage
    c_in: int
    c_out: int
    kernel: int
    stride: int
    expand: int


def plan_blocks(arch: BigNASArch, preset: Preset) -> list[BlockPlan]:
    """The blocks a (validated) child runs; shared by the builders and the code generator."""
    plan = []
    c_in = arch.stem
    for i, (stage, spec) in enumerate(zip(arch.stages, preset.stages, strict=True)):
        for j in range(stage.depth):
            stride = spec.stride if j == 0 else 1
            plan.append(
                BlockPlan(i, j, c_in, stage.width, stage.kernels[j], stride, stage.expands[j])
            )
            c_in = stage.width
    return plan


def extreme_arch(preset: Preset, pick: Any) -> BigNASArch:
    """The child taking ``pick`` (``min`` or ``max``) of every choice."""
    stages = []
    for spec in preset.stages:
        depth = pick(spec.depths)
        stages.append(
            StageArch(
                width=pick(spec.widths),
                depth=depth,
                kernels=(pick(spec.kernels),) * depth,
                expands=(pick(spec.expands),) * depth,
            )
        )
    return BigNASArch(
        resolution=pick(preset.resolutions),
        stem=pick(preset.stems),
        stages=tuple(stages),
        head=pick(preset.heads),
    )


# ----------------------------------------------------------------------------- encode / describe
def encode_arch(arch: BigNASArch) -> dict[str, Any]:
    """A JSON-safe dict; :func:`decode_arch` inverts it."""
    return {
        "resolution": arch.resolution,
        "stem": arch.stem,
        "stages": [
            {
                "width": s.width,
                "depth": s.depth,
                "kernels": list(s.kernels),
                "expands": list(s.expands),
            }
            for s in arch.stages
        ],
        "head": arch.head,
    }


def describe_arch(arch: BigNASArch) -> str:
    """E.g. ``r12 stem16 | 16x1(k3e2) 24x2(k5e4,k3e3) 40x1(k3e2) | head64``."""
    stages = " ".join(
        f"{s.width}x{s.depth}("
        + ",".join(f"k{k}e{e}" for k, e in zip(s.kernels, s.expands, strict=True))
        + ")"
        for s in arch.stages
    )
    return f"r{arch.resolution} stem{arch.stem} | {stages} | head{arch.head}"


# ----------------------------------------------------------------------------- validation
def _fail(path: str, rule: str, value: object) -> ArchitectureError:
    return invalid("BigNAS", path, rule, value)


def _check_choice(path: str, value: object, choices: tuple[int, ...], preset: Preset) -> None:
    # `type(...) is int`: bool is an int subclass, and a stored `true` is not a width of 1.
    if type(value) is not int or value not in choices:
        allowed = ", ".join(str(c) for c in choices)
        raise _fail(path, f"must be one of {allowed} (preset '{preset.name}')", value)


def _check_tuple(path: str, value: object, length: int) -> tuple[Any, ...]:
    if not isinstance(value, tuple) or len(value) != length:
        size = len(value) if isinstance(value, (tuple, list)) else value
        raise _fail(path, f"must be a tuple of {length} entries (one per block that runs)", size)
    return value


def validate_arch(arch: object, preset: Preset) -> None:
    """Raise ``ArchitectureError`` unless ``arch`` is a child of ``preset``'s supernet."""
    if not isinstance(arch, BigNASArch):
        raise _fail("architecture", "must be a BigNASArch", arch)
    _check_choice("resolution", arch.resolution, preset.resolutions, preset)
    _check_choice("stem", arch.stem, preset.stems, preset)
    stages = arch.stages
    if not isinstance(stages, tuple) or len(stages) != len(preset.stages):
        size = len(stages) if isinstance(stages, (tuple, list)) else stages
        raise _fail("stages", f"must hold exactly {len(preset.stages)} stages", size)
    for i, (stage, spec) in enumerate(zip(stages, preset.stages, strict=True)):
        where = f"stages[{i}]"
        if not isinstance(stage, StageArch):
            raise _fail(where, "must be a StageArch", stage)
        _check_choice(f"{where}.width", stage.width, spec.widths, preset)
        _check_choice(f"{where}.depth", stage.depth, spec.depths, preset)
        for field, choices in (("kernels", spec.kernels), ("expands", spec.expands)):
            values = _check_tuple(f"{where}.{field}", getattr(stage, field), stage.depth)
            for j, value in enumerate(values):
                _check_choice(f"{where}.{field}[{j}]", value, choices, preset)
    _check_choice("head", arch.head, preset.heads, preset)


# ----------------------------------------------------------------------------- decode
def _check_keys(data: object, path: str, required: tuple[str, ...]) -> Mapping[str, Any]:
    return check_keys("BigNAS", data, path, required)


def _int_list(data: object, path: str, length: int) -> tuple[Any, ...]:
    # A str is a sequence too, but never a valid list of choices. The length is checked
    # before the items, so that a huge list costs nothing.
    if not isinstance(data, (list, tuple)):
        raise _fail(path, "must be a list of ints", data)
    if len(data) != length:
        raise _fail(path, f"must hold {length} entries (one per block that runs)", len(data))
    return tuple(data)


def decode_arch(data: Any, preset: Preset) -> BigNASArch:
    """Parse an untrusted encoded architecture; ``ArchitectureError`` on any defect."""
    fields = _check_keys(data, "architecture", _ARCH_KEYS)
    raw_stages = fields["stages"]
    if not isinstance(raw_stages, (list, tuple)):
        raise _fail("stages", "must be a list of stages", raw_stages)
    if len(raw_stages) != len(preset.stages):
        raise _fail("stages", f"must hold exactly {len(preset.stages)} stages", len(raw_stages))
    stages = []
    for i, (raw, spec) in enumerate(zip(raw_stages, preset.stages, strict=True)):
        where = f"stages[{i}]"
        item = _check_keys(raw, where, _STAGE_KEYS)
        depth = item["depth"]
        # The depth fixes the list lengths below, so it is checked first.
        _check_choice(f"{where}.depth", depth, spec.depths, preset)
        stages.append(
            StageArch(
                width=item["width"],
                depth=depth,
                kernels=_int_list(item["kernels"], f"{where}.kernels", depth),
                expands=_int_list(item["expands"], f"{where}.expands", depth),
            )
        )
    arch = BigNASArch(
        resolution=fields["resolution"],
        stem=fields["stem"],
        stages=tuple(stages),
        head=fields["head"],
    )
    validate_arch(arch, preset)
    return arch
