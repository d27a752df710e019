"""An EvoNorm layer as a computation graph: the genome, its checks, its canonical hash.

A layer is a fixed-length list of nodes after five leaves: the input ``x``, the
constant ``zero``, and the per-channel parameters ``gamma`` (initially 1), ``beta``
(initially 0) and ``v`` (initially 1). Node ``i`` (index ``5 + i``) applies one primitive
to one or two earlier indices; the last node is the layer's output. Nodes the output
does not reach are dead: they change nothing and are dropped (:func:`live_nodes`).

The graph is a networkx ``DiGraph`` (:func:`to_networkx`): after merging nodes that
compute the same thing, its Weisfeiler-Lehman hash is the same for every genome
computing the same expression (:func:`equivalence_key`), so a search trains an
equivalent layer once.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from nas.core.errors import ArchitectureError

if TYPE_CHECKING:
    import networkx as nx

LEAVES = ("x", "zero", "gamma", "beta", "v")
PARAMETERS = ("gamma", "beta", "v")
AXES_ALL = frozenset("bchw")
_LEAF_AXES = {"x": AXES_ALL, "zero": frozenset(), **{p: frozenset("c") for p in PARAMETERS}}


@dataclass(frozen=True)
class Primitive:
    """One operation of the space.

    ``reduces``: the axes an aggregation reduces (``None``: element-wise);
    ``positive``: whether its value is positive whatever its inputs;
    ``symbol``: an infix operator for the readable form.
    """

    name: str
    arity: int
    commutative: bool = False
    reduces: frozenset[str] | None = None
    positive: bool = False
    symbol: str | None = None


def _moments(axis: str, reduces: str) -> list[Primitive]:
    return [
        Primitive(f"{axis}_mean", 1, reduces=frozenset(reduces)),
        Primitive(f"{axis}_var", 1, reduces=frozenset(reduces)),
        Primitive(f"{axis}_std", 1, reduces=frozenset(reduces), positive=True),
    ]


PRIMITIVES: dict[str, Primitive] = {
    p.name: p
    for p in [
        Primitive("add", 2, commutative=True, symbol="+"),
        Primitive("mul", 2, commutative=True, symbol="*"),
        Primitive("div", 2, symbol="/"),
        Primitive("max", 2, commutative=True),
        Primitive("neg", 1),
        Primitive("sigmoid", 1, positive=True),
        Primitive("tanh", 1),
        Primitive("exp", 1, positive=True),
        Primitive("log", 1),
        Primitive("abs", 1),
        Primitive("sqrt", 1, positive=True),
        Primitive("square", 1),
        *_moments("batch", "bhw"),
        *_moments("instance", "hw"),
        *_moments("group", "chw"),  # within a group of channels: the output is per channel
    ]
}
OP_NAMES = tuple(PRIMITIVES)
# The output node's choices: an aggregation's value is constant along height and width,
# so a layer ending in one could never transform x element by element.
OUTPUT_OP_NAMES = tuple(name for name, p in PRIMITIVES.items() if p.reduces is None)


@dataclass(frozen=True)
class Node:
    op: str
    inputs: tuple[int, ...]


@dataclass(frozen=True)
class LayerGraph:
    """A layer's genome: ``nodes[i]`` has index ``len(LEAVES) + i``; the last is the output."""

    nodes: tuple[Node, ...]

    @property
    def output(self) -> int:
        return len(LEAVES) + len(self.nodes) - 1


def check_genome(graph: LayerGraph, length: int) -> None:
    """Raise ``ArchitectureError`` unless ``graph`` is a well-formed genome of ``length``
    nodes: known primitives, each with its number of inputs, each input an earlier index
    (so the graph is acyclic by construction)."""
    if not isinstance(graph, LayerGraph) or not isinstance(graph.nodes, tuple):
        raise ArchitectureError(f"An EvoNorm layer must be a LayerGraph, got {graph!r}.")
    if len(graph.nodes) != length:
        raise ArchitectureError(
            f"An EvoNorm layer of this space has {length} nodes, got {len(graph.nodes)}; "
            "set model.nodes to the genome's length."
        )
    for i, node in enumerate(graph.nodes):
        index = len(LEAVES) + i
        primitive = PRIMITIVES.get(node.op) if isinstance(node.op, str) else None
        if primitive is None:
            raise ArchitectureError(f"Node {index} has an unknown primitive {node.op!r}.")
        if index == graph.output and primitive.reduces is not None:
            raise ArchitectureError(
                f"The output node {index} must be element-wise, got the aggregation {node.op}."
            )
        inputs = node.inputs
        if not isinstance(inputs, tuple) or len(inputs) != primitive.arity:
            raise ArchitectureError(
                f"Node {index} ({node.op}) takes {primitive.arity} input(s), got {inputs!r}."
            )
        for source in inputs:
            if type(source) is not int or not 0 <= source < index:
                raise ArchitectureError(
                    f"Node {index} ({node.op}) reads {source!r}; inputs are earlier indices "
                    f"0..{index - 1}."
                )


