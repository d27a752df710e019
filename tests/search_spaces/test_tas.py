"""TAS search space: the CIFAR ResNets and their published sizes, the search network
(channel-wise interpolation, the expected FLOPs, the derived architecture), L1 filter
pruning, and the exported released networks."""

from __future__ import annotations

from pathlib import Path
from typing import cast

import numpy as np
import optuna
import pytest
import torch

from nas.core.errors import ArchitectureError, ConfigError
from nas.core.random_trial import RandomTrial
from nas.metrics import count_flops, count_parameters
from search_spaces import DataSpec, create_space
from search_spaces.tas import TASArch, TASSpace, TASSupernet, arch_macs, interpolate_channels
from search_spaces.tas.presets import depth_choices, width_choices
from search_spaces.tas.published import RELEASED
from search_spaces.testing import ExportCase, max_abs_differences

CIFAR10 = DataSpec(in_channels=3, num_classes=10, image_size=32)
DIGITS = DataSpec(in_channels=1, num_classes=10, image_size=8)


pytestmark = pytest.mark.usefixtures("one_torch_thread")


def space(preset: str) -> TASSpace:
    return cast(TASSpace, create_space("tas", preset=preset))


def random_arch(tas: TASSpace, seed: int) -> TASArch:
    return tas.sample(cast(optuna.trial.BaseTrial, RandomTrial(np.random.default_rng(seed))))


# --- the space ------------------------------------------------------------------------


def test_width_and_depth_choices_are_the_authors() -> None:
    assert width_choices(16) == (4, 6, 8, 9, 11, 12, 14, 16)  # int(16 * 0.3) ... 16
    assert width_choices(64) == (19, 25, 32, 38, 44, 51, 57, 64)
    assert depth_choices(3) == (1, 2, 3)
    assert depth_choices(9) == (1, 3, 5, 7, 9)
    assert depth_choices(18) == (1, 3, 5, 7, 9, 11, 13, 15, 17, 18)


# He et al. (2016): CIFAR ResNet-20/32/56/110 0.27M/0.46M/0.85M/1.7M parameters;
# ResNet-164 (bottleneck, "Identity Mappings in Deep Residual Networks") 1.7M.
# Multiply-adds at 32x32 as the TAS authors' code counts them (their estimate for the
# unpruned network: convs, shortcut convs and the classifier).
PUBLISHED = {
    "resnet20": (0.27e6, 40.81e6),
    "resnet32": (0.46e6, 69.12e6),
    "resnet56": (0.85e6, 125.75e6),
    "resnet110": (1.7e6, 253.15e6),
    "resnet164": (1.7e6, 247.65e6),
}


@pytest.mark.parametrize("preset", sorted(PUBLISHED))
def test_unpruned_networks_have_their_published_size(preset: str) -> None:
    tas = space(preset)
    with torch.device("meta"):
        model = tas.build(tas.largest(), CIFAR10)
    params, macs = PUBLISHED[preset]
    # 1x1 projection shortcuts where the resolution halves (the authors' choice) add ~2%.
    assert count_parameters(model) == pytest.approx(params, rel=0.03)
    assert count_flops(model, CIFAR10.input_shape(1)) / 2 == pytest.approx(macs, rel=1e-3)
    assert tas.preset.depth == int(preset.removeprefix("resnet"))


@pytest.mark.parametrize("name", sorted(RELEASED))
def test_released_pruned_networks_are_in_the_space(name: str) -> None:
    released = RELEASED[name]
    tas = space(released.preset)
    arch = tas.named_architectures()[name]
    tas.validate(arch)
    spec = DataSpec(3, released.num_classes, 32)
    with torch.device("meta"):
        model = tas.build(arch, spec)
    counted = count_flops(model, spec.input_shape(1)) // 2
    assert counted == arch_macs(arch, 3, released.num_classes, 32)
    if name in ("tas-resnet20-c10", "tas-resnet32-c10"):  # all blocks kept: the authors' figure
        assert counted == pytest.approx(released.estimated_macs_m * 1e6, abs=1)
    else:  # their estimate counts dropped blocks' widths as the next stage's input
        assert counted == pytest.approx(released.estimated_macs_m * 1e6, rel=0.035)


