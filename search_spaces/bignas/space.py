"""The BigNAS elastic MobileNetV3-like space (Yu et al. 2020) behind ``WeightSharingSpace``."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, ClassVar

from nas.core.dataspec import DataSpec, check_data_spec
from nas.core.validation import check_choice, check_optional_number
from search_spaces import register_space
from search_spaces._choices import suggest_choice
from search_spaces.base import WeightSharingSpace
from search_spaces.bignas.arch import (
    BigNASArch,
    StageArch,
    decode_arch,
    describe_arch,
    encode_arch,
    extreme_arch,
    validate_arch,
)
from search_spaces.bignas.model import build_network
from search_spaces.bignas.presets import PRESETS, Preset
from search_spaces.bignas.published import PUBLISHED_CHILDREN
from search_spaces.bignas.supernet import BigNASSupernet

if TYPE_CHECKING:
    import optuna
    from torch import nn


@dataclass(frozen=True)
class BigNASSettings:
    """The BigNAS space's ``model.*`` settings group."""

    preset: str = "tiny"  # tiny (8x8 digits on a CPU) | imagenet (the paper's space)
    dropout: float | None = None  # before the classifier; default: the preset's
    drop_connect: float | None = None  # of the last block (linear in depth); default: the preset's

    def __post_init__(self) -> None:
        check_choice("preset", self.preset, PRESETS)
        for name in ("dropout", "drop_connect"):
            check_optional_number(name, getattr(self, name), low=0.0, high=1.0, high_open=True)


@register_space
class BigNASSpace(WeightSharingSpace[BigNASArch]):
    """Elastic MobileNetV3-like children of one supernet (BigNAS, Yu et al. 2020).

    Elastic per child: input resolution, stem width, per stage width and depth, per block
    depthwise kernel size and expansion ratio, and the width of the last 1x1 conv.

    Args:
        preset: ``"tiny"`` (8x8 digits on a CPU) or ``"imagenet"`` (the paper's space).
        dropout: Dropout before the classifier, for the biggest child in the supernet and
            for stand-alone children; default the preset's (0.1 for both).
        drop_connect: Stochastic-depth rate of the last block (linear in depth); default
            the preset's (0.1 imagenet, 0.05 tiny).

    Raises:
        ConfigError: An unknown option, or a value of the wrong type or range.
    """

    name: ClassVar[str] = "bignas"

    Settings: ClassVar[type[BigNASSettings]] = BigNASSettings

    def __init__(self, **options: Any) -> None:
        super().__init__(**options)
        settings: BigNASSettings = self.settings
        self.preset: Preset = PRESETS[settings.preset]
        self.dropout = self.preset.dropout if settings.dropout is None else settings.dropout
        self.drop_connect = (
            self.preset.drop_connect if settings.drop_connect is None else settings.drop_connect
        )

    # ------------------------------------------------------------------ architectures
    def sample(self, trial: optuna.trial.BaseTrial) -> BigNASArch:
        """Ask for every elastic choice, define-by-run.

        Parameter names: ``resolution``, ``stem``, ``s{i}_width``, ``s{i}_depth``, then
        ``s{i}_b{j}_kernel`` and ``s{i}_b{j}_expand`` for the blocks ``j < depth`` only,
        and ``head``. Evenly spaced choices are asked with ``suggest_int(low, high,
        step)``, others with ``suggest_categorical``; single choices are not asked.
        """
        p = self.preset
        resolution = suggest_choice(trial, "resolution", p.resolutions)
        stem = suggest_choice(trial, "stem", p.stems)
        stages = []
        for i, spec in enumerate(p.stages):
            width = suggest_choice(trial, f"s{i}_width", spec.widths)
            depth = suggest_choice(trial, f"s{i}_depth", spec.depths)
            kernels, expands = [], []
            for j in range(depth):
                kernels.append(suggest_choice(trial, f"s{i}_b{j}_kernel", spec.kernels))
                expands.append(suggest_choice(trial, f"s{i}_b{j}_expand", spec.expands))
            stages.append(StageArch(width, depth, tuple(kernels), tuple(expands)))
        head = suggest_choice(trial, "head", p.heads)
        arch = BigNASArch(resolution, stem, tuple(stages), head)
        # Replayed answers (e.g. from a stored trial) are untrusted like any stored value.
        self.validate(arch)
        return arch

    def skeleton_params(self) -> set[str]:
        """Names of the coarse (skeleton) parameters: resolution, widths and depths.

        BigNAS's coarse-to-fine selection first searches these, then mutates the rest
        (``s{i}_b{j}_kernel`` / ``s{i}_b{j}_expand``). Only parameters that ``sample``
        asks (more than one choice) are listed.
        """
        p = self.preset
        named = [("resolution", p.resolutions), ("stem", p.stems), ("head", p.heads)]
        for i, spec in enumerate(p.stages):
            named += [(f"s{i}_width", spec.widths), (f"s{i}_depth", spec.depths)]
        return {name for name, choices in named if len(choices) > 1}

    def encode(self, arch: BigNASArch) -> dict[str, Any]:
        self.validate(arch)
        return encode_arch(arch)

    def decode(self, data: Any) -> BigNASArch:
        return decode_arch(data, self.preset)

    def validate(self, arch: BigNASArch) -> None:
        validate_arch(arch, self.preset)

    def describe(self, arch: BigNASArch) -> str:
        self.validate(arch)
        return describe_arch(arch)

    def named_architectures(self) -> Mapping[str, BigNASArch]:
        """``bignas-s``, ``-m``, ``-l``, ``-xl`` in the ``imagenet`` preset: children at
        the published BigNASModels' sizes (see ``search_spaces.bignas.published``)."""
        if self.preset.name != "imagenet":
            return {}
        return {name: decode_arch(data, self.preset) for name, data in PUBLISHED_CHILDREN.items()}

    def largest(self) -> BigNASArch:
        return extreme_arch(self.preset, max)

    def smallest(self) -> BigNASArch:
        return extreme_arch(self.preset, min)

    # ------------------------------------------------------------------ networks
    def build_network(self, arch: BigNASArch, data: DataSpec) -> nn.Module:
        """A freshly initialised static child with the space's dropout and drop-connect."""
        self.validate(arch)
        data = check_data_spec(data)
        return build_network(
            arch,
            self.preset,
            data.in_channels,
            data.num_classes,
            dropout=self.dropout,
            drop_connect=self.drop_connect,
        )

    def supernet(self, data: DataSpec) -> BigNASSupernet:
        """A freshly initialised supernet; the largest child is active, regularised with
        the space's dropout and drop-connect."""
        data = check_data_spec(data)
        return BigNASSupernet(
            self.preset,
            data.in_channels,
            data.num_classes,
            dropout=self.dropout,
            drop_connect=self.drop_connect,
        )

    def export_source(self, arch: BigNASArch, data: DataSpec) -> str:
        from search_spaces.bignas.codegen import export_source

        self.validate(arch)
        data = check_data_spec(data)
        return export_source(
            arch,
            self.preset,
            data.in_channels,
            data.num_classes,
            dropout=self.dropout,
            drop_connect=self.drop_connect,
        )