def live_nodes(graph: LayerGraph) -> list[int]:
    """Indices of the nodes the output depends on (itself included), in order."""
    needed = {graph.output}
    for index in range(graph.output, len(LEAVES) - 1, -1):
        if index in needed:
            needed.update(graph.nodes[index - len(LEAVES)].inputs)
    return sorted(i for i in needed if i >= len(LEAVES))


def node_at(graph: LayerGraph, index: int) -> Node:
    return graph.nodes[index - len(LEAVES)]


def axes(graph: LayerGraph) -> dict[int, frozenset[str]]:
    """The axes each live node varies along (``b``atch, ``c``hannel, ``h``, ``w``)."""
    shapes = {i: _LEAF_AXES[leaf] for i, leaf in enumerate(LEAVES)}
    for index in live_nodes(graph):
        node = node_at(graph, index)
        primitive = PRIMITIVES[node.op]
        joined = frozenset().union(*(shapes[source] for source in node.inputs))
        if primitive.reduces is not None:
            joined = (joined - primitive.reduces) | ({"c"} & joined)
        shapes[index] = joined
    return shapes


def check_layer(graph: LayerGraph) -> None:
    """Raise ``ArchitectureError`` (``invalid: ...``) unless the layer is usable: its
    output varies along every axis of the input (it depends on ``x`` element-wise), and
    no aggregation reads a value without channels (a constant)."""
    shapes = axes(graph)
    for index in live_nodes(graph):
        node = node_at(graph, index)
        if PRIMITIVES[node.op].reduces is not None and "c" not in shapes[node.inputs[0]]:
            raise ArchitectureError(
                f"invalid: node {index} ({node.op}) aggregates a constant, which has no "
                "channels to normalize."
            )
    missing = AXES_ALL - shapes[graph.output]
    if missing:
        raise ArchitectureError(
            f"invalid: the output is constant along {', '.join(sorted(missing))}; a layer "
            "must transform x element by element."
        )


def positive(graph: LayerGraph, index: int) -> bool:
    """Whether node ``index`` is positive whatever the input (so a division by it needs
    no guard): a positive primitive, a max with a positive side, or a sum or product of
    positive values."""
    if index < len(LEAVES):
        return False
    node = node_at(graph, index)
    if PRIMITIVES[node.op].positive:
        return True
    sides = [positive(graph, source) for source in node.inputs]
    if node.op == "max":
        return any(sides)
    return node.op in ("add", "mul") and all(sides)


# --------------------------------------------------------------------- canonical form
def _merged(graph: LayerGraph) -> tuple[dict[int, int], dict[int, tuple[str, tuple[int, ...]]]]:
    """Live nodes that compute the same thing merged (common subexpressions): each
    index -> its representative, and each representative -> (label, its inputs)."""
    representative = {i: i for i in range(len(LEAVES))}
    labels: dict[int, tuple[str, tuple[int, ...]]] = {i: (LEAVES[i], ()) for i in representative}
    seen: dict[tuple[str, tuple[int, ...]], int] = {}
    for index in live_nodes(graph):
        node = node_at(graph, index)
        inputs = tuple(representative[s] for s in node.inputs)
        if PRIMITIVES[node.op].commutative:
            inputs = tuple(sorted(inputs))
        key = (node.op, inputs)
        if key not in seen:
            seen[key] = index
            labels[index] = key
        representative[index] = seen[key]
    return representative, labels


def to_networkx(graph: LayerGraph) -> nx.DiGraph:
    """The live graph after merging equal subexpressions: an edge from each node to each
    of its inputs, labelled by argument position (``*`` for a commutative primitive's;
    repeated when both arguments are one node)."""
    import networkx as nx

    representative, labels = _merged(graph)
    reached = {representative[graph.output]}
    stack = list(reached)
    while stack:
        for source in labels[stack.pop()][1]:
            if source not in reached:
                reached.add(source)
                stack.append(source)
    digraph = nx.DiGraph()
    for index in sorted(reached):
        label, inputs = labels[index]
        digraph.add_node(index, label=label)
        commutative = label in PRIMITIVES and PRIMITIVES[label].commutative
        for position, source in enumerate(inputs):
            mark = "*" if commutative else str(position)
            if digraph.has_edge(index, source):
                mark = digraph.edges[index, source]["arg"] + mark
            digraph.add_edge(index, source, arg=mark)
    return digraph


