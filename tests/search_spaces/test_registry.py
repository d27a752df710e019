"""The contract suite every registered search space passes (a new space is tested for free).

Each space is instantiated with the model settings of its own preset in studies/, so the
suite also checks that presets and spaces agree.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import optuna
import pytest
import torch

from nas.config import compose_search
from nas.errors import ArchitectureError, ConfigError
from search_spaces import SearchSpace, create_space, get_space_class, list_spaces
from search_spaces.base import DataSpec
from search_spaces.testing import ExportCase, imported_modules, max_abs_differences

SPACES = list_spaces()
SPECS = [
    DataSpec(in_channels=1, num_classes=10, image_size=8),
    DataSpec(in_channels=3, num_classes=5, image_size=16),
]


def preset_space(name: str) -> SearchSpace[Any]:
    return create_space(name, **compose_search([f"space={name}"]).model)


def sampled(space: SearchSpace[Any], count: int, seed: int = 0) -> list[Any]:
    study = optuna.create_study(sampler=optuna.samplers.RandomSampler(seed=seed))
    return [space.sample(study.ask()) for _ in range(count)]


def test_registry_lists_builtin_spaces() -> None:
    assert "nasnet" in SPACES
    assert sorted(SPACES) == SPACES


def test_unknown_space_suggests_close_match() -> None:
    with pytest.raises(ConfigError, match="Did you mean 'nasnet'"):
        get_space_class("nasnett")


@pytest.mark.parametrize("name", SPACES)
def test_sample_is_valid_and_round_trips(name: str) -> None:
    space = preset_space(name)
    for arch in sampled(space, 5):
        space.validate(arch)
        encoded = space.encode(arch)
        assert space.decode(encoded) == arch
        assert space.decode(json.loads(json.dumps(encoded))) == arch
        assert space.describe(arch)


@pytest.mark.parametrize("name", SPACES)
def test_sampling_uses_only_the_trial(name: str) -> None:
    """Same answers from the trial -> same architecture (no hidden randomness)."""
    space = preset_space(name)
    study = optuna.create_study(sampler=optuna.samplers.RandomSampler(seed=3))
    trial = study.ask()
    arch = space.sample(trial)
    replay = space.sample(optuna.trial.FixedTrial(trial.params))
    assert replay == arch


@pytest.mark.parametrize("name", SPACES)
@pytest.mark.parametrize("garbage", [None, "arch", 3, [], {}, {"unexpected": 1}, [[1, 2]]])
def test_decode_rejects_garbage(name: str, garbage: object) -> None:
    with pytest.raises(ArchitectureError):
        preset_space(name).decode(garbage)


@pytest.mark.parametrize("name", SPACES)
@pytest.mark.parametrize("spec", SPECS, ids=lambda s: f"{s.in_channels}x{s.image_size}")
def test_build_forward_backward(name: str, spec: DataSpec) -> None:
    space = preset_space(name)
    torch.manual_seed(0)
    for arch in sampled(space, 3, seed=1):
        model = space.build(arch, spec)
        model.train()
        logits = model(torch.randn(spec.input_shape(4)))
        assert logits.shape == (4, spec.num_classes)
        assert torch.isfinite(logits).all()
        logits.square().mean().backward()
        missing = [n for n, p in model.named_parameters() if p.grad is None]
        assert not missing, f"parameters without gradient: {missing[:5]}"
        assert all(torch.isfinite(p.grad).all() for p in model.parameters() if p.grad is not None)


@pytest.mark.parametrize("name", SPACES)
def test_export_source_matches_model_in_fresh_interpreter(name: str, tmp_path: Path) -> None:
    space = preset_space(name)
    spec = SPECS[0]
    torch.manual_seed(0)
    arch = sampled(space, 1, seed=7)[0]
    model = space.build(arch, spec)
    # Make BN statistics non-trivial so that the comparison covers them.
    model.train()
    with torch.no_grad():
        for _ in range(3):
            model(torch.randn(spec.input_shape(16)))
    model.eval()
    x = torch.randn(spec.input_shape(3))
    expected = model(x).detach()

    source = space.export_source(arch, spec)
    assert imported_modules(source) <= {"__future__", "torch"}
    case = ExportCase(source, space.export_state_dict(model), x, expected)
    assert max_abs_differences({"net": case}, tmp_path)["net"] <= 1e-5
