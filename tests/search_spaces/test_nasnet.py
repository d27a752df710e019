"""NASNet search space: genotypes, validation of stored data, networks, export.

Everything runs on CPU with small networks (N=1, C=8) except the parameter-count check,
which only builds NASNet-A 6@768.
"""

from __future__ import annotations

import ast
import copy
import json
import math
from collections.abc import Callable
from pathlib import Path
from typing import Any

import optuna
import pytest
import torch

from nas.core.errors import ArchitectureError, ConfigError
from search_spaces import DataSpec, create_space, list_spaces
from search_spaces.nasnet import (
    NASNET_A,
    OPS,
    Block,
    Cell,
    NASNetArch,
    NASNetSpace,
    NASNetwork,
    ScheduledDropPath,
)
from search_spaces.nasnet.ops import UnusedCell
from search_spaces.testing import (
    DELETE,
    ExportCase,
    imported_modules,
    max_abs_differences,
    mutate,
)

optuna.logging.set_verbosity(optuna.logging.WARNING)

SMALL: dict[str, Any] = {"cells_per_stage": 1, "init_channels": 8}
GREY = DataSpec(in_channels=1, num_classes=10, image_size=8)
RGB = DataSpec(in_channels=3, num_classes=10, image_size=32)


def sample(space: NASNetSpace, seed: int) -> NASNetArch:
    study = optuna.create_study(sampler=optuna.samplers.RandomSampler(seed=seed))
    return space.sample(study.ask())


def first_sample(space: NASNetSpace, wanted: Callable[[NASNetArch], bool]) -> NASNetArch:
    """The first seed's architecture with a property (deterministic for a given Optuna)."""
    for seed in range(500):
        arch = sample(space, seed)
        if wanted(arch):
            return arch
    raise AssertionError("no sampled architecture has the property")


def has_concat_combiner(arch: NASNetArch) -> bool:
    return any(b.combine == "concat" for c in (arch.normal, arch.reduction) for b in c.blocks)


def reduction_identity_reads_input(arch: NASNetArch) -> bool:
    return any(
        (op == "identity" and src < 2)
        for b in arch.reduction.blocks
        for op, src in ((b.op1, b.input1), (b.op2, b.input2))
    )


def blk(i1: int, op1: str, i2: int, op2: str, combine: str = "add") -> Block:
    return Block(input1=i1, input2=i2, op1=op1, op2=op2, combine=combine)  # type: ignore[arg-type]


# A normal cell that never reads h_i (state 1): in the network, cells whose output only
# feeds such inputs cannot affect the logits and are replaced by UnusedCell.
IGNORES_H1 = NASNetArch(
    normal=Cell(
        blocks=(
            blk(0, "conv_3x3", 0, "identity"),
            blk(2, "sep_conv_3x3", 0, "max_pool_3x3", "concat"),
            blk(0, "conv_1x7_7x1", 3, "dil_conv_3x3"),
            blk(4, "conv_1x1", 2, "avg_pool_3x3"),
            blk(5, "max_pool_7x7", 3, "conv_1x3_3x1", "concat"),
        ),
        concat=(6,),
    ),
    reduction=Cell(
        blocks=(
            blk(1, "identity", 0, "max_pool_5x5"),
            blk(2, "sep_conv_7x7", 1, "conv_1x1"),
            blk(0, "identity", 3, "sep_conv_5x5"),
            blk(1, "avg_pool_3x3", 4, "identity"),
            blk(5, "conv_3x3", 2, "max_pool_3x3", "concat"),
        ),
        concat=(6,),
    ),
)


# ----------------------------------------------------------------------------- registry, config
def test_registered() -> None:
    assert "nasnet" in list_spaces()
    assert isinstance(create_space("nasnet"), NASNetSpace)


