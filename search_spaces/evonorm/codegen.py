"""Standalone PyTorch source for a host network with a searched layer.

The generated file imports only torch. It holds the primitives the layer uses and the
host network's classes (both copied verbatim from :mod:`search_spaces.evonorm.ops` and
:mod:`search_spaces.evonorm.hosts`), then ``EvoNormLayer``, whose ``forward`` computes
the live nodes one per line in order, as the platform's compiled layer does, and
``build_network()``. Parameter and buffer names are the platform layer's, so its
weights load with ``strict=True``. Only validated values reach the text: primitive
names from the space's fixed table, and numbers through ``code_int``.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from nas.core.dataspec import DataSpec
from search_spaces._codegen import assemble, code_int, module_header
from search_spaces.evonorm import hosts, ops
from search_spaces.evonorm.graph import (
    LEAVES,
    PARAMETERS,
    LayerGraph,
    describe_graph,
    live_nodes,
    node_at,
)
from search_spaces.evonorm.layer import (
    arguments,
    batch_moments,
    function_of,
    reads_zero,
    used_parameters,
)

# What each exported function needs besides itself.
_NEEDS: dict[Callable[..., Any], tuple[Callable[..., Any], ...]] = {
    ops.instance_std: (ops.instance_var,),
    ops.group_mean: (ops._grouped, ops._ungrouped),
    ops.group_var: (ops._grouped, ops._ungrouped),
    ops.group_std: (ops._grouped, ops._ungrouped, ops.group_var),
}
_HOSTS = {
    "resnet": (hosts.PreActBlock, hosts.PreActResNet),
    "mobilenet": (hosts.InvertedResidual, hosts.MobileNetV2),
}


def _functions(graph: LayerGraph) -> list[Any]:
    """The primitives' functions and classes the layer's source calls, each once."""
    used: list[Any] = []
    for index in live_nodes(graph):
        if node_at(graph, index).op.startswith("batch_"):
            wanted: tuple[Any, ...] = (ops.BatchMoment,)
        else:
            function = function_of(graph, index)
            wanted = (*_NEEDS.get(function, ()), function)
            if node_at(graph, index).op.startswith("group_"):
                wanted = (ops.group_count, *wanted)
        used += [item for item in wanted if item not in used]
    return used


def _argument(graph: LayerGraph, source: int) -> str:
    if source >= len(LEAVES):
        return f"n{code_int(source)}"
    leaf = LEAVES[source]
    return f"self.{leaf}" if leaf in PARAMETERS else leaf


def _layer_lines(graph: LayerGraph, summary: str) -> list[str]:
    """The ``EvoNormLayer`` class: parameters, moment modules, one line per node."""
    init = [
        "    def __init__(self, channels: int) -> None:",
        "        super().__init__()",
        "        self.groups = group_count(channels, GROUPS)",
    ]
    if not any(node_at(graph, i).op.startswith("group_") for i in live_nodes(graph)):
        init.pop()
    initial = {"gamma": "1.0", "beta": "0.0", "v": "1.0"}
    for name in used_parameters(graph):
        init.append(
            f"        self.{name} = nn.Parameter(torch.full((1, channels, 1, 1), {initial[name]}))"
        )
    moment_words = ("mean", "var", "std")
    for index, moment in batch_moments(graph).items():
        word = moment_words[moment_words.index(moment)]
        init.append(f'        self.n{code_int(index)} = BatchMoment("{word}", channels)')
    forward = ["    def forward(self, x: torch.Tensor) -> torch.Tensor:"]
    if reads_zero(graph):
        forward.append("        zero = x.new_zeros(())")
    for index in live_nodes(graph):
        node = node_at(graph, index)
        args = [_argument(graph, source) for source in arguments(graph, index)]
        target = f"n{code_int(index)}"
        if node.op.startswith("batch_"):
            call = f"self.{target}({args[0]})"
        else:
            extra = ["self.groups"] if node.op.startswith("group_") else []
            call = f"{function_of(graph, index).__name__}({', '.join(args + extra)})"
        named = node.op.startswith("batch_") or function_of(graph, index).__name__ == node.op
        comment = "" if named else f"  # {node.op}"
        forward.append(f"        {target} = {call}{comment}")
    forward.append(f"        return n{code_int(graph.output)}")
    return [
        "class EvoNormLayer(nn.Module):",
        f'    """{summary}"""',
        "",
        *init,
        "",
        *forward,
    ]


def export_source(arch: LayerGraph, settings: Any, data: DataSpec, name: str | None) -> str:
    """Source of a module defining ``build_network()``: the host ``settings.host`` with
    the validated layer ``arch`` for every normalization-activation."""
    from search_spaces.evonorm.space import MOBILENET_HEAD, MOBILENET_WIDTHS, RESNET_WIDTHS

    size = code_int(data.image_size)
    what = name or "a searched layer"
    summary = (
        f"{settings.host} with {what} as every normalization-activation, for "
        f"{code_int(data.in_channels)}-channel {size}x{size} images, "
        f"{code_int(data.num_classes)} classes."
    )
    header = module_header(
        summary,
        "The layer (search space 'evonorm'; moments over the batch use their moving\n"
        "averages in eval mode):",
        describe_graph(arch),
        ["Generated by nas for inference and fine-tuning. Load exported weights with"],
    )
    constants = [f"EPS = {ops.EPS!r}"]
    if any(node_at(arch, i).op.startswith("group_") for i in live_nodes(arch)):
        constants.append(f"GROUPS = {code_int(settings.groups)}  # channel groups of group moments")
    layer = _layer_lines(arch, f"The normalization-activation layer: {describe_graph(arch)}.")
    inputs = f"{code_int(data.in_channels)}, {code_int(data.num_classes)}"
    if settings.host == "resnet":
        widths = ", ".join(code_int(w) for w in RESNET_WIDTHS)
        network = f"PreActResNet({inputs}, ({widths}), EvoNormLayer)"
    else:
        widths = ", ".join(code_int(w) for w in MOBILENET_WIDTHS)
        network = f"MobileNetV2({inputs}, ({widths}), {code_int(MOBILENET_HEAD)}, EvoNormLayer)"
    builder = [
        *layer,
        "",
        "",
        "def build_network() -> nn.Module:",
        f'    """{summary}"""',
        f"    return {network}",
    ]
    body = assemble(header, [*_functions(arch), *_HOSTS[settings.host]], builder)
    # The constants go right after the imports, before the functions that read them.
    imports_end = body.index("from torch import nn") + len("from torch import nn")
    return body[:imports_end] + "\n\n" + "\n".join(constants) + body[imports_end:]
