"""The NASNet cell search space (Zoph et al. 2018) behind the ``SearchSpace`` contract."""

from __future__ import annotations

from collections.abc import Mapping
from typing import TYPE_CHECKING, Any, ClassVar, cast

from nas.core.dataspec import DataSpec, check_data_spec
from search_spaces import register_space
from search_spaces.base import SearchSpace
from search_spaces.nasnet.genotype import (
    CELL_TYPES,
    COMBINERS,
    NASNET_A,
    Block,
    Cell,
    Combine,
    NASNetArch,
    decode_arch,
    describe_arch,
    encode_arch,
    unused_block_outputs,
    validate_arch,
)
from search_spaces.nasnet.model import NASNetwork
from search_spaces.nasnet.ops import OPS
from search_spaces.nasnet.plan import PRESETS, MacroConfig

if TYPE_CHECKING:
    import optuna
    import torch
    from torch import nn


@register_space
class NASNetSpace(SearchSpace[NASNetArch]):
    """NASNet cells: ``B`` blocks, each two ops on two hidden states plus a combiner.

    Args:
        preset: A published network's macro settings: ``cifar`` (NASNet-A 6 @ 768),
            ``mobile`` (4 @ 1056, 224 px) or ``large`` (6 @ 4032, 331 px); the other
            arguments given override it.
        layout: ``cifar`` (stride-1 stem), ``imagenet`` (stride-2 stem and two reduction
            stem cells) or ``auto`` (imagenet for images over 64 px).
        cells_per_stage: Normal cells per stage (N); 3N + 2 cells (+ 2 stem cells).
        init_channels: Channels per hidden state in the first stage (C); doubles at each
            reduction. At least 2 (8 for the imagenet layout).
        stem_multiplier: The stem conv's filters: ``stem_multiplier * C`` (cifar),
            ``32 * stem_multiplier`` (imagenet).
        num_blocks: Blocks per cell (B).
        skip_reduction_input: The first cell after a reduction reads the cell two before
            the reduction (NASNet-A Large) instead of the one just before it.
        auxiliary_head: Train with TF-slim's auxiliary classifier before the last reduction.
        auxiliary_weight: Weight of the auxiliary loss (``model.auxiliary_weight``).
        drop_path: ScheduledDropPath probability of the last cell at the end of training.
        dropout: Dropout before the classifier while training.

    Raises:
        ConfigError: An unknown option, or a value of the wrong type or range.
    """

    name: ClassVar[str] = "nasnet"

    Settings: ClassVar[type[MacroConfig]] = MacroConfig
    setting_presets: ClassVar[Mapping[str, Mapping[str, Any]]] = PRESETS

    def __init__(self, **options: Any) -> None:
        super().__init__(**options)
        self.config: MacroConfig = self.settings

    # ------------------------------------------------------------------ architectures
    def sample(self, trial: optuna.trial.BaseTrial) -> NASNetArch:
        """Ask for each block's inputs, ops and combiner (5 categorical parameters a block).

        Parameter names are ``{cell}_b{b}_{input1|input2|op1|op2|combine}``; block ``b``'s
        inputs are chosen from ``range(2 + b)``. The output concatenates the block outputs
        that no block reads, as in the paper.
        """
        cells = {}
        for cell_type in CELL_TYPES:
            blocks = []
            for b in range(self.config.num_blocks):
                prefix = f"{cell_type}_b{b}"
                inputs = list(range(2 + b))
                blocks.append(
                    Block(
                        input1=trial.suggest_categorical(f"{prefix}_input1", inputs),
                        input2=trial.suggest_categorical(f"{prefix}_input2", inputs),
                        op1=trial.suggest_categorical(f"{prefix}_op1", list(OPS)),
                        op2=trial.suggest_categorical(f"{prefix}_op2", list(OPS)),
                        combine=cast(
                            Combine, trial.suggest_categorical(f"{prefix}_combine", list(COMBINERS))
                        ),
                    )
                )
            cells[cell_type] = Cell(blocks=tuple(blocks), concat=unused_block_outputs(blocks))
        arch = NASNetArch(normal=cells["normal"], reduction=cells["reduction"])
        # Replayed answers (e.g. from a stored trial) are untrusted like any stored value.
        self.validate(arch)
        return arch

    def encode(self, arch: NASNetArch) -> dict[str, Any]:
        self.validate(arch)
        return encode_arch(arch)

    def decode(self, data: Any) -> NASNetArch:
        return decode_arch(data, self.config.num_blocks)

    def validate(self, arch: NASNetArch) -> None:
        validate_arch(arch, self.config.num_blocks)

    def describe(self, arch: NASNetArch) -> str:
        self.validate(arch)
        return describe_arch(arch)

    def named_architectures(self) -> Mapping[str, NASNetArch]:
        """``nasnet-a`` (TF-slim reference), when the space has its 5 blocks per cell."""
        return {"nasnet-a": NASNET_A} if self.config.num_blocks == 5 else {}

    # ------------------------------------------------------------------ networks
    def build_network(self, arch: NASNetArch, data: DataSpec) -> nn.Module:
        self.validate(arch)
        data = check_data_spec(data)
        return NASNetwork(arch, self.config, data.in_channels, data.num_classes, data.image_size)

    def export_source(self, arch: NASNetArch, data: DataSpec) -> str:
        from search_spaces.nasnet.codegen import export_source

        self.validate(arch)
        data = check_data_spec(data)
        return export_source(arch, self.config, data.in_channels, data.num_classes, data.image_size)

    def export_state_dict(self, model: nn.Module) -> dict[str, torch.Tensor]:
        """The model's weights without the auxiliary head (training only)."""
        return {
            k: v.detach() for k, v in model.state_dict().items() if not k.startswith("aux_head.")
        }
