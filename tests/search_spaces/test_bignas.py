"""BigNAS search space: architectures, untrusted input, the supernet and its children, export.

Everything runs on CPU: the tiny preset on 8x8 digits-sized inputs, the ImageNet preset's
children at its smallest resolution (192) with batches of two.
"""

from __future__ import annotations

import ast
import copy
import dataclasses
import json
import warnings
from collections.abc import Callable
from pathlib import Path
from typing import Any, cast

import numpy as np
import optuna
import pytest
import torch

from nas.core.errors import ArchitectureError, ConfigError
from nas.core.random_trial import RandomTrial
from nas.metrics import count_flops
from search_spaces import DataSpec, create_space, list_spaces
from search_spaces.bignas import (
    BigNASArch,
    BigNASNetwork,
    BigNASSpace,
    BigNASSupernet,
    MBConv,
    StageArch,
)
from search_spaces.testing import (
    DELETE,
    ExportCase,
    imported_modules,
    max_abs_differences,
    mutate,
)

optuna.logging.set_verbosity(optuna.logging.WARNING)

GREY = DataSpec(in_channels=1, num_classes=10, image_size=8)
RGB = DataSpec(in_channels=3, num_classes=5, image_size=20)
TINY = BigNASSpace(preset="tiny")
IMAGENET = BigNASSpace(preset="imagenet")


pytestmark = pytest.mark.usefixtures("one_torch_thread")


def random_archs(space: BigNASSpace, count: int, seed: int = 0) -> list[BigNASArch]:
    rng = np.random.default_rng(seed)
    # RandomTrial answers suggest_* like a trial without being an optuna BaseTrial.
    return [space.sample(cast(Any, RandomTrial(rng))) for _ in range(count)]


def children(space: BigNASSpace) -> list[BigNASArch]:
    """Largest, smallest and three random children; ImageNet ones at resolution 192."""
    archs = [space.largest(), space.smallest(), *random_archs(space, 3)]
    if space is IMAGENET:
        archs = [dataclasses.replace(a, resolution=192) for a in archs]
    return archs


def trained_supernet(space: BigNASSpace, data: DataSpec, archs: list[BigNASArch]) -> BigNASSupernet:
    """A supernet whose BN statistics have moved (train-mode batches for every child)."""
    torch.manual_seed(0)
    supernet = space.supernet(data)
    supernet.train()
    with torch.no_grad():
        for arch in archs:
            supernet.set_active(arch)
            supernet(3 * torch.randn(2, data.in_channels, data.image_size, data.image_size) + 1)
    return supernet


def shapes(model: torch.nn.Module) -> dict[str, tuple[int, ...]]:
    return {k: tuple(v.shape) for k, v in model.state_dict().items()}


# ----------------------------------------------------------------------------- registry, options
def test_registered_with_tiny_default() -> None:
    assert "bignas" in list_spaces()
    space = create_space("bignas")
    assert isinstance(space, BigNASSpace) and space.preset.name == "tiny"
    assert space.dropout == 0.1 and space.drop_connect == 0.05
    assert (IMAGENET.dropout, IMAGENET.drop_connect) == (0.1, 0.1)


@pytest.mark.parametrize(
    ("options", "needle"),
    [
        ({"presett": "tiny"}, "Did you mean 'preset'"),
        ({"drop_conect": 0.1}, "Did you mean 'drop_connect'"),
        ({"preset": "imagenett"}, "Did you mean 'imagenet'"),
        ({"preset": 3}, "model.preset"),
        ({"dropout": 1.0}, "model.dropout"),
        ({"dropout": -0.1}, "model.dropout"),
        ({"dropout": True}, "model.dropout"),
        ({"dropout": "0.1"}, "model.dropout"),
        ({"drop_connect": float("nan")}, "model.drop_connect"),
    ],
)
def test_bad_options_raise_config_error(options: dict[str, Any], needle: str) -> None:
    with pytest.raises(ConfigError) as info:
        BigNASSpace(**options)
    assert needle in str(info.value)
    assert "\n" not in str(info.value)


# ----------------------------------------------------------------------------- architectures
def test_paper_space_and_extremes() -> None:
    assert IMAGENET.describe(IMAGENET.smallest()) == (
        "r192 stem32 | 16x1(k3e1) 24x2(k3e6,k3e6) 40x2(k3e6,k3e6) 80x2(k3e6,k3e6) "
        "112x2(k3e6,k3e6) 192x2(k3e6,k3e6) 320x1(k3e6) | head1280"
    )
    largest = IMAGENET.largest()
    assert (largest.resolution, largest.stem, largest.head) == (320, 40, 1408)
    assert [(s.width, s.depth) for s in largest.stages] == [
        (24, 2),
        (32, 3),
        (48, 3),
        (88, 4),
        (128, 6),
        (216, 6),
        (352, 2),
    ]
    assert TINY.describe(TINY.smallest()) == (
        "r10 stem8 | 8x1(k3e1) 16x2(k3e2,k3e2) 32x2(k3e2,k3e2) | head64"
    )