@pytest.mark.parametrize(
    ("options", "needle"),
    [
        ({"cell_per_stage": 2}, "Did you mean 'cells_per_stage'"),
        ({"cells_per_stage": 0}, "model.cells_per_stage"),
        ({"cells_per_stage": True}, "model.cells_per_stage"),
        ({"cells_per_stage": 2.0}, "model.cells_per_stage"),
        ({"init_channels": 1}, "model.init_channels"),
        ({"stem_multiplier": "3"}, "model.stem_multiplier"),
        ({"num_blocks": 0}, "model.num_blocks"),
        ({"auxiliary_head": "yes"}, "model.auxiliary_head"),
        ({"auxiliary_weight": -0.1}, "model.auxiliary_weight"),
        ({"drop_path": 1.0}, "model.drop_path"),
        ({"drop_path": math.nan}, "model.drop_path"),
        ({"drop_path": True}, "model.drop_path"),
        ({"preset": "medium"}, "model.preset"),
        ({"layout": "tiny"}, "model.layout"),
        ({"dropout": 1.0}, "model.dropout"),
    ],
)
def test_bad_options_raise_config_error(options: dict[str, Any], needle: str) -> None:
    with pytest.raises(ConfigError) as info:
        NASNetSpace(**options)
    assert needle in str(info.value)
    assert "\n" not in str(info.value)


# ----------------------------------------------------------------------------- NASNet-A
def test_nasnet_a_wiring_and_description() -> None:
    space = NASNetSpace()
    arch = space.named_architectures()["nasnet-a"]
    assert arch == NASNET_A
    assert space.describe(arch) == (
        "normal[b0=sep_conv_5x5(1)+sep_conv_3x3(0) b1=sep_conv_5x5(0)+sep_conv_3x3(0) "
        "b2=avg_pool_3x3(1)+identity(0) b3=avg_pool_3x3(0)+avg_pool_3x3(0) "
        "b4=sep_conv_3x3(1)+identity(1)] concat(0,2..6) | "
        "reduction[b0=sep_conv_5x5(1)+sep_conv_7x7(0) b1=max_pool_3x3(1)+sep_conv_7x7(0) "
        "b2=avg_pool_3x3(1)+sep_conv_5x5(0) b3=identity(3)+avg_pool_3x3(2) "
        "b4=sep_conv_3x3(2)+max_pool_3x3(1)] concat(3..6)"
    )
    # NASNet-A has 5 blocks per cell: it is not a member of a space with another B.
    assert NASNetSpace(num_blocks=4).named_architectures() == {}


def test_nasnet_a_cifar10_6_at_768_has_3_3m_parameters() -> None:
    space = NASNetSpace(cells_per_stage=6, init_channels=32, auxiliary_head=True)
    model = space.build(NASNET_A, RGB)
    assert isinstance(model, NASNetwork)
    assert model.classifier.in_features == 768  # "6 @ 768": penultimate layer width
    assert model.stem[0].out_channels == 96  # stem 3x3 conv with 96 filters
    exported = space.export_state_dict(model)
    count = sum(p.numel() for k, p in model.named_parameters() if k in exported)
    # Measured 3,328,234 (published: 3.3M).
    assert abs(count - 3.3e6) / 3.3e6 <= 0.02, count


# Published sizes (Zoph et al. 2018, Tables 1-2), counted by the project's counters: the
# parameters the exported network loads, and multiply-adds (half the counted FLOPs).
PUBLISHED = {
    "cifar": (DataSpec(3, 10, 32), 3.3e6, None),
    "mobile": (DataSpec(3, 1000, 224), 5.3e6, 564e6),
    "large": (DataSpec(3, 1000, 331), 88.9e6, 23.8e9),
}


@pytest.mark.parametrize("preset", list(PUBLISHED))
def test_nasnet_a_presets_have_the_published_sizes(preset: str) -> None:
    from nas.metrics import count_flops, count_parameters

    spec, params, mult_adds = PUBLISHED[preset]
    space = create_space("nasnet", preset=preset)
    model = space.build(space.named_architectures()["nasnet-a"], spec)
    counted = count_parameters(model, exclude_prefixes=("aux_head.",))
    assert abs(counted / params - 1) <= 0.01, counted
    if mult_adds is not None:
        counted_macs = count_flops(model, spec.input_shape(1)) / 2
        assert abs(counted_macs / mult_adds - 1) <= 0.02, counted_macs


