"""The EvoNorm space: normalization-activation layers as computation graphs."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from functools import cached_property
from typing import TYPE_CHECKING, Any, ClassVar

from nas.core.dataspec import DataSpec, check_data_spec
from nas.core.validation import check_choice, check_number
from search_spaces import register_space
from search_spaces.base import SearchSpace
from search_spaces.evonorm.graph import (
    LEAVES,
    OP_NAMES,
    OUTPUT_OP_NAMES,
    PRIMITIVES,
    LayerGraph,
    Node,
    check_genome,
    check_layer,
    decode_graph,
    describe_graph,
    encode_graph,
    equivalence_key,
)
from search_spaces.evonorm.named import SMALLEST_GENOME, named_layers

if TYPE_CHECKING:
    import optuna
    from torch import nn

# The host networks a layer goes into, each sized for small images (8x8 digits to
# 32x32 CIFAR): stride 1, then 2, then 2.
HOSTS = ("resnet", "mobilenet")
RESNET_WIDTHS = (16, 32, 64)
MOBILENET_WIDTHS = (16, 24, 32)
MOBILENET_HEAD = 128


@dataclass(frozen=True)
class EvoNormSettings:
    """The EvoNorm space's ``model.*`` settings group."""

    nodes: int = 10  # nodes of a layer's genome (the named layers need 8)
    groups: int = 32  # channel groups of the group moments (EvoNorm-S0: 32), at most C
    host: str = "resnet"  # the network `build` makes (and `nas export` writes) around a layer

    def __post_init__(self) -> None:
        check_number("nodes", self.nodes, integer=True, low=SMALLEST_GENOME, high=64)
        check_number("groups", self.groups, integer=True, low=1)
        check_choice("host", self.host, HOSTS)


@register_space
class EvoNormSpace(SearchSpace[LayerGraph]):
    """Normalization-activation layers as computation graphs (EvoNorm, Liu et al. 2020).

    From "Evolving Normalization-Activation Layers" (NeurIPS 2020). A layer is a genome of
    ``nodes`` nodes, each a primitive (add, mul, div, max, neg, sigmoid, tanh, exp, log,
    abs, sqrt, square, and mean / variance / standard deviation over the batch, instance
    or group axes) of one or two earlier nodes or leaves (``x``, ``zero``, and per-channel
    ``gamma``, ``beta``, ``v``); the last node is the output. It replaces every
    BatchNorm+ReLU of a host network (``host``: a pre-activation ResNet or a
    MobileNetV2), which is what ``build`` returns.

    Not every genome is a usable layer: ``validate`` refuses one whose output does not
    depend on ``x`` element-wise, or that aggregates a constant, with a reason starting
    ``invalid:`` (a search records it as a rejected candidate). Genomes computing the
    same expression share an ``equivalence_key`` (a Weisfeiler-Lehman graph hash).

    Args:
        nodes: The genome's length (at least 8, which the named layers need).
        groups: Channel groups of the group moments (the most, at most this, that divide
            the channels).
        host: ``resnet`` or ``mobilenet``.

    Raises:
        ConfigError: An unknown option, or a value of the wrong type or range.
    """

    name: ClassVar[str] = "evonorm"
    Settings: ClassVar[type[EvoNormSettings]] = EvoNormSettings
    screened: ClassVar[bool] = True  # exp(exp(x)) is a member; evaluator=evonorm screens it

    # ------------------------------------------------------------------ architectures
    def sample(self, trial: optuna.trial.BaseTrial) -> LayerGraph:
        """Per node ``n<index>``: its primitive ``n<index>_op`` (an element-wise one for
        the output node), then its inputs ``n<index>_in0`` (and ``_in1``), earlier
        indices (define-by-run: a unary primitive asks one)."""
        nodes = []
        for i in range(self.settings.nodes):
            index = len(LEAVES) + i
            last = i == self.settings.nodes - 1
            ops = OUTPUT_OP_NAMES if last else OP_NAMES
            op = str(trial.suggest_categorical(f"n{index}_op", list(ops)))
            inputs = tuple(
                trial.suggest_int(f"n{index}_in{k}", 0, index - 1)
                for k in range(PRIMITIVES[op].arity if op in PRIMITIVES else 1)
            )
            nodes.append(Node(op, inputs))
        return LayerGraph(tuple(nodes))

    def suggestions(self, arch: LayerGraph) -> dict[str, Any]:
        check_genome(arch, self.settings.nodes)
        answers: dict[str, Any] = {}
        for i, node in enumerate(arch.nodes):
            index = len(LEAVES) + i
            answers[f"n{index}_op"] = node.op
            answers.update({f"n{index}_in{k}": s for k, s in enumerate(node.inputs)})
        return answers

    def encode(self, arch: LayerGraph) -> dict[str, Any]:
        check_genome(arch, self.settings.nodes)
        return encode_graph(arch)

    def decode(self, data: Any) -> LayerGraph:
        graph = decode_graph(data, self.settings.nodes)
        check_layer(graph)
        return graph

    def validate(self, arch: LayerGraph) -> None:
        check_genome(arch, self.settings.nodes)
        check_layer(arch)

    def equivalence_key(self, arch: LayerGraph) -> str:
        check_genome(arch, self.settings.nodes)
        return equivalence_key(arch)

    def describe(self, arch: LayerGraph) -> str:
        check_genome(arch, self.settings.nodes)
        name = self.name_of(arch)
        text = describe_graph(arch)
        return f"{name}: {text}" if name else text

    def name_of(self, arch: LayerGraph) -> str | None:
        """The named layer ``arch`` computes (``evonorm-s0``...), or None."""
        return self._named_keys.get(equivalence_key(arch))

    @cached_property
    def _named_keys(self) -> dict[str, str]:
        return {equivalence_key(g): name for name, g in self.named_architectures().items()}

    def named_architectures(self) -> Mapping[str, LayerGraph]:
        """BN-ReLU, GN-ReLU, EvoNorm-B0 and EvoNorm-S0 as genomes of this space."""
        return named_layers(self.settings.nodes)

    # ------------------------------------------------------------------ networks
    def build_network(self, arch: LayerGraph, data: DataSpec) -> nn.Module:
        return self.build_host(arch, data, self.settings.host)

    def build_host(self, arch: LayerGraph, data: DataSpec, host: str) -> nn.Module:
        """The network ``host`` (``resnet``, ``mobilenet``) with ``arch`` as every one of
        its normalization-activation layers."""
        from search_spaces.evonorm import hosts
        from search_spaces.evonorm.layer import GraphLayer

        self.validate(arch)
        check_choice("host", host, HOSTS)
        data = check_data_spec(data)
        groups = self.settings.groups

        def norm_act(channels: int) -> nn.Module:
            return GraphLayer(arch, channels, groups)

        if host == "resnet":
            return hosts.PreActResNet(data.in_channels, data.num_classes, RESNET_WIDTHS, norm_act)
        return hosts.MobileNetV2(
            data.in_channels, data.num_classes, MOBILENET_WIDTHS, MOBILENET_HEAD, norm_act
        )

    def export_source(self, arch: LayerGraph, data: DataSpec) -> str:
        from search_spaces.evonorm.codegen import export_source

        self.validate(arch)
        data = check_data_spec(data)
        return export_source(arch, self.settings, data, self.name_of(arch))
