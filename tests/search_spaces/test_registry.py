"""The contract suite every registered search space passes (a new space is tested for free).

Each space is instantiated with the model settings of its own preset in studies/, so the
suite also checks that presets and spaces agree. The checks themselves ship with the
package (search_spaces.contract), for third-party spaces' tests too.
"""

from __future__ import annotations

from dataclasses import asdict
from pathlib import Path
from typing import Any

import pytest

from nas.config import compose_search
from nas.core.errors import ConfigError, WeightsError
from search_spaces import (
    SearchSpace,
    WeightSharingSpace,
    contract,
    create_space,
    get_space_class,
    list_spaces,
)

SPACES = list_spaces()
# Spaces that build networks (a plug-in's lookup table may not: contract.check_space skips it).
BUILDERS = [n for n in SPACES if "build" in get_space_class(n).capabilities]
EXPORTERS = [n for n in BUILDERS if "export" in get_space_class(n).capabilities]


def preset_space(name: str) -> SearchSpace[Any]:
    return create_space(name, **asdict(compose_search([f"space={name}"]).model))


def test_registry_lists_builtin_spaces() -> None:
    assert {"bignas", "nasnet"} <= set(SPACES)


def test_unknown_space_suggests_close_match() -> None:
    with pytest.raises(ConfigError, match="Did you mean 'nasnet'"):
        get_space_class("nasnett")


def test_module_class_reference_finds_a_space() -> None:
    assert get_space_class("search_spaces.nasnet.space:NASNetSpace").name == "nasnet"
    with pytest.raises(ConfigError, match="is not a search space"):
        get_space_class("nas.core.dataspec:DataSpec")
    with pytest.raises(ConfigError, match="Cannot load search space 'no_such_module:X'"):
        get_space_class("no_such_module:X")
    with pytest.raises(ConfigError, match=r"write module\.path:ClassName"):
        get_space_class("../../etc:passwd")


@pytest.mark.parametrize("name", SPACES)
def test_sample_is_valid_and_round_trips(name: str) -> None:
    contract.check_round_trip(preset_space(name))


@pytest.mark.parametrize("name", SPACES)
def test_sampling_uses_only_the_trial(name: str) -> None:
    contract.check_sampling_uses_only_the_trial(preset_space(name))


@pytest.mark.parametrize("name", SPACES)
def test_decode_rejects_garbage(name: str) -> None:
    contract.check_decode_rejects_garbage(preset_space(name))


@pytest.mark.parametrize("name", BUILDERS)
@pytest.mark.parametrize(
    "spec", contract.DEFAULT_SPECS, ids=lambda s: f"{s.in_channels}x{s.image_size}"
)
def test_build_forward_backward(name: str, spec: Any) -> None:
    contract.check_build(preset_space(name), spec)


@pytest.mark.parametrize("name", BUILDERS)
def test_build_starts_from_given_weights(name: str) -> None:
    contract.check_build_from_weights(preset_space(name), contract.DEFAULT_SPECS[0])


def test_a_child_built_from_supernet_weights_inherits_its_share() -> None:
    """A child built from a trained supernet's weights holds its slices of them (the
    contract checks equal outputs; here: they differ from a fresh child's)."""
    import torch

    space = preset_space("bignas")
    assert isinstance(space, WeightSharingSpace)
    spec = contract.DEFAULT_SPECS[0]
    supernet = space.supernet(spec)
    with torch.no_grad():
        for parameter in supernet.parameters():
            parameter.fill_(0.5)
    child = space.build(space.smallest(), spec, supernet.state_dict())
    assert all(bool((p == 0.5).all()) for p in child.parameters())
    with pytest.raises(WeightsError, match="do not fit the supernet: Missing key"):
        space.build(space.smallest(), spec, {"stem.weight": torch.zeros(1)})


@pytest.mark.parametrize("name", EXPORTERS)
def test_export_source_matches_model_in_fresh_interpreter(name: str, tmp_path: Path) -> None:
    contract.check_export(preset_space(name), contract.DEFAULT_SPECS[0], tmp_path)


@pytest.mark.parametrize(
    "name", [n for n in SPACES if issubclass(get_space_class(n), WeightSharingSpace)]
)
@pytest.mark.parametrize(
    "spec", contract.DEFAULT_SPECS, ids=lambda s: f"{s.in_channels}x{s.image_size}"
)
def test_extract_equals_active_supernet(name: str, spec: Any) -> None:
    space = preset_space(name)
    assert isinstance(space, WeightSharingSpace)
    contract.check_extract_equals_active(space, spec)


def test_extract_check_catches_a_child_that_differs() -> None:
    """The check can fail: a supernet whose extract drops the last BN's shift is caught."""
    space = preset_space("bignas")
    assert isinstance(space, WeightSharingSpace)

    class Broken(type(space)):  # type: ignore[misc]
        def supernet(self, data: Any) -> Any:
            net = super().supernet(data)
            extract = net.extract

            def broken(arch: Any) -> Any:
                child = extract(arch)
                last = [m for m in child.modules() if hasattr(m, "running_mean")][-1]
                last.bias.data.add_(1.0)
                return child

            net.extract = broken
            return net

    with pytest.raises(AssertionError, match="extract differs by"):
        contract.check_extract_equals_active(Broken(), contract.DEFAULT_SPECS[0])