def test_exported_nasnet_a_mobile_and_large_equal_the_models(tmp_path: Path) -> None:
    # Large runs at 96 px rather than its published 331: the same ImageNet layout and code
    # (the layout needs more than 64 px), a tenth of the time.
    cases = {}
    for preset, spec in (("mobile", PUBLISHED["mobile"][0]), ("large", DataSpec(3, 1000, 96))):
        space = create_space("nasnet", preset=preset)
        torch.manual_seed(0)
        model = space.build(NASNET_A, spec)
        model.train()
        with torch.no_grad():  # BN statistics away from their initial values
            model(torch.randn(2, *spec.input_shape(1)[1:]))
        model.eval()
        x = torch.randn(spec.input_shape(1))
        with torch.no_grad():
            y = model(x)
        source, weights = space.export_source(NASNET_A, spec), space.export_state_dict(model)
        cases[preset] = ExportCase(source, weights, x, y)
    differences = max_abs_differences(cases, tmp_path)
    assert max(differences.values()) <= 1e-5, differences


def test_imagenet_layout_has_the_strided_stem_and_two_stem_cells() -> None:
    from search_spaces.nasnet.plan import plan_network

    space = create_space("nasnet", preset="mobile")
    plan = plan_network(NASNET_A, space.config, 224)
    assert (plan.layout, plan.stem_channels, plan.stem_stride) == ("imagenet", 32, 2)
    assert [s.c for s in plan.cells[:3]] == [11, 22, 44]  # C/4, C/2, then C = 44
    assert [s.map_size for s in plan.cells[:3]] == [56, 28, 28]  # 224 -> 111 -> 56 -> 28
    assert plan.cells[0].raw_s0 and not any(s.raw_s0 for s in plan.cells[1:])
    assert plan.cells[-1].map_size == 7 and len(plan.cells) == 3 * 4 + 4
    # The auxiliary head reads the 14x14 cell before the last reduction (2.4M parameters).
    model = space.build(NASNET_A, DataSpec(3, 1000, 224))
    assert plan.aux_index == 2 + 4 + 1 + 4 - 1 and plan.aux_slot.map_size == 14
    aux = sum(p.numel() for n, p in model.named_parameters() if n.startswith("aux_head."))
    assert 2.3e6 < aux < 2.5e6, aux
    # auto: CIFAR-sized images keep the stride-1 stem.
    assert plan_network(NASNET_A, NASNetSpace().config, 32).layout == "cifar"
    assert plan_network(NASNET_A, NASNetSpace().config, 224).layout == "imagenet"


def test_large_reads_the_cell_two_before_each_reduction() -> None:
    from search_spaces.nasnet.plan import plan_network

    plan = plan_network(NASNET_A, create_space("nasnet", preset="large").config, 331)
    after_reductions = [2 + 6 + 1, 2 + 6 + 1 + 6 + 1]  # the first normal cell of stages 2, 3
    assert [i for i, s in enumerate(plan.cells) if s.s0_back == 3] == after_reductions
    assert all(plan.cells[i].reduction_prev for i in after_reductions)
    mobile = plan_network(NASNET_A, create_space("nasnet", preset="mobile").config, 224)
    assert {s.s0_back for s in mobile.cells} == {2}


def test_settings_given_beside_a_preset_win() -> None:
    from nas.config import compose_search

    space = create_space("nasnet", preset="mobile", cells_per_stage=2)
    assert (space.config.cells_per_stage, space.config.init_channels) == (2, 44)
    config = compose_search(["space=nasnet", "model.preset=large", "model.dropout=0.2"])
    assert (config.model.init_channels, config.model.dropout) == (168, 0.2)
    assert config.model.skip_reduction_input is True