def test_a_pruned_network_counted_by_hand() -> None:
    """ResNet-20 pruned to one block per stage, every count written out."""
    arch = TASArch(8, (((6, 8),), ((12, 19),), ((25, 38),)))
    hand = (
        3 * 8 * 9 * 32 * 32  # stem 3x3, 3 -> 8
        + 8 * 6 * 9 * 32 * 32
        + 6 * 8 * 9 * 32 * 32  # stage 1: 8 -> 6 -> 8, identity
        + 8 * 12 * 9 * 16 * 16
        + 12 * 19 * 9 * 16 * 16  # stage 2: stride 2, 8 -> 12 -> 19
        + 8 * 19 * 16 * 16  # its pooled 1x1 shortcut, 8 -> 19
        + 19 * 25 * 9 * 8 * 8
        + 25 * 38 * 9 * 8 * 8
        + 19 * 38 * 8 * 8  # stage 3 and shortcut
        + 38 * 10  # classifier
    )
    tas = space("resnet20")
    assert tas.macs(arch, CIFAR10) == hand
    assert count_flops(tas.build(arch, CIFAR10), CIFAR10.input_shape(1)) == 2 * hand


def test_a_block_whose_widths_differ_gets_a_projection() -> None:
    tas = space("resnet20")
    arch = TASArch(16, (((16, 11),), ((32, 32),), ((64, 64),)))
    model = tas.build(arch, CIFAR10)
    assert type(model.blocks[0].shortcut).__name__ == "Sequential"  # 1x1 conv + BN
    assert tas.macs(arch, CIFAR10) == count_flops(model, CIFAR10.input_shape(1)) // 2


def test_bad_architectures_and_sizes_are_one_line_errors() -> None:
    tas = space("resnet20")
    with pytest.raises(ArchitectureError, match=r"stages\[0\] must keep 1, 2, 3 blocks"):
        tas.decode({"stem": 16, "stages": [[], [[32, 32]], [[64, 64]]]})
    with pytest.raises(ArchitectureError, match=r"stages\[1\]\[0\]\[1\] must be one of 9, 12"):
        tas.decode({"stem": 16, "stages": [[[16, 16]], [[32, 33]], [[64, 64]]]})
    with pytest.raises(ConfigError, match="multiple of 4"):
        tas.build(tas.largest(), DataSpec(3, 10, 30))


# --- the search network ----------------------------------------------------------------


def test_channel_wise_interpolation_averages_the_covering_channels() -> None:
    x = torch.randn(2, 5, 3, 3)
    down = interpolate_channels(x, 3)
    for i in range(3):  # channels floor(i*5/3) .. ceil((i+1)*5/3) - 1
        low, high = (i * 5) // 3, -((-(i + 1) * 5) // 3)
        assert torch.allclose(down[:, i], x[:, low:high].mean(dim=1), atol=1e-6)
    up = interpolate_channels(x[:, :3], 5)
    for i in range(5):
        low, high = (i * 3) // 5, -((-(i + 1) * 3) // 5)
        assert torch.allclose(up[:, i], x[:, low:high].mean(dim=1), atol=1e-6)
    assert interpolate_channels(x, 5) is x


def _one_hot(supernet: TASSupernet, arch: TASArch) -> None:
    """Make ``arch`` certain under the supernet's distributions (dropped blocks: any)."""
    preset = supernet.preset
    widths = [arch.stem]
    for blocks in arch.stages:
        padded = [*blocks, *[blocks[-1]] * (preset.blocks - len(blocks))]
        widths += [w for block in padded for w in block]
    with torch.no_grad():
        for conv, logits, width in zip(
            supernet.prunable_convs(), supernet.width_logits, widths, strict=True
        ):
            logits.fill_(-1e4)
            logits[conv.choices.index(width)] = 0
        for logits, blocks in zip(supernet.depth_logits, arch.stages, strict=True):
            logits.fill_(-1e4)
            logits[preset.depths.index(len(blocks))] = 0


@pytest.mark.parametrize(("preset", "spec"), [("digits", DIGITS), ("resnet164", CIFAR10)])
def test_expected_flops_are_exact_when_the_distributions_are_one_hot(
    preset: str, spec: DataSpec
) -> None:
    tas = space(preset)
    supernet = tas.supernet(spec)
    for seed in range(4):
        arch = random_arch(tas, seed)
        _one_hot(supernet, arch)
        assert supernet.derive() == arch
        assert supernet.expected_macs().item() == pytest.approx(tas.macs(arch, spec), rel=1e-6)


