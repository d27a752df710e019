"""The EvoNorm space: named layers equal their formulas, invalid graphs are refused with
a reason, equivalent graphs share a key, the contract suite, and exports."""

from __future__ import annotations

from pathlib import Path

import optuna
import pytest
import torch

from nas.core.dataspec import DataSpec
from nas.core.errors import ArchitectureError, ConfigError
from search_spaces.contract import check_space
from search_spaces.evonorm.graph import LayerGraph, Node, padded
from search_spaces.evonorm.layer import GraphLayer
from search_spaces.evonorm.named import FORMULAS, NAMES
from search_spaces.evonorm.space import EvoNormSpace
from search_spaces.testing import ExportCase, max_abs_differences

SPEC = DataSpec(in_channels=1, num_classes=10, image_size=8)
# Leaves: 0 x, 1 zero, 2 gamma, 3 beta, 4 v; nodes from 5.
X, ZERO, GAMMA, BETA, V = range(5)


@pytest.fixture(scope="module")
def space() -> EvoNormSpace:
    return EvoNormSpace(groups=8)


def _same_parameters(graph_layer: torch.nn.Module, formula: torch.nn.Module) -> None:
    """Give the formula module the graph layer's (random) gamma, beta and v."""
    with torch.no_grad():
        for name, parameter in graph_layer.named_parameters():
            parameter.copy_(torch.randn_like(parameter))
            if isinstance(formula, torch.nn.Sequential):  # BN / GN: weight and bias
                norm = formula[0]
                target = {"gamma": norm.weight, "beta": norm.bias}[name]
                target.copy_(parameter.flatten())
            else:
                getattr(formula, name).copy_(parameter)


@pytest.mark.parametrize("name", NAMES)
def test_named_layers_equal_their_formulas_in_training_and_inference(
    space: EvoNormSpace, name: str
) -> None:
    torch.manual_seed(0)
    graph = space.named_architectures()[name]
    layer, formula = GraphLayer(graph, 32, 8), FORMULAS[name](32, 8)
    # The same sizes: 2C parameters for BN/GN-ReLU, 3C for EvoNorm; C per moving average.
    sizes = [
        (sum(p.numel() for p in m.parameters()), sum(b.numel() for b in m.buffers() if b.dim()))
        for m in (layer, formula)
    ]
    assert sizes[0] == sizes[1]
    _same_parameters(layer, formula)
    for _ in range(3):  # training mode: batch statistics, moving averages updated
        x = 3 * torch.randn(16, 32, 6, 6) + 1
        assert (layer(x) - formula(x)).abs().max().item() <= 1e-5
    layer.eval(), formula.eval()  # inference: the moving averages
    x = 3 * torch.randn(4, 32, 6, 6) - 1
    assert (layer(x) - formula(x)).abs().max().item() <= 1e-5
    # A backward pass reaches every parameter of the graph layer.
    layer.train()
    layer(x).square().mean().backward()
    assert all(p.grad is not None and torch.isfinite(p.grad).all() for p in layer.parameters())


def test_named_layers_describe_themselves_by_name(space: EvoNormSpace) -> None:
    s0 = space.named_architectures()["evonorm-s0"]
    assert space.describe(s0) == "evonorm-s0: x * sigmoid(v * x) / group_std(x) * gamma + beta"
    b0 = space.describe(space.named_architectures()["evonorm-b0"])
    assert b0 == "evonorm-b0: x / max(batch_std(x), v * x + instance_std(x)) * gamma + beta"


@pytest.mark.parametrize(
    ("nodes", "reason"),
    [
        ([("batch_mean", (X,)), ("mul", (5, GAMMA))], "constant along b, h, w"),
        ([("instance_std", (X,)), ("mul", (5, GAMMA))], "constant along h, w"),
        ([("add", (GAMMA, BETA)), ("mul", (5, V))], "constant along b, h, w"),
        ([("exp", (ZERO,)), ("group_var", (5,)), ("add", (X, 6))], "aggregates a constant"),
    ],
)
def test_invalid_graphs_are_refused_with_their_reason(
    space: EvoNormSpace, nodes: list[tuple[str, tuple[int, ...]]], reason: str
) -> None:
    graph = padded(nodes, 10)
    with pytest.raises(ArchitectureError, match=f"^invalid: .*{reason}"):
        space.validate(graph)
    with pytest.raises(ArchitectureError, match="invalid"):
        space.decode(space.encode(graph))