@pytest.mark.parametrize("space", [TINY, IMAGENET], ids=["tiny", "imagenet"])
def test_round_trip(space: BigNASSpace) -> None:
    for arch in [space.largest(), space.smallest(), *random_archs(space, 5)]:
        encoded = space.encode(arch)
        assert space.decode(encoded) == arch
        assert space.decode(json.loads(json.dumps(encoded))) == arch
        assert "\n" not in space.describe(arch)


def test_sample_asks_stable_define_by_run_parameters() -> None:
    study = optuna.create_study(sampler=optuna.samplers.RandomSampler(seed=5))
    for _ in range(10):
        trial = study.ask()
        arch = TINY.sample(trial)
        expected = {"resolution", "stem", "head", "s0_width", "s0_b0_kernel"}
        for i, stage in enumerate(arch.stages[1:], start=1):
            expected |= {f"s{i}_width", f"s{i}_depth"}
            expected |= {f"s{i}_b{j}_{f}" for j in range(stage.depth) for f in ("kernel", "expand")}
        assert set(trial.params) == expected  # single choices (s0 depth, expand) are not asked
        assert space_replay(trial.params) == arch
        study.tell(trial, 0.0)
    ints = optuna.distributions.IntDistribution
    assert trial.distributions["resolution"] == ints(10, 16, step=2)
    assert trial.distributions["s2_width"] == ints(32, 48, step=8)
    assert trial.distributions["s1_b0_kernel"] == ints(3, 5, step=2)


def space_replay(params: dict[str, Any]) -> BigNASArch:
    return TINY.sample(optuna.trial.FixedTrial(params))


def test_sample_with_random_trial_is_seeded_and_covers_the_space() -> None:
    first = random_archs(TINY, 30, seed=1)
    assert first == random_archs(TINY, 30, seed=1)
    assert {a.resolution for a in first} == {10, 12, 14, 16}
    assert {s.depth for a in first for s in a.stages[1:]} == {2, 3}
    rng = np.random.default_rng(2)
    trial = RandomTrial(rng)
    arch = TINY.sample(cast(Any, trial))
    assert space_replay(trial.params) == arch
    with pytest.raises(ArchitectureError, match="head"), warnings.catch_warnings():
        warnings.simplefilter("ignore")  # Optuna warns about the out-of-range answer
        TINY.sample(optuna.trial.FixedTrial({**trial.params, "head": 100}))


def test_skeleton_params() -> None:
    assert TINY.skeleton_params() == {
        "resolution",
        "stem",
        "head",
        "s0_width",
        "s1_width",
        "s1_depth",
        "s2_width",
        "s2_depth",
    }
    skeleton = IMAGENET.skeleton_params()
    assert skeleton >= {"resolution", "stem", "head", "s6_width", "s6_depth", "s4_depth"}
    study = optuna.create_study()
    trial = study.ask()
    IMAGENET.sample(trial)
    fine = set(trial.params) - skeleton
    assert fine and all(n.endswith(("_kernel", "_expand")) for n in fine)


# ----------------------------------------------------------------------------- untrusted input
_S1 = ("stages", 1)