def test_imagenet_layout_refuses_too_few_channels() -> None:
    space = NASNetSpace(layout="imagenet", cells_per_stage=1, init_channels=4)
    with pytest.raises(ConfigError, match="init_channels >= 8"):
        space.build(NASNET_A, RGB)


# ----------------------------------------------------------------------------- sampling
@pytest.mark.parametrize("seed", [0, 1, 2, 3])
def test_sampled_architectures_round_trip_and_train(seed: int) -> None:
    space = NASNetSpace(**SMALL, auxiliary_head=True)
    arch = sample(space, seed)
    space.validate(arch)
    encoded = space.encode(arch)
    assert space.decode(encoded) == arch
    assert space.decode(json.loads(json.dumps(encoded))) == arch
    for cell in (arch.normal, arch.reduction):
        read = {i for b in cell.blocks for i in (b.input1, b.input2)}
        assert cell.concat == tuple(i for i in range(2, 7) if i not in read)
    assert "\n" not in space.describe(arch)

    for data in (GREY, RGB):
        check_forward_backward(space, arch, data)


@pytest.mark.parametrize("aux", [False, True])
def test_network_with_unreachable_cells_trains(aux: bool) -> None:
    check_forward_backward(NASNetSpace(**SMALL, auxiliary_head=aux), IGNORES_H1, GREY)


def check_forward_backward(space: NASNetSpace, arch: NASNetArch, data: DataSpec) -> None:
    """Eval forward gives finite logits; a train step reaches every parameter."""
    shape = (2, data.in_channels, data.image_size, data.image_size)
    model = space.build(arch, data)
    assert isinstance(model, NASNetwork)
    model.eval()
    with torch.no_grad():
        out = model(torch.randn(shape))
    assert out.shape == (2, data.num_classes)
    assert torch.isfinite(out).all()

    model.train()
    loss = model(torch.randn(shape)).square().mean()
    if space.config.auxiliary_head:
        assert model.aux_logits is not None
        loss = loss + model.aux_logits.square().mean()
    loss.backward()
    # Cells and cell inputs that cannot reach the logits (or the auxiliary head) are not
    # built (UnusedCell, no preprocessing), and validation requires every block output to
    # be read or concatenated, so every parameter lies on a path to the loss.
    missing = [n for n, p in model.named_parameters() if p.grad is None]
    assert not missing, missing
    assert all(torch.isfinite(p.grad).all() for p in model.parameters() if p.grad is not None)


def test_sample_asks_only_stable_categorical_parameters() -> None:
    space = NASNetSpace(num_blocks=3)
    study = optuna.create_study(sampler=optuna.samplers.RandomSampler(seed=7))
    trial = study.ask()
    arch = space.sample(trial)
    assert all(
        isinstance(d, optuna.distributions.CategoricalDistribution)
        for d in trial.distributions.values()
    )
    expected = {
        f"{cell}_b{b}_{field}"
        for cell in ("normal", "reduction")
        for b in range(3)
        for field in ("input1", "input2", "op1", "op2", "combine")
    }
    assert set(trial.params) == expected
    categorical = optuna.distributions.CategoricalDistribution
    assert trial.distributions["reduction_b2_input1"] == categorical([0, 1, 2, 3])
    assert trial.distributions["normal_b0_op2"] == categorical(list(OPS))
    # The same answers always give the same architecture (replay of a stored trial).
    assert space.sample(optuna.trial.FixedTrial(trial.params)) == arch


# ----------------------------------------------------------------------------- untrusted input
_B0 = ("normal", "blocks", 0)