def test_expected_flops_are_differentiable_in_every_distribution() -> None:
    tas = space("digits")
    supernet = tas.supernet(DIGITS)
    expected = supernet.expected_macs()
    smallest, largest = tas.macs(tas.smallest(), DIGITS), tas.macs(tas.largest(), DIGITS)
    assert smallest < expected.item() < largest
    expected.backward()
    for logits in supernet.arch_parameters():
        assert logits.grad is not None and logits.grad.abs().sum() > 0


def test_a_search_step_trains_weights_and_distributions_apart() -> None:
    torch.manual_seed(0)
    tas = space("digits")
    supernet = tas.supernet(DIGITS)
    logits = supernet.search_forward(torch.randn(4, 1, 8, 8), tau=1.0)
    assert logits.shape == (4, 10)
    logits.logsumexp(1).mean().backward()
    assert all(p.grad is not None for p in supernet.width_logits)  # through the mixtures
    assert all(p.grad is not None for p in supernet.depth_logits)
    arch_ids = {id(p) for p in supernet.arch_parameters()}
    assert not arch_ids & {id(p) for p in supernet.weight_parameters()}


def test_the_derived_architecture_validates_and_builds() -> None:
    torch.manual_seed(3)
    tas = space("resnet56")
    supernet = tas.supernet(CIFAR10)
    with torch.no_grad():
        for logits in supernet.arch_parameters():
            logits.normal_()
    arch = supernet.derive()
    tas.validate(arch)
    assert tas.build(arch, CIFAR10)(torch.randn(1, 3, 32, 32)).shape == (1, 10)


# --- L1 filter pruning ------------------------------------------------------------------


def test_l1_pruning_keeps_the_largest_filters_and_joined_channels_together() -> None:
    torch.manual_seed(0)
    tas = space("resnet20")
    teacher = tas.build(tas.largest(), CIFAR10).state_dict()
    arch = tas.uniform(5)
    state = tas.l1_pruned_state(teacher, arch, CIFAR10)
    pruned = tas.build(arch, CIFAR10, state)  # loads strictly
    # An inner conv (no residual) keeps its own largest-norm filters, in order.
    norms = teacher["blocks.0.layers.0.conv.weight"].abs().flatten(1).sum(1)
    kept = norms.topk(8).indices.sort().values
    full = teacher["blocks.0.layers.0.conv.weight"]
    assert torch.equal(state["blocks.0.layers.0.conv.weight"], full[kept][:, _stem_kept(teacher)])
    # The stem and stage 1's block outputs are joined by identity shortcuts: one choice.
    assert torch.equal(
        state["blocks.0.layers.1.bn.running_mean"],
        teacher["blocks.0.layers.1.bn.running_mean"][_stem_kept(teacher)],
    )
    assert pruned(torch.randn(1, 3, 32, 32)).shape == (1, 10)


def _stem_kept(teacher: dict[str, torch.Tensor]) -> torch.Tensor:
    names = ["stem.conv.weight", *(f"blocks.{k}.layers.1.conv.weight" for k in range(3))]
    norms = sum(teacher[name].abs().flatten(1).sum(1) for name in names)
    return cast(torch.Tensor, norms).topk(8).indices.sort().values


# --- export -----------------------------------------------------------------------------


def test_released_networks_export_and_match_in_a_fresh_interpreter(tmp_path: Path) -> None:
    cases = {}
    for name in ("tas-resnet20-c10", "tas-resnet56-c10"):
        tas = space(RELEASED[name].preset)
        arch = tas.named_architectures()[name]
        torch.manual_seed(0)
        model = tas.build(arch, CIFAR10)
        model.train()
        with torch.no_grad():  # move BN statistics off their initial values
            model(torch.randn(8, 3, 32, 32))
        model.eval()
        x = torch.randn(2, 3, 32, 32)
        source = tas.export_source(arch, CIFAR10)
        assert "BLOCKS = [" in source and "import nas" not in source
        cases[name.replace("-", "_")] = ExportCase(source, model.state_dict(), x, model(x).detach())
    differences = max_abs_differences(cases, tmp_path)
    assert max(differences.values()) <= 1e-5, differences