MALFORMED: list[tuple[str, Callable[[dict[str, Any]], Any], str]] = [
    ("none", lambda d: None, "architecture"),
    ("list", lambda d: [d], "architecture"),
    ("string", lambda d: json.dumps(d), "architecture"),
    ("empty-dict", lambda d: {}, "'resolution'"),
    ("missing-head", mutate(("head",), DELETE), "'head'"),
    ("extra-key", mutate(("version",), 2), "'version'"),
    ("non-string-key", mutate((1,), 2), "architecture"),
    ("resolution-bool", mutate(("resolution",), True), "resolution"),
    ("resolution-float", mutate(("resolution",), 12.0), "resolution"),
    ("resolution-off-grid", mutate(("resolution",), 11), "resolution"),
    ("stem-string", mutate(("stem",), "16"), "stem"),
    ("head-huge", mutate(("head",), 10**100), "head"),
    ("stages-dict", mutate(("stages",), {"0": 1}), "stages"),
    ("stages-string", mutate(("stages",), "abc"), "stages"),
    ("too-few-stages", lambda d: mutate(("stages",), d["stages"][:2])(d), "stages"),
    ("huge-stage-list", mutate(("stages",), [{}] * 100_000), "stages"),
    ("stage-not-dict", mutate(_S1, 7), "stages[1]"),
    ("stage-extra-key", mutate((*_S1, "stride"), 2), "stages[1]"),
    ("stage-missing-key", mutate((*_S1, "kernels"), DELETE), "stages[1]"),
    ("width-off-grid", mutate((*_S1, "width"), 20), "stages[1].width"),
    ("width-bool", mutate((*_S1, "width"), True), "stages[1].width"),
    ("depth-too-deep", mutate((*_S1, "depth"), 4), "stages[1].depth"),
    ("depth-none", mutate((*_S1, "depth"), None), "stages[1].depth"),
    ("kernels-short", mutate((*_S1, "kernels"), [3, 3]), "stages[1].kernels"),
    ("kernels-string", mutate((*_S1, "kernels"), "333"), "stages[1].kernels"),
    ("kernels-huge", mutate((*_S1, "kernels"), [3] * 1_000_000), "stages[1].kernels"),
    ("kernel-even", mutate((*_S1, "kernels", 2), 4), "stages[1].kernels[2]"),
    ("kernel-float", mutate((*_S1, "kernels", 0), 3.0), "stages[1].kernels[0]"),
    ("expand-code", mutate((*_S1, "expands", 1), "__import__('os')"), "stages[1].expands[1]"),
    ("expand-not-allowed", mutate(("stages", 0, "expands", 0), 2), "stages[0].expands[0]"),
]


@pytest.mark.parametrize(
    ("mutate", "field"), [(m, f) for _, m, f in MALFORMED], ids=[name for name, _, _ in MALFORMED]
)
def test_decode_rejects_malformed_input(
    mutate: Callable[[dict[str, Any]], Any], field: str
) -> None:
    data = mutate(copy.deepcopy(TINY.encode(TINY.largest())))
    with pytest.raises(ArchitectureError) as info:
        TINY.decode(data)
    message = str(info.value)
    assert field in message
    assert "\n" not in message
    assert len(message) < 400  # untrusted values are quoted truncated


def test_validate_rejects_hand_built_values() -> None:
    good = TINY.largest()
    short = dataclasses.replace(good.stages[1], kernels=(5, 5))
    bad: list[Any] = [
        None,
        "largest",
        dataclasses.replace(good, stages=(good.stages[0], short, good.stages[2])),
        dataclasses.replace(good, stages=cast(Any, list(good.stages))),
        dataclasses.replace(good, resolution=True),
        IMAGENET.largest(),
    ]
    supernet = TINY.supernet(GREY)
    for arch in bad:
        for call in (
            TINY.validate,
            supernet.set_active,
            supernet.extract,
            lambda a: TINY.build(a, GREY),
            lambda a: TINY.export_source(a, GREY),
        ):
            with pytest.raises(ArchitectureError):
                call(arch)
    with pytest.raises(ValueError, match="dropout"):
        supernet.set_regularization(dropout=1.0, drop_connect=0.0)
    with pytest.raises(ValueError, match="drop_connect"):
        supernet.set_regularization(dropout=0.0, drop_connect=True)


# ----------------------------------------------------------------------------- supernet
@pytest.mark.parametrize(
    ("space", "data"), [(TINY, GREY), (IMAGENET, RGB)], ids=["tiny", "imagenet"]
)
def test_extract_equals_active_supernet(space: BigNASSpace, data: DataSpec) -> None:
    archs = children(space)
    supernet = trained_supernet(space, data, archs)
    supernet.eval()
    x = torch.randn(2, data.in_channels, data.image_size, data.image_size)
    for arch in archs:
        supernet.set_active(arch)
        child = supernet.extract(arch)
        assert isinstance(child, BigNASNetwork) and not child.training
        assert shapes(child) == shapes(space.build(arch, data))
        with torch.no_grad():
            diff = (supernet(x) - child(x)).abs().max().item()
        assert diff <= 1e-5, (space.describe(arch), diff)


def test_extract_matches_in_training_mode_given_the_same_random_state() -> None:
    """Dropout and drop-connect draw the same numbers in the same order in both."""
    arch = TINY.largest()
    supernet = TINY.supernet(GREY)
    supernet.set_regularization(dropout=0.3, drop_connect=0.5)
    supernet.train()
    child = supernet.extract(arch)
    assert child.training and child.dropout == 0.3
    x = torch.randn(8, *GREY.input_shape()[1:])
    torch.manual_seed(1)
    expected = supernet(x)
    torch.manual_seed(1)
    assert torch.allclose(child(x), expected, atol=1e-5)
    assert not torch.allclose(supernet(x), expected, atol=1e-3)  # regularisation is random
    supernet.eval()
    assert torch.equal(supernet(x), supernet(x))