MALFORMED: list[tuple[str, Callable[[dict[str, Any]], Any], str]] = [
    ("none", lambda d: None, "architecture"),
    ("list", lambda d: [d], "architecture"),
    ("string", lambda d: json.dumps(d), "architecture"),
    ("empty-dict", lambda d: {}, "'normal'"),
    ("missing-cell", mutate(("reduction",), DELETE), "'reduction'"),
    ("extra-key", mutate(("version",), 2), "'version'"),
    ("non-string-key", mutate((1,), 2), "architecture"),
    ("cell-not-dict", mutate(("normal",), [1, 2]), "normal"),
    ("blocks-string", mutate(("normal", "blocks"), "b0b1b2b3b4"), "normal.blocks"),
    (
        "too-few-blocks",
        lambda d: mutate(("normal", "blocks"), d["normal"]["blocks"][:4])(d),
        "normal.blocks",
    ),
    ("huge-block-list", mutate(("reduction", "blocks"), [{}] * 100_000), "reduction.blocks"),
    ("block-not-dict", mutate(_B0, 7), "normal.blocks[0]"),
    ("block-missing-key", mutate((*_B0, "combine"), DELETE), "normal.blocks[0]"),
    ("block-extra-key", mutate((*_B0, "op3"), "identity"), "normal.blocks[0]"),
    ("input-bool", mutate((*_B0, "input1"), True), "normal.blocks[0].input1"),
    ("input-negative", mutate((*_B0, "input2"), -1), "normal.blocks[0].input2"),
    ("input-forward-ref", mutate((*_B0, "input1"), 2), "normal.blocks[0].input1"),
    (
        "input-float",
        mutate(("reduction", "blocks", 3, "input2"), 1.0),
        "reduction.blocks[3].input2",
    ),
    ("input-string", mutate((*_B0, "input1"), "1"), "normal.blocks[0].input1"),
    ("input-huge", mutate((*_B0, "input1"), 10**100), "normal.blocks[0].input1"),
    ("op-unknown", mutate((*_B0, "op1"), "sep_conv_9x9"), "normal.blocks[0].op1"),
    ("op-none", mutate((*_B0, "op2"), None), "normal.blocks[0].op2"),
    ("op-code", mutate((*_B0, "op2"), "__import__('os').system('x')"), "normal.blocks[0].op2"),
    ("op-huge", mutate((*_B0, "op1"), "x" * 1_000_000), "normal.blocks[0].op1"),
    ("combine-unknown", mutate((*_B0, "combine"), "mul"), "normal.blocks[0].combine"),
    ("concat-empty", mutate(("normal", "concat"), []), "normal.concat"),
    ("concat-duplicate", mutate(("normal", "concat"), [0, 2, 2, 3, 4, 5, 6]), "normal.concat"),
    ("concat-unsorted", mutate(("normal", "concat"), [6, 5, 4, 3, 2, 0]), "normal.concat"),
    ("concat-out-of-range", mutate(("normal", "concat"), [2, 3, 4, 5, 6, 7]), "normal.concat"),
    ("concat-string", mutate(("normal", "concat"), "023456"), "normal.concat"),
    ("concat-bool", mutate(("normal", "concat"), [True, 2, 3, 4, 5, 6]), "normal.concat"),
    ("concat-huge", mutate(("normal", "concat"), list(range(100_000))), "normal.concat"),
    (
        "reduction-concat-input",
        mutate(("reduction", "concat"), [0, 3, 4, 5, 6]),
        "reduction.concat",
    ),
    ("dead-block", mutate(("normal", "concat"), [0, 2, 3, 4, 5]), "normal.concat"),
]


@pytest.mark.parametrize(
    ("mutate", "field"), [(m, f) for _, m, f in MALFORMED], ids=[name for name, _, _ in MALFORMED]
)
def test_decode_rejects_malformed_input(
    mutate: Callable[[dict[str, Any]], Any], field: str
) -> None:
    space = NASNetSpace()
    data = mutate(copy.deepcopy(space.encode(NASNET_A)))
    with pytest.raises(ArchitectureError) as info:
        space.decode(data)
    message = str(info.value)
    assert field in message
    assert "\n" not in message
    assert len(message) < 600  # untrusted values are quoted truncated