def equivalence_key(graph: LayerGraph) -> str:
    """A Weisfeiler-Lehman hash (networkx) equal for genomes that compute the same
    expression: dead nodes, node order, repeated subexpressions and the order of a
    commutative primitive's arguments do not change it. With edges pointing to the
    inputs, a node's label after ``k`` rounds summarises its expression ``k`` deep, so
    as many rounds as nodes cover the whole layer."""
    import warnings

    import networkx as nx

    digraph = to_networkx(graph)
    rounds = digraph.number_of_nodes() + 1
    with warnings.catch_warnings():  # networkx 3.5 says its directed hashes changed
        warnings.simplefilter("ignore", UserWarning)
        hashed = nx.weisfeiler_lehman_graph_hash(
            digraph, node_attr="label", edge_attr="arg", iterations=rounds, digest_size=16
        )
    return "wl:" + hashed


# --------------------------------------------------------------------- readable form
_PRECEDENCE = {"+": 1, "*": 2, "/": 2}


def describe_graph(graph: LayerGraph) -> str:
    """The layer's expression, e.g. ``x * sigmoid(v * x) / group_std(x) * gamma + beta``."""
    text: dict[int, tuple[str, int]] = {i: (leaf, 9) for i, leaf in enumerate(LEAVES)}
    for index in live_nodes(graph):
        node = node_at(graph, index)
        primitive = PRIMITIVES[node.op]
        args = [text[s] for s in node.inputs]
        if primitive.symbol is not None:
            level = _PRECEDENCE[primitive.symbol]
            left = args[0][0] if args[0][1] >= level else f"({args[0][0]})"
            # The right side of / (and of a tie) binds tighter: a / (b * c), a + (b + c)
            # stay as written only with parentheses when not strictly tighter.
            tighter = args[1][1] > level or (args[1][1] == level and primitive.symbol != "/")
            right = args[1][0] if tighter else f"({args[1][0]})"
            text[index] = (f"{left} {primitive.symbol} {right}", level)
        elif node.op == "neg":
            inner = args[0][0] if args[0][1] >= 3 else f"({args[0][0]})"
            text[index] = (f"-{inner}", 3)
        else:
            text[index] = (f"{node.op}({', '.join(a[0] for a in args)})", 9)
    return text[graph.output][0]


# --------------------------------------------------------------------- encoding
def encode_graph(graph: LayerGraph) -> dict[str, Any]:
    return {"nodes": [[node.op, *node.inputs] for node in graph.nodes]}


def decode_graph(data: Any, length: int) -> LayerGraph:
    """Parse an untrusted encoding; ``ArchitectureError`` on anything malformed."""
    if not isinstance(data, Mapping) or set(data) != {"nodes"}:
        raise ArchitectureError("An encoded EvoNorm layer is a mapping with only 'nodes'.")
    raw = data["nodes"]
    if not isinstance(raw, Sequence) or isinstance(raw, (str, bytes)):
        raise ArchitectureError("'nodes' must be a list of [primitive, input, ...] lists.")
    nodes = []
    for item in raw:
        if not isinstance(item, Sequence) or isinstance(item, (str, bytes)) or not item:
            raise ArchitectureError(f"A node must be [primitive, input, ...], got {item!r}.")
        nodes.append(Node(item[0], tuple(item[1:])))
    graph = LayerGraph(tuple(nodes))
    check_genome(graph, length)
    return graph


def padded(nodes: Sequence[tuple[str, Sequence[int]]], length: int) -> LayerGraph:
    """A genome of ``length`` nodes whose last nodes are ``nodes`` (written with indices
    counted from the first of them, after the leaves), preceded by dead filler nodes."""
    filler = length - len(nodes)
    if filler < 0:
        raise ArchitectureError(f"{len(nodes)} nodes do not fit a genome of {length}.")
    shift = lambda i: i if i < len(LEAVES) else i + filler  # noqa: E731
    return LayerGraph(
        tuple(Node("abs", (0,)) for _ in range(filler))
        + tuple(Node(op, tuple(shift(i) for i in inputs)) for op, inputs in nodes)
    )