def test_training_a_child_leaves_the_weights_it_does_not_use() -> None:
    supernet = TINY.supernet(GREY)
    arch = BigNASArch(
        resolution=12,
        stem=8,
        stages=(
            StageArch(8, 1, (3,), (1,)),
            StageArch(16, 2, (3, 5), (2, 3)),
            StageArch(40, 2, (5, 3), (3, 2)),
        ),
        head=96,
    )
    # Zero-init gammas would stop the gradient of residual branches: pretend it trained.
    for module in supernet.modules():
        if isinstance(module, torch.nn.BatchNorm2d):
            torch.nn.init.ones_(module.weight)
    supernet.set_active(arch)
    supernet.train()
    before = {k: v.clone() for k, v in supernet.state_dict().items()}
    optimizer = torch.optim.SGD(supernet.parameters(), lr=0.5)  # no momentum, no decay
    loss = supernet(torch.randn(16, *GREY.input_shape()[1:])).logsumexp(1).mean()
    loss.backward()
    optimizer.step()
    after = supernet.state_dict()

    def changed(key: str, index: tuple[Any, ...] = ()) -> bool:
        return not torch.equal(before[key][index], after[key][index])

    assert changed("stem.conv.weight", (slice(0, 8),)) and not changed(
        "stem.conv.weight", (slice(8, None),)
    )
    assert changed("stem.bn.running_mean", (slice(0, 8),))
    assert not changed("stem.bn.running_mean", (slice(8, None),))
    # Stage 1 block 1: expand 3 of 16 -> 48 of the 72 channels, kernel 5 (the full 5x5).
    assert changed("stages.1.1.expand.conv.weight", (slice(0, 48), slice(0, 16)))
    assert not changed("stages.1.1.expand.conv.weight", (slice(48, None),))
    assert not changed("stages.1.1.expand.conv.weight", (slice(None), slice(16, None)))
    # Stage 1 block 0: kernel 3 is the centre of the 5x5 weight; the ring stays.
    dw = "stages.1.0.depthwise.conv.weight"
    ring = torch.ones(5, 5, dtype=torch.bool)
    ring[1:4, 1:4] = False
    assert changed(dw, (slice(0, 16), slice(None), slice(1, 4), slice(1, 4)))
    assert torch.equal(before[dw][..., ring], after[dw][..., ring])
    assert not changed(dw, (slice(16, None),))
    # Stage 2 block 0 expands 16 channels 3x: its squeeze-excite is 48 -> 12 -> 48.
    assert changed("stages.2.0.se.fc1.weight", (slice(0, 12), slice(0, 48)))
    assert not changed("stages.2.0.se.fc1.weight", (slice(12, None),))
    assert not changed("stages.2.0.se.fc1.weight", (slice(None), slice(48, None)))
    # Skipped blocks (depth 2 of 3) are untouched; the classifier reads 96 of 128 inputs.
    assert not any(changed(k) for k in before if k.startswith("stages.2.2."))
    assert changed("classifier.weight", (slice(None), slice(0, 96)))
    assert not changed("classifier.weight", (slice(None), slice(96, None)))


def test_last_bn_gamma_of_residual_blocks_starts_at_zero() -> None:
    arch = TINY.largest()
    model = TINY.build(arch, GREY)
    assert isinstance(model, BigNASNetwork)
    blocks = [b for b in model.blocks if isinstance(b, MBConv)]
    residual = [b.residual for b in blocks]
    assert residual == [True, False, True, True, False, True, True]
    for block in blocks:
        gamma = block.project.bn.weight
        assert torch.all(gamma == 0) if block.residual else torch.all(gamma == 1)
    supernet = TINY.supernet(GREY)
    # Block 0 of stage 0 adds its input when stem and stage widths agree (8 or 16).
    gammas = {k: v for k, v in supernet.state_dict().items() if k.endswith("project.bn.weight")}
    zero = {k for k, v in gammas.items() if torch.all(v == 0)}
    assert zero == {k for k in gammas if not k.startswith(("stages.1.0.", "stages.2.0."))}
    extracted_gamma = supernet.extract(arch).get_parameter("blocks.2.project.bn.weight")
    assert torch.all(extracted_gamma == 0)