def test_validate_rejects_hand_built_values() -> None:
    space = NASNetSpace()
    bad_block = NASNetArch(
        normal=Cell(
            blocks=(blk(True, "identity", 0, "identity"), *NASNET_A.normal.blocks[1:]),
            concat=NASNET_A.normal.concat,
        ),
        reduction=NASNET_A.reduction,
    )
    for arch in (None, "nasnet-a", bad_block):
        with pytest.raises(ArchitectureError):
            space.validate(arch)  # type: ignore[arg-type]
        with pytest.raises(ArchitectureError):
            space.build(arch, GREY)  # type: ignore[arg-type]
    with pytest.raises(ArchitectureError, match=r"normal\.blocks"):
        NASNetSpace(num_blocks=4).decode(space.encode(NASNET_A))


# ----------------------------------------------------------------------------- training-only parts
def test_auxiliary_head() -> None:
    space = NASNetSpace(**SMALL, auxiliary_head=True, auxiliary_weight=0.4)
    model = space.build(NASNET_A, RGB)
    assert isinstance(model, NASNetwork)
    assert model.auxiliary_weight == 0.4
    model.train()
    model(torch.randn(3, 3, 32, 32))
    assert model.aux_logits is not None and model.aux_logits.shape == (3, 10)
    model.eval()
    model(torch.randn(3, 3, 32, 32))
    assert model.aux_logits is None
    assert not any(k.startswith("aux_head.") for k in space.export_state_dict(model))
    assert any(k.startswith("aux_head.") for k in model.state_dict())

    plain = NASNetSpace(**SMALL).build(NASNET_A, GREY).train()
    plain(torch.randn(2, 1, 8, 8))
    assert plain.aux_logits is None


def test_drop_path_acts_in_training_only() -> None:
    space = NASNetSpace(**SMALL, drop_path=0.6)
    model = space.build(NASNET_A, GREY)
    assert isinstance(model, NASNetwork)
    x = torch.randn(4, 1, 8, 8)
    torch.manual_seed(0)
    model.train()
    model.set_training_progress(0.0)
    assert torch.equal(model(x), model(x))
    model.set_training_progress(1.0)
    n = len(model.cells)
    probs = [c.drop_path.drop_prob for c in model.cells]  # type: ignore[union-attr]
    assert probs == pytest.approx([0.6 * (i + 1) / n for i in range(n)])
    assert not torch.equal(model(x), model(x))
    model.eval()
    assert torch.equal(model(x), model(x))
    with pytest.raises(ValueError):
        model.set_training_progress(1.5)


def test_scheduled_drop_path_keeps_expected_value() -> None:
    torch.manual_seed(0)
    drop = ScheduledDropPath()
    drop.drop_prob = 0.3
    x = torch.full((20_000, 3, 2, 2), 2.0)
    y = drop.train()(x)
    assert y.mean().item() == pytest.approx(2.0, abs=0.05)  # 5 standard errors
    dropped = (y.flatten(1) == 0).all(dim=1).float().mean().item()
    assert dropped == pytest.approx(0.3, abs=0.02)  # whole samples are dropped
    assert torch.equal(drop.eval()(x), x)


# ----------------------------------------------------------------------------- export
def test_unreachable_cells_are_not_built() -> None:
    space = NASNetSpace(**SMALL)
    model = space.build(space.decode(space.encode(IGNORES_H1)), GREY)
    assert isinstance(model, NASNetwork)
    # N=1: cells n0 r1 n2 r3 n4; the normal cell reads only h_{i-1}, so r3 and then r1
    # feed nothing that is read.
    unused = [i for i, c in enumerate(model.cells) if isinstance(c, UnusedCell)]
    assert unused == [1, 3]