@pytest.mark.parametrize(
    "encoded",
    [
        {"nodes": [["softplus", 0]] * 10},  # not a primitive of the space
        {"nodes": [["add", 0]] * 10},  # a binary primitive with one input
        {"nodes": [["neg", 7]] * 10},  # an input that is not earlier
        {"nodes": [["neg", 0]] * 9},  # the wrong length
        {"nodes": [["neg", 0]] * 9 + [["batch_mean", 0]]},  # an aggregation as the output
        {"nodes": [["neg", "__import__('os')"]] * 10},
        {"nodes": [["neg", True]] * 10},
    ],
)
def test_malformed_genomes_are_refused(space: EvoNormSpace, encoded: object) -> None:
    with pytest.raises(ArchitectureError):
        space.decode(encoded)


def test_equivalent_graphs_share_a_key_and_different_ones_do_not(space: EvoNormSpace) -> None:
    s0 = space.named_architectures()["evonorm-s0"]
    key = space.equivalence_key(s0)
    reordered = padded(  # the std first, commuted arguments, another dead filler
        [
            ("square", (X,)),  # dead
            ("group_std", (X,)),  # 6
            ("mul", (X, V)),  # 7: x * v
            ("sigmoid", (7,)),  # 8
            ("mul", (8, X)),  # 9: sigmoid(v x) * x
            ("div", (9, 6)),  # 10
            ("mul", (GAMMA, 10)),  # 11
            ("add", (BETA, 11)),  # 12
        ],
        10,
    )
    duplicated = padded(  # v * x computed twice
        [
            ("mul", (V, X)),  # 5
            ("mul", (V, X)),  # 6
            ("sigmoid", (6,)),  # 7
            ("mul", (X, 7)),  # 8
            ("group_std", (X,)),  # 9
            ("div", (8, 9)),  # 10
            ("mul", (10, GAMMA)),  # 11
            ("add", (11, BETA)),  # 12
        ],
        10,
    )
    assert space.equivalence_key(reordered) == key
    assert space.equivalence_key(duplicated) == key
    assert space.describe(reordered).startswith("evonorm-s0: ")
    # Swapping a division's arguments, or another moment, is another layer.
    swapped = LayerGraph(
        tuple(Node("div", node.inputs[::-1]) if node.op == "div" else node for node in s0.nodes)
    )
    instance = LayerGraph(
        tuple(Node("instance_std", n.inputs) if n.op == "group_std" else n for n in s0.nodes)
    )
    others = {space.equivalence_key(g) for g in (swapped, instance)}
    others |= {space.equivalence_key(g) for g in space.named_architectures().values()}
    assert len(others) == 2 + len(NAMES) and key in others


def test_suggestions_replay_to_the_same_layer(space: EvoNormSpace) -> None:
    for graph in space.named_architectures().values():
        replayed = space.sample(optuna.trial.FixedTrial(space.suggestions(graph)))
        assert replayed == graph


def test_the_space_keeps_the_contract(space: EvoNormSpace, tmp_path: Path) -> None:
    ran = check_space(space, tmp_path)
    assert "export" in ran and "build" in ran


def test_settings_are_checked() -> None:
    with pytest.raises(ConfigError, match=r"model\.nodes"):
        EvoNormSpace(nodes=5)
    with pytest.raises(ConfigError, match=r"model\.host"):
        EvoNormSpace(host="vgg")


def test_exports_equal_the_platform_networks_in_a_fresh_interpreter(tmp_path: Path) -> None:
    cases = {}
    for host in ("resnet", "mobilenet"):
        space = EvoNormSpace(groups=8, host=host)
        for name, graph in space.named_architectures().items():
            torch.manual_seed(1)
            model = space.build(graph, SPEC)
            with torch.no_grad():  # move parameters and moving averages off their start
                for parameter in model.parameters():
                    parameter.add_(0.1 * torch.randn_like(parameter))
                model.train()
                for _ in range(3):
                    model(torch.randn(SPEC.input_shape(16)))
            model.eval()
            x = torch.randn(SPEC.input_shape(5))
            source = space.export_source(graph, SPEC)
            assert "import torch" in source and "search_spaces" not in source
            key = f"{host}_{name.replace('-', '_')}"
            cases[key] = ExportCase(source, space.export_state_dict(model), x, model(x).detach())
    differences = max_abs_differences(cases, tmp_path)
    assert max(differences.values()) <= 1e-5, differences


def test_the_compiled_layer_uses_cheaper_equal_functions(space: EvoNormSpace) -> None:
    """max(., zero) runs as a ReLU and a division by a standard deviation unguarded."""
    code = GraphLayer(space.named_architectures()["bn-relu"], 16, 8).program.code
    assert "relu" in code and "maximum" not in code
    assert "positive_div" in code
