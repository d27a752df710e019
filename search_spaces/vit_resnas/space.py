"""The ViT-ResNAS multi-stage vision-transformer space behind ``WeightSharingSpace``."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, ClassVar

from nas.core.dataspec import DataSpec, check_data_spec
from nas.core.validation import check_choice, check_optional_number
from search_spaces import register_space
from search_spaces._choices import suggest_choice
from search_spaces.base import WeightSharingSpace
from search_spaces.vit_resnas.arch import (
    BlockArch,
    StageArch,
    ViTResArch,
    decode_arch,
    describe_arch,
    encode_arch,
    extreme_arch,
    validate_arch,
)
from search_spaces.vit_resnas.model import build_network
from search_spaces.vit_resnas.presets import PRESETS, Preset
from search_spaces.vit_resnas.published import PUBLISHED
from search_spaces.vit_resnas.supernet import ViTResSupernet

if TYPE_CHECKING:
    import optuna
    from torch import nn


@dataclass(frozen=True)
class ViTResNASSettings:
    """The ViT-ResNAS space's ``model.*`` settings group."""

    preset: str = "tiny"  # tiny (8x8 digits on a CPU) | imagenet (the authors' Tiny supernet)
    drop_path: float | None = None  # stochastic depth of the last block; default: the preset's

    def __post_init__(self) -> None:
        check_choice("preset", self.preset, PRESETS)
        check_optional_number("drop_path", self.drop_path, low=0.0, high=1.0, high_open=True)


@register_space
class ViTResNASSpace(WeightSharingSpace[ViTResArch]):
    """Multi-stage vision transformers, children of one supernet (ViT-ResNAS, Liao et al.,
    "Searching for Efficient Multi-Stage Vision Transformers", 2021).

    Elastic per child: each stage's embedding width; per block its attention heads and
    MLP width; whether each skippable block runs.

    Args:
        preset: ``"tiny"`` (8x8 digits on a CPU) or ``"imagenet"`` (the authors' Tiny
            supernet at 224 px).
        drop_path: Stochastic-depth rate of the last block (linear in depth), in the
            supernet and in stand-alone children; default the preset's (0.2 imagenet).

    Raises:
        ConfigError: An unknown option, or a value of the wrong type or range.
    """

    name: ClassVar[str] = "vit_resnas"
    Settings: ClassVar[type[ViTResNASSettings]] = ViTResNASSettings

    def __init__(self, **options: Any) -> None:
        super().__init__(**options)
        settings: ViTResNASSettings = self.settings
        self.preset: Preset = PRESETS[settings.preset]
        self.drop_path = self.preset.drop_path if settings.drop_path is None else settings.drop_path

    # ------------------------------------------------------------------ architectures
    def sample(self, trial: optuna.trial.BaseTrial) -> ViTResArch:
        """Ask for every elastic choice, define-by-run.

        Parameter names: ``s{i}_dim``; per block position ``s{i}_b{j}_keep`` (skippable
        positions only), then ``s{i}_b{j}_heads`` and ``s{i}_b{j}_mlp`` for the blocks
        that run.
        """
        stages = []
        for i, spec in enumerate(self.preset.stages):
            dim = suggest_choice(trial, f"s{i}_dim", spec.dims)
            blocks: list[BlockArch | None] = []
            for j in range(spec.blocks):
                if j in spec.skippable and not trial.suggest_categorical(
                    f"s{i}_b{j}_keep", [True, False]
                ):
                    blocks.append(None)
                    continue
                heads = suggest_choice(trial, f"s{i}_b{j}_heads", spec.heads)
                mlp = suggest_choice(trial, f"s{i}_b{j}_mlp", spec.mlp)
                blocks.append(BlockArch(heads, mlp))
            stages.append(StageArch(dim, tuple(blocks)))
        arch = ViTResArch(tuple(stages))
        # Replayed answers (e.g. from a stored trial) are untrusted like any stored value.
        self.validate(arch)
        return arch

    def encode(self, arch: ViTResArch) -> dict[str, Any]:
        self.validate(arch)
        return encode_arch(arch)

    def decode(self, data: Any) -> ViTResArch:
        return decode_arch(data, self.preset)

    def validate(self, arch: ViTResArch) -> None:
        validate_arch(arch, self.preset)

    def describe(self, arch: ViTResArch) -> str:
        self.validate(arch)
        return describe_arch(arch)

    def named_architectures(self) -> Mapping[str, ViTResArch]:
        """``vit-res-tiny`` (the authors' reference network) and ``vit-resnas-tiny``
        (their searched one), in the ``imagenet`` preset."""
        return dict(PUBLISHED) if self.preset.name == "imagenet" else {}

    def largest(self) -> ViTResArch:
        return extreme_arch(self.preset, max)

    def smallest(self) -> ViTResArch:
        return extreme_arch(self.preset, min)

    # ------------------------------------------------------------------ networks
    def build_network(self, arch: ViTResArch, data: DataSpec) -> nn.Module:
        self.validate(arch)
        data = check_data_spec(data)
        return build_network(arch, self.preset, data.in_channels, data.num_classes, self.drop_path)

    def supernet(self, data: DataSpec) -> ViTResSupernet:
        data = check_data_spec(data)
        return ViTResSupernet(
            self.preset, data.in_channels, data.num_classes, drop_path_rate=self.drop_path
        )

    def export_source(self, arch: ViTResArch, data: DataSpec) -> str:
        from search_spaces.vit_resnas.codegen import export_source

        self.validate(arch)
        data = check_data_spec(data)
        return export_source(arch, self.preset, data.in_channels, data.num_classes, self.drop_path)