def test_flops_range() -> None:
    def flops(space: BigNASSpace, arch: BigNASArch, data: DataSpec) -> int:
        return count_flops(space.build(arch, data), data.input_shape(1))

    tiny = flops(TINY, TINY.largest(), GREY) / flops(TINY, TINY.smallest(), GREY)
    assert 10 <= tiny <= 16, tiny
    # The paper's children span ~200-1000 MFLOPs (multiply-adds); ours 208M-1.85G MACs.
    small = flops(IMAGENET, IMAGENET.smallest(), RGB) / 2
    assert 190e6 <= small <= 230e6, small


# BigNASModel-S/M/L/XL (Yu et al. 2020): published (parameters, multiply-adds).
PUBLISHED = {
    "bignas-s": (4.5e6, 242e6),
    "bignas-m": (5.5e6, 418e6),
    "bignas-l": (6.4e6, 586e6),
    "bignas-xl": (9.5e6, 1040e6),
}


@pytest.mark.parametrize("name", list(PUBLISHED))
def test_named_children_have_the_published_sizes(name: str) -> None:
    params, mult_adds = PUBLISHED[name]
    arch = IMAGENET.named_architectures()[name]
    spec = DataSpec(3, 1000, arch.resolution)
    model = IMAGENET.build(arch, spec)
    counted = sum(p.numel() for p in model.parameters())
    assert abs(counted / params - 1) <= 0.01, counted
    counted_macs = count_flops(model, spec.input_shape(1)) / 2
    assert abs(counted_macs / mult_adds - 1) <= 0.02, counted_macs
    assert TINY.named_architectures() == {}  # they are children of the imagenet preset


def test_squeeze_excite_takes_a_quarter_of_the_block_input_width() -> None:
    arch = IMAGENET.smallest()
    model = IMAGENET.build(arch, DataSpec(3, 1000, 192))
    block = model.blocks[1]  # 16 -> 24 channels, expansion 6
    assert (block.se.fc1.in_features, block.se.fc1.out_features) == (96, 4)


def test_exported_named_children_equal_the_models(tmp_path: Path) -> None:
    cases = {}
    for name, arch in IMAGENET.named_architectures().items():
        spec = DataSpec(3, 1000, arch.resolution)
        torch.manual_seed(0)
        model = IMAGENET.build(arch, spec)
        model.train()
        with torch.no_grad():  # BN statistics away from their initial values
            model(torch.randn(2, 3, arch.resolution, arch.resolution))
        model.eval()
        x = torch.randn(1, 3, arch.resolution, arch.resolution)
        with torch.no_grad():
            y = model(x)
        source, weights = IMAGENET.export_source(arch, spec), IMAGENET.export_state_dict(model)
        cases[name] = ExportCase(source, weights, x, y)
    assert set(cases) == set(PUBLISHED)
    differences = max_abs_differences(cases, tmp_path)
    assert max(differences.values()) <= 1e-5, differences


def test_resizes_inputs_of_any_size() -> None:
    model = TINY.build(TINY.smallest(), GREY).eval()
    for side in (8, 10, 28):
        assert model(torch.randn(3, 1, side, side)).shape == (3, 10)


# ----------------------------------------------------------------------------- export
def test_export_round_trip_in_fresh_interpreter(tmp_path: Path) -> None:
    tiny = children(TINY)[:3]
    supernet = trained_supernet(TINY, GREY, tiny)
    imagenet_arch = IMAGENET.smallest()
    cases = {f"tiny{i}": (TINY, GREY, supernet, arch) for i, arch in enumerate(tiny)}
    cases["imagenet"] = (
        IMAGENET,
        RGB,
        trained_supernet(IMAGENET, RGB, [imagenet_arch]),
        imagenet_arch,
    )
    exports: dict[str, ExportCase] = {}
    for name, (space, data, net, arch) in cases.items():
        net.eval()
        child = net.extract(arch)
        x = torch.randn(2, data.in_channels, data.image_size, data.image_size)
        with torch.no_grad():
            y = child(x)
        source = space.export_source(arch, data)
        assert imported_modules(source) == {"__future__", "torch"}
        docstring = " ".join((ast.get_docstring(ast.parse(source)) or "").split())
        assert space.describe(arch) in docstring
        assert "BLOCKS = [" in source and "def build_network() -> nn.Module:" in source
        exports[name] = ExportCase(source, space.export_state_dict(child), x, y)

    diffs = max_abs_differences(exports, tmp_path)
    assert set(diffs) == set(cases)
    assert max(diffs.values()) <= 1e-5, diffs
