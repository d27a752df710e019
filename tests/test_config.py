"""Composition of presets and overrides, and the one-line errors for bad input."""

from __future__ import annotations

import pytest

from nas.config import ExportConfig, compose, compose_search, study_name
from nas.errors import ConfigError


def test_preset_then_overrides() -> None:
    config = compose_search(["epochs=7", "objectives=[accuracy,flops]", "model.cells_per_stage=2"])
    assert config.epochs == 7
    assert config.objectives == ["accuracy", "flops"]
    assert config.model["cells_per_stage"] == 2
    # From studies/nasnet.yaml, untouched by the overrides:
    assert config.train.optimizer == "adamw"
    assert study_name(config) == "nasnet-digits"
    assert study_name(compose_search(["study=mine"])) == "mine"


@pytest.mark.parametrize(
    ("overrides", "expected"),
    [
        (["epoch=3"], "Unknown key 'epoch'.*Did you mean 'epochs'"),
        (["train.lrr=0.1"], "Unknown key 'train.lrr'.*Did you mean 'lr'"),
        (["epochs=abc"], "Bad value for 'epochs'.*Expected int"),
        (["timeout=soon"], "Bad value for 'timeout'.*Expected float"),
        (
            ["strategy=tp"],
            "Unknown strategy 'tp'.*Allowed: coarse_to_fine, nsga2, random, tpe.*"
            "Did you mean 'tpe'",
        ),
        (["pruner=medain"], "Did you mean 'median'"),
        (["dataset=digit"], "Did you mean 'digits'"),
        (["space=nasnett"], "Unknown search space 'nasnett'.*Did you mean 'nasnet'"),
        (["device=gpu"], "Allowed: auto, cpu, cuda, cuda:N"),
        (["objectives=[flops]"], "must start with accuracy"),
        (["objectives=[accuracy,energy]"], "Unknown objectives 'energy'"),
        (["evaluator=supernett"], "Did you mean 'supernet'"),
        (
            ["strategy=coarse_to_fine", "objectives=[accuracy,flops]"],
            "use objectives=\\[accuracy\\]",
        ),
        (["constraints.max_flops=-1"], "'constraints.max_flops' must be > 0"),
        (["constraints.max_flop=1"], "Did you mean 'max_flops'"),
        (["strategy=nsga2"], "needs several objectives"),
        (["trials=0"], "'trials' must be > 0"),
        (["search"], "Expected key=value, got 'search'"),
        (["+foo=1"], "adding or deleting keys is not supported"),
    ],
)
def test_bad_overrides_are_one_line_errors(overrides: list[str], expected: str) -> None:
    with pytest.raises(ConfigError, match=expected) as info:
        compose_search(overrides)
    assert "\n" not in str(info.value)


def test_other_command_schemas() -> None:
    config = compose(ExportConfig, ["study=s", "trial=3", "out=x.py"])
    assert (config.study, config.trial, config.out) == ("s", "3", "x.py")
    with pytest.raises(ConfigError, match=r"Unknown key 'outt'.*Did you mean 'out'"):
        compose(ExportConfig, ["outt=x.py"])
