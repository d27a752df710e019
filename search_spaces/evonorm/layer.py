"""A layer graph as a module: the graph compiled by ``torch.fx`` into one function.

Interpreting the graph node by node on every call would cost a Python dispatch per node
and per call; instead :func:`compile_graph` writes the live nodes once, in order, as an
``fx.Graph``, and ``fx.GraphModule`` turns it into plain Python code, as fast as a
hand-written module of the same formula (``benchmarks/evonorm.py`` measures it).
"""

from __future__ import annotations

from collections.abc import Callable

import torch
from torch import fx, nn

from search_spaces.evonorm import ops
from search_spaces.evonorm.graph import (
    LEAVES,
    PARAMETERS,
    LayerGraph,
    live_nodes,
    node_at,
    positive,
)

# The function of each element-wise primitive (aggregations are handled apart).
FUNCTIONS: dict[str, Callable[..., torch.Tensor]] = {
    "add": ops.add,
    "mul": ops.mul,
    "div": ops.div,
    "max": ops.maximum,
    "neg": ops.neg,
    "sigmoid": ops.sigmoid,
    "tanh": ops.tanh,
    "exp": ops.exp,
    "log": ops.log,
    "abs": ops.absolute,
    "sqrt": ops.sqrt,
    "square": ops.square,
    "instance_mean": ops.instance_mean,
    "instance_var": ops.instance_var,
    "instance_std": ops.instance_std,
    "group_mean": ops.group_mean,
    "group_var": ops.group_var,
    "group_std": ops.group_std,
}
_INITIAL = {"gamma": 1.0, "beta": 0.0, "v": 1.0}


def function_of(graph: LayerGraph, index: int) -> Callable[..., torch.Tensor]:
    """The function node ``index`` calls: ``div`` loses its guard where the denominator
    is positive by construction (the guard would change nothing, and costs three ops),
    and ``max`` with ``zero`` is a ReLU (see :func:`relu_input`)."""
    node = node_at(graph, index)
    if node.op == "div" and positive(graph, node.inputs[1]):
        return ops.positive_div
    if relu_input(graph, index) is not None:
        return ops.relu
    return FUNCTIONS[node.op]


def relu_input(graph: LayerGraph, index: int) -> int | None:
    """For ``max(a, zero)`` (either order) the index of ``a``, else None."""
    node = node_at(graph, index)
    zero = LEAVES.index("zero")
    if node.op != "max" or zero not in node.inputs or node.inputs == (zero, zero):
        return None
    return node.inputs[1] if node.inputs[0] == zero else node.inputs[0]


def arguments(graph: LayerGraph, index: int) -> tuple[int, ...]:
    """The indices node ``index``'s function reads (a ReLU reads one)."""
    relu = relu_input(graph, index)
    return node_at(graph, index).inputs if relu is None else (relu,)


def used_parameters(graph: LayerGraph) -> list[str]:
    """The per-channel parameters the live graph reads, in leaf order."""
    read = {s for i in live_nodes(graph) for s in node_at(graph, i).inputs}
    return [name for name in PARAMETERS if LEAVES.index(name) in read]


def reads_zero(graph: LayerGraph) -> bool:
    """Whether a function of the compiled layer reads the ``zero`` leaf."""
    return any(LEAVES.index("zero") in arguments(graph, i) for i in live_nodes(graph))


def batch_moments(graph: LayerGraph) -> dict[int, str]:
    """Live nodes that take a moment over the batch -> the moment (mean, var, std)."""
    return {
        i: node_at(graph, i).op.removeprefix("batch_")
        for i in live_nodes(graph)
        if node_at(graph, i).op.startswith("batch_")
    }


def call_moment(moment: nn.Module, a: torch.Tensor) -> torch.Tensor:
    """Node body of a moment over the batch: the layer's module, passed in as an argument
    so that the compiled function holds no state of its own."""
    result: torch.Tensor = moment(a)
    return result


class GraphLayer(nn.Module):
    """The normalization-activation layer ``graph`` for ``channels`` channels.

    Holds only what the live graph uses: the parameters it reads (``gamma``, ``beta``,
    ``v``, shaped (1, C, 1, 1)) and a :class:`ops.BatchMoment` named ``n<index>`` per
    moment over the batch (their moving averages serve inference). Exported layers
    have the same names, so their weights load with ``strict=True``. ``program`` is the
    compiled graph, a stateless function of the input and these.
    """

    def __init__(self, graph: LayerGraph, channels: int, groups: int) -> None:
        super().__init__()
        self.groups = ops.group_count(channels, groups)
        self.parameter_names = used_parameters(graph)
        self.moment_names = [f"n{index}" for index in batch_moments(graph)]
        for name in self.parameter_names:
            initial = torch.full((1, channels, 1, 1), _INITIAL[name])
            self.register_parameter(name, nn.Parameter(initial))
        for index, moment in batch_moments(graph).items():
            self.add_module(f"n{index}", ops.BatchMoment(moment, channels))
        self.program = compile_graph(graph, self.groups)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        state = [getattr(self, name) for name in (*self.parameter_names, *self.moment_names)]
        result: torch.Tensor = self.program(x, *state)
        return result


def compile_graph(graph: LayerGraph, groups: int) -> fx.GraphModule:
    """One function ``(x, *parameters, *moment modules) -> y`` computing the live nodes
    in order (parameters as :func:`used_parameters` lists them, then the moment modules
    by node index)."""
    fx_graph = fx.Graph()
    values: dict[int, fx.Node] = {0: fx_graph.placeholder("x")}
    for name in used_parameters(graph):
        values[LEAVES.index(name)] = fx_graph.placeholder(name)
    moments = {index: fx_graph.placeholder(f"n{index}") for index in batch_moments(graph)}
    if reads_zero(graph):
        values[LEAVES.index("zero")] = fx_graph.call_method("new_zeros", (values[0], ()))
    for index in live_nodes(graph):
        node = node_at(graph, index)
        args = tuple(values[source] for source in arguments(graph, index))
        if index in moments:
            values[index] = fx_graph.call_function(call_moment, (moments[index], *args))
        elif node.op.startswith("group_"):
            values[index] = fx_graph.call_function(function_of(graph, index), (*args, groups))
        else:
            values[index] = fx_graph.call_function(function_of(graph, index), args)
    fx_graph.output(values[graph.output])
    return fx.GraphModule(nn.Module(), fx_graph, class_name="LayerProgram")