def _reduction_reading_h0_with(space: NASNetSpace, pools: bool) -> NASNetArch:
    """A sampled architecture whose reduction cell reads h_{i-1} through convolutions
    only (the first stem cell then takes it unprocessed), or through a pool."""
    from search_spaces.nasnet.ops import CHANNEL_MAPPING_OPS

    def wanted(arch: NASNetArch) -> bool:
        ops = arch.reduction.ops_reading(0)
        convs = bool(ops) and all(op in CHANNEL_MAPPING_OPS for op in ops)
        return 0 not in arch.reduction.concat and (convs != pools) and bool(ops)

    return first_sample(space, wanted)


def test_imagenet_layout_exports_equal_the_model(tmp_path: Path) -> None:
    space = NASNetSpace(layout="imagenet", cells_per_stage=1, init_channels=8)
    large = NASNetSpace(
        layout="imagenet",
        cells_per_stage=1,
        init_channels=8,
        skip_reduction_input=True,
        dropout=0.5,
        auxiliary_head=True,
    )
    data = DataSpec(3, 10, 67)  # odd sizes all the way down
    cases = {
        "nasnet_a": (space, NASNET_A),
        "skip_input": (large, NASNET_A),
        "raw_convs": (space, _reduction_reading_h0_with(space, pools=False)),
        "pool_on_h0": (space, _reduction_reading_h0_with(space, pools=True)),
    }
    from search_spaces.nasnet.plan import plan_network

    raw = {
        name: plan_network(arch, o.config, 67).cells[0].raw_s0 for name, (o, arch) in cases.items()
    }
    assert raw == {"nasnet_a": True, "skip_input": True, "raw_convs": True, "pool_on_h0": False}
    torch.manual_seed(0)
    exports = {}
    for name, (owner, arch) in cases.items():
        model = owner.build(arch, data)
        model.train()
        with torch.no_grad():
            model(torch.randn(4, 3, 67, 67))
        model.eval()
        x = torch.randn(2, 3, 67, 67)
        with torch.no_grad():
            y = model(x)
        exports[name] = ExportCase(
            owner.export_source(arch, data), owner.export_state_dict(model), x, y
        )
    diffs = max_abs_differences(exports, tmp_path)
    assert max(diffs.values()) <= 1e-5, diffs


def test_export_round_trip_in_fresh_interpreter(tmp_path: Path) -> None:
    # Aux head and drop path switched on: the export must leave both out.
    space = NASNetSpace(**SMALL, auxiliary_head=True, drop_path=0.3)
    archs = {
        "nasnet_a": (NASNET_A, RGB),
        "concat_combiner": (first_sample(space, has_concat_combiner), GREY),
        "reduction_identity": (first_sample(space, reduction_identity_reads_input), RGB),
        "ignores_h1": (IGNORES_H1, GREY),
    }
    torch.manual_seed(0)
    exports: dict[str, ExportCase] = {}
    for name, (arch, data) in archs.items():
        model = space.build(arch, data)
        assert isinstance(model, NASNetwork)
        model.train()
        model.set_training_progress(0.5)
        with torch.no_grad():  # move BN running statistics away from their initial values
            for _ in range(2):
                model(3 * torch.randn(4, data.in_channels, data.image_size, data.image_size))
        model.eval()
        x = torch.randn(2, data.in_channels, data.image_size, data.image_size)
        with torch.no_grad():
            y = model(x)

        source = space.export_source(arch, data)
        assert imported_modules(source) == {"__future__", "torch"}
        docstring = ast.get_docstring(ast.parse(source)) or ""
        assert space.describe(arch) in " ".join(docstring.split())  # wrapped at spaces
        assert "aux_head" not in source and "ScheduledDropPath" not in source
        assert "b0 = " in source and "def build_network() -> nn.Module:" in source
        exports[name] = ExportCase(source, space.export_state_dict(model), x, y)

    diffs = max_abs_differences(exports, tmp_path)
    assert set(diffs) == set(archs)
    assert max(diffs.values()) <= 1e-5, diffs
