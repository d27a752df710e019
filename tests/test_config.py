"""Composition of presets and overrides, and the one-line errors for bad input."""

from __future__ import annotations

import pytest

from nas.config import ExportConfig, compose, compose_search, study_name
from nas.core.errors import ConfigError


def test_evonorm_preset_has_one_objective_per_host() -> None:
    config = compose_search(["space=evonorm"])
    assert config.objectives == ["accuracy@resnet", "accuracy@mobilenet"]
    assert config.baselines == ["bn-relu", "evonorm-b0", "evonorm-s0"]
    assert config.evolution.selection == "tournament" and config.evolution.mutation == "one"


def test_pruners_count_every_report_as_a_step() -> None:
    from nas.pruners import create_pruner

    config = compose_search(["epochs=5", "reports_per_epoch=4", "pruner=lcpfn"])
    assert create_pruner(config).final_epoch == 20
    hyperband = create_pruner(
        compose_search(["epochs=5", "reports_per_epoch=4", "pruner=hyperband"])
    )
    assert hyperband._max_resource == 20


def test_preset_then_overrides() -> None:
    config = compose_search(["epochs=7", "objectives=[accuracy,flops]", "model.cells_per_stage=2"])
    assert config.epochs == 7
    assert config.objectives == ["accuracy", "flops"]
    assert config.model.cells_per_stage == 2
    assert config.model.init_channels == 12  # the preset's, over the schema's 16
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
            "Unknown strategy 'tp'. Allowed: coarse_to_fine, evolution, nsga2, random, tpe, or "
            "module:Class for your own. Did you mean 'tpe'",
        ),
        (["pruner=medain"], "Did you mean 'median'"),
        (["dataset=digit"], "Did you mean 'digits'"),
        (["space=nasnett"], "Unknown search space 'nasnett'.*Did you mean 'nasnet'"),
        (["device=gpu"], "Allowed: auto, cpu, cuda, cuda:N"),
        (["objectives=[flops]"], "must start with accuracy"),
        (["objectives=[accuracy,energy]"], "objectives must be one of .* got objectives='energy'"),
        (["objectives=[flops,accuracy@resnet]"], "must start with accuracy"),
        (["objectives=[accuracy,accuracy@Res-Net]"], "got objectives='accuracy@Res-Net'"),
        (
            ["objectives=[accuracy,accuracy@resnet]", "pruner=lcpfn"],
            "objectives after the first must be costs",
        ),
        (["evaluator=supernett"], "Did you mean 'supernet'"),
        (
            ["strategy=coarse_to_fine", "objectives=[accuracy,flops]"],
            "use objectives=\\[accuracy\\]",
        ),
        (["constraints.max_flops=-1"], "constraints.max_flops must be a number > 0"),
        (["constraints.max_flop=1"], "Did you mean 'max_flops'"),
        (["tpe.n_startup_trials=-1"], "tpe.n_startup_trials must be an integer >= 0"),
        (["coarse_trials=3"], "Unknown key 'coarse_trials'"),
        (["trials=0"], "trials must be an integer >= 1, but got trials=0"),
        (["train.lr=-1"], "train.lr must be a number > 0, but got train.lr=-1.0"),
        (["model.drop_path=1.5"], "model.drop_path must be a number >= 0 and < 1"),
        (["supernet.lr=0.1"], "Unknown key 'supernet'"),
        (["evaluator=supernet"], "needs a weight-sharing space .* space=nasnet is not one"),
        (["search"], "Expected key=value, got 'search'"),
        (["reports_per_epoch=0"], "reports_per_epoch must be an integer >= 1"),
        (
            ["space=bignas", "evaluator=supernet", "reports_per_epoch=4"],
            "reports_per_epoch=4 needs an evaluator that validates within an epoch",
        ),
        (["+foo=1"], "adding or deleting keys is not supported"),
        (
            ["trials=3", "space=!!python/object:os.system"],
            "Cannot read the value of 'space=!!python/object:os.system' \\(could not "
            "determine a constructor",
        ),
        (["objectives=[accuracy"], "Cannot read the value of 'objectives=\\[accuracy'"),
    ],
)
def test_bad_overrides_are_one_line_errors(overrides: list[str], expected: str) -> None:
    with pytest.raises(ConfigError, match=expected) as info:
        compose_search(overrides)
    assert "\n" not in str(info.value)


def test_each_strategy_has_its_own_settings_group() -> None:
    config = compose_search(["strategy=nsga2", "nsga2.population_size=20"])
    assert config.nsga2.population_size == 20  # type: ignore[attr-defined]
    assert config.objectives == ["accuracy"]  # NSGA-II searches one objective too
    coarse = compose_search(
        ["space=bignas", "strategy=coarse_to_fine", "objectives=[accuracy]",
         "coarse_to_fine.coarse_trials=5"]
    )  # fmt: skip
    assert coarse.coarse_to_fine.coarse_trials == 5  # type: ignore[attr-defined]
    assert not hasattr(coarse, "tpe")


def test_other_command_schemas() -> None:
    config = compose(ExportConfig, ["study=s", "trial=3", "out=x.py"])
    assert (config.study, config.trial, config.out) == ("s", "3", "x.py")
    with pytest.raises(ConfigError, match=r"Unknown key 'outt'.*Did you mean 'out'"):
        compose(ExportConfig, ["outt=x.py"])
