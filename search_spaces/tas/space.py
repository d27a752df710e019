"""The TAS pruning space behind ``DifferentiableSpace``."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, ClassVar

from nas.core.dataspec import DataSpec, check_data_spec
from nas.core.errors import ConfigError
from nas.core.validation import check_choice
from search_spaces import register_space
from search_spaces._choices import suggest_choice
from search_spaces.base import DifferentiableSpace
from search_spaces.tas.arch import (
    TASArch,
    arch_macs,
    block_plans,
    decode_arch,
    describe_arch,
    encode_arch,
    extreme_arch,
    uniform_arch,
    validate_arch,
)
from search_spaces.tas.model import CifarResNet
from search_spaces.tas.presets import PRESETS, Preset, width_choices
from search_spaces.tas.published import published_for
from search_spaces.tas.supernet import TASSupernet

if TYPE_CHECKING:
    import optuna
    import torch


@dataclass(frozen=True)
class TASSettings:
    """The TAS space's ``model.*`` settings group."""

    preset: str = "digits"  # the ResNet to prune: resnet20/32/56/110/164 or digits

    def __post_init__(self) -> None:
        check_choice("preset", self.preset, PRESETS)


@register_space
class TASSpace(DifferentiableSpace[TASArch]):
    """Widths and depths of a pruned CIFAR ResNet (TAS, Dong & Yang 2019).

    From "Network Pruning via Transformable Architecture Search" (NeurIPS 2019).

    An architecture keeps 0.3, 0.4, ..., 1.0 of every prunable conv's channels and 1, 3,
    5, ... or all blocks of every stage. Random, TPE or evolution sample it; the TAS
    evaluator learns it by gradient (``supernet(data).arch_parameters()``).

    Args:
        preset: ``resnet20``, ``resnet32``, ``resnet56``, ``resnet110`` (basic blocks),
            ``resnet164`` (bottlenecks), or ``digits`` (ResNet-20 at half width, for the
            embedded 8x8 digits).

    Raises:
        ConfigError: An unknown option, or a value of the wrong type or range.
    """

    name: ClassVar[str] = "tas"
    Settings: ClassVar[type[TASSettings]] = TASSettings

    def __init__(self, **options: Any) -> None:
        super().__init__(**options)
        self.preset: Preset = PRESETS[self.settings.preset]

    # ------------------------------------------------------------------ architectures
    def sample(self, trial: optuna.trial.BaseTrial) -> TASArch:
        """Ask for every choice, define-by-run: ``stem``, then per stage ``s{i}_depth`` and
        each kept block's conv widths ``s{i}_b{j}_c{k}``."""
        preset = self.preset
        stem = suggest_choice(trial, "stem", width_choices(preset.stem))
        stages = []
        for i, channels in enumerate(preset.block_channels):
            depth = suggest_choice(trial, f"s{i}_depth", preset.depths)
            stages.append(
                tuple(
                    tuple(
                        suggest_choice(trial, f"s{i}_b{j}_c{k}", width_choices(c))
                        for k, c in enumerate(channels)
                    )
                    for j in range(depth)
                )
            )
        arch = TASArch(stem, tuple(stages))
        self.validate(arch)  # replayed answers are untrusted like any stored value
        return arch

    def encode(self, arch: TASArch) -> dict[str, Any]:
        self.validate(arch)
        return encode_arch(arch)

    def decode(self, data: Any) -> TASArch:
        return decode_arch(data, self.preset)

    def validate(self, arch: TASArch) -> None:
        validate_arch(arch, self.preset)

    def describe(self, arch: TASArch) -> str:
        self.validate(arch)
        return describe_arch(arch)

    def named_architectures(self) -> Mapping[str, TASArch]:
        """The unpruned network by the preset's name (``resnet56``) and the authors'
        released pruned networks of it (``tas-resnet56-c10``...)."""
        return {self.preset.name: self.largest(), **published_for(self.preset)}

    def largest(self) -> TASArch:
        return extreme_arch(self.preset, max)

    def smallest(self) -> TASArch:
        return extreme_arch(self.preset, min)

    def uniform(self, tenths: int) -> TASArch:
        """Every layer at ``tenths``/10 of its channels, every block kept (the uniform
        width-scaling baseline)."""
        return uniform_arch(self.preset, tenths)

    def macs(self, arch: TASArch, data: DataSpec) -> int:
        """Exact multiply-adds of ``arch``'s network on one image of ``data``."""
        self.validate(arch)
        data = _checked(data)
        return arch_macs(arch, data.in_channels, data.num_classes, data.image_size)

    def l1_pruned_state(
        self, teacher: Mapping[str, torch.Tensor], arch: TASArch, data: DataSpec
    ) -> dict[str, torch.Tensor]:
        """Weights of ``arch`` (all blocks kept) holding the largest-L1 filters of
        ``teacher``, the trained largest network's state dict (the L1 baseline)."""
        from search_spaces.tas.pruning import l1_pruned_state

        self.validate(arch)
        return l1_pruned_state(teacher, self.largest(), arch, _checked(data).image_size)

    # ------------------------------------------------------------------ networks
    def build_network(self, arch: TASArch, data: DataSpec) -> CifarResNet:
        self.validate(arch)
        data = _checked(data)
        blocks = [
            (plan.in_width, plan.widths, plan.stride, plan.shortcut)
            for plan in block_plans(arch, data.image_size)
        ]
        return CifarResNet(data.in_channels, data.num_classes, arch.stem, blocks)

    def supernet(self, data: DataSpec) -> TASSupernet:
        data = _checked(data)
        return TASSupernet(self.preset, data.in_channels, data.num_classes, data.image_size)

    def export_source(self, arch: TASArch, data: DataSpec) -> str:
        from search_spaces.tas.codegen import export_source

        self.validate(arch)
        data = _checked(data)
        return export_source(
            arch, self.preset.name, data.in_channels, data.num_classes, data.image_size
        )


def _checked(data: DataSpec) -> DataSpec:
    data = check_data_spec(data)
    if data.image_size % 4:
        raise ConfigError(
            f"The TAS ResNets halve the image twice, so its side must be a multiple of 4, "
            f"got {data.image_size}; resize the images (image_size=32)."
        )
    return data
