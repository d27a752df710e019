"""Evaluators and presets from outside the platform: module:Class references, settings
groups of their own, rejected candidates, the user's preset folder."""

from __future__ import annotations

from pathlib import Path

import optuna
import pytest

from evaluators import get_evaluator_class, list_evaluators
from nas import store
from nas.cli import main
from nas.config import compose_search
from nas.core.errors import ConfigError

REJECT = "tests._plugins:RejectOddTrials"
NASNET = ["space=nasnet", "model.init_channels=4", "model.cells_per_stage=1"]


def _study(tmp_path: Path, name: str) -> optuna.Study:
    return store.load_study(store.open_storage(f"sqlite:///{tmp_path}/s.db"), name)


def test_builtin_evaluators_are_listed_and_unknown_ones_suggest_a_match() -> None:
    assert {"standalone", "supernet"} <= set(list_evaluators())
    assert get_evaluator_class("supernet").settings_group == "supernet"
    with pytest.raises(ConfigError, match="Did you mean 'supernet'"):
        get_evaluator_class("supernett")


def test_a_plugin_evaluator_brings_its_own_settings_group() -> None:
    config = compose_search([*NASNET, f"evaluator={REJECT}", "scoring.score=0.75"])
    assert config.scoring.score == 0.75  # type: ignore[attr-defined]
    with pytest.raises(ConfigError, match=r"scoring\.score must be a number >= 0 and <= 1"):
        compose_search([*NASNET, f"evaluator={REJECT}", "scoring.score=2"])
    with pytest.raises(ConfigError, match=r"Unknown key 'train'\. Allowed keys: space"):
        compose_search([*NASNET, f"evaluator={REJECT}", "train.lr=0.1"])


@pytest.mark.e2e
def test_rejected_candidates_are_outcomes_not_failures(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    """Eleven trials, five of them rejected: the study is not stopped as five failures in
    a row would stop it, and `nas show` gives the reasons."""
    args = [*NASNET, f"evaluator={REJECT}", "trials=11", f"storage=sqlite:///{tmp_path}/s.db"]
    assert main(["search", *args, "study=rej", "objectives=[accuracy,params]"]) == 0
    trials = _study(tmp_path, "rej").get_trials()
    assert len(trials) == 11
    rejected = [t for t in trials if "rejected" in t.user_attrs]
    assert [t.number for t in rejected] == [1, 3, 5, 7, 9]
    assert all(t.state.name == "PRUNED" for t in rejected)
    assert rejected[0].user_attrs["rejected"] == "trial 1 is odd"
    assert all(t.values == [0.5, 1000 + t.number] for t in trials if t.number % 2 == 0)
    capsys.readouterr()
    assert main(["show", "study=rej", f"storage=sqlite:///{tmp_path}/s.db"]) == 0
    out = capsys.readouterr().out
    assert "trials: 6 complete, 5 rejected (1x trial 1 is odd;" in out


def test_five_real_failures_in_a_row_stop_the_search(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    args = [*NASNET, "evaluator=tests._plugins:AlwaysFails", "trials=20"]
    assert main(["search", *args, f"storage=sqlite:///{tmp_path}/s.db"]) == 2
    err = capsys.readouterr().err
    assert "5 trials failed in a row; last error: the lookup server is down" in err
    trials = _study(tmp_path, "nasnet-digits").get_trials()
    assert [t.user_attrs["error"] for t in trials] == ["the lookup server is down"] * 5


def test_a_plugin_evaluator_needs_no_data_and_records_where_it_came_from(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    def no_data(*_: object, **__: object) -> None:
        raise AssertionError("the data set was loaded for an evaluator without data")

    monkeypatch.setattr("nas.data._load.load_dataset", no_data)
    url = f"sqlite:///{tmp_path}/s.db"
    assert main(["search", *NASNET, f"evaluator={REJECT}", "trials=2", f"storage={url}"]) == 0
    study = _study(tmp_path, "nasnet-digits")
    assert study.user_attrs[store.ATTR_IDENTITY]["evaluator"] == REJECT
    assert study.user_attrs[store.ATTR_IDENTITY]["scoring"] == {"score": 0.5}


def test_presets_from_the_users_folder(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    folder = tmp_path / "presets"
    folder.mkdir()
    (folder / "nasnet.yaml").write_text("trials: 7\nmodel:\n  init_channels: 6\n")
    (folder / "quick.yaml").write_text("epochs: 1\n")
    monkeypatch.setenv("NAS_PRESET_PATH", str(folder))
    config = compose_search(["space=nasnet", "preset=quick"])
    assert (config.trials, config.model.init_channels, config.epochs) == (7, 6, 1)
    (tmp_path / "mine.yaml").write_text("epochs: 5\n")
    assert compose_search([f"preset={tmp_path / 'mine.yaml'}"]).epochs == 5
    with pytest.raises(ConfigError, match="No preset 'nope'"):
        compose_search(["preset=nope"])
    (tmp_path / "bad.yaml").write_text("epochs: [1\n")
    with pytest.raises(ConfigError, match="is not valid YAML"):
        compose_search([f"preset={tmp_path / 'bad.yaml'}"])


def test_a_search_by_gradient_stores_the_derived_architecture(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    """The evaluator learns the architecture and derives it; the trial keeps it like a
    sampled one (show reads it), and the strategy sampled nothing."""
    url = f"sqlite:///{tmp_path}/s.db"
    args = ["space=tests._plugins:PickOneOp", "evaluator=tests._plugins:LearnTheOp"]
    assert main(["search", *args, "trials=2", f"storage={url}", "study=grad"]) == 0
    trials = _study(tmp_path, "grad").get_trials()
    assert [t.user_attrs["arch"] for t in trials] == [{"op": 2}, {"op": 2}]
    assert all(t.params == {} and t.values == [1.0] for t in trials)
    assert all(isinstance(t.user_attrs["seed"], int) for t in trials)
    capsys.readouterr()
    assert main(["show", "study=grad", f"storage={url}"]) == 0
    assert "{'op': 2}" in capsys.readouterr().out


def test_the_contract_suite_checks_a_differentiable_space(tmp_path: Path) -> None:
    from search_spaces.contract import check_space
    from tests._plugins import PickOneOp

    assert check_space(PickOneOp(), tmp_path) == [
        "round_trip",
        "sampling_uses_only_the_trial",
        "decode_rejects_garbage",
        "extract_equals_active",
        "derived_architecture",
    ]


@pytest.mark.parametrize("reuse", [True, False])
def test_an_architecture_evaluated_before_takes_its_result(tmp_path: Path, reuse: bool) -> None:
    """Three architectures, twelve trials: with reuse each is evaluated once, and the other
    trials take the first result, marked reused_from; without, all twelve are evaluated."""
    from tests._plugins import CountEvaluations

    CountEvaluations.evaluated.clear()
    url = f"sqlite:///{tmp_path}/s.db"
    args = [
        "space=tests._plugins:PickOneOp",
        "evaluator=tests._plugins:CountEvaluations",
        "strategy=random",
        "pruner=none",
        "trials=12",
        f"reuse_results={str(reuse).lower()}",
        f"storage={url}",
    ]
    assert main(["search", *args]) == 0
    trials = _study(tmp_path, "pick_one_op-digits").get_trials()
    first = {}
    for trial in trials:
        first.setdefault(trial.params["op"], trial.number)
    if not reuse:
        assert CountEvaluations.evaluated == list(range(12))
        assert not any("reused_from" in t.user_attrs for t in trials)
        return
    assert CountEvaluations.evaluated == sorted(first.values())
    for trial in trials:
        earlier = first[trial.params["op"]]
        if trial.number != earlier:
            assert trial.user_attrs["reused_from"] == earlier
            assert trial.values == trials[earlier].values
            assert trial.user_attrs["params"] == trials[earlier].user_attrs["params"]


def test_coarse_to_fine_refuses_a_space_without_skeleton_params(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    url = f"sqlite:///{tmp_path}/s.db"
    assert main(["search", *NASNET, "strategy=coarse_to_fine", f"storage={url}"]) == 2
    err = capsys.readouterr().err
    assert "needs a space with skeleton_params()" in err and err.count("\n") == 1


@pytest.mark.e2e
def test_a_worker_finds_the_plugins_the_study_was_created_with(tmp_path: Path) -> None:
    """The study records the module:Class names; `nas worker` (a new process) loads them."""
    import os
    import subprocess
    import sys

    url = f"sqlite:///{tmp_path}/s.db"
    args = [*NASNET, f"evaluator={REJECT}", "objectives=[accuracy,params]", f"storage={url}"]
    assert main(["search", *args, "trials=2", "study=w"]) == 0
    _study(tmp_path, "w").set_user_attr(store.ATTR_TRIALS, 4)  # as `trials=4` would record
    root = Path(__file__).resolve().parents[1]
    done = subprocess.run(
        [sys.executable, "-m", "nas", "worker", "study=w"],
        env={**os.environ, "NAS_STORAGE": url, "PYTHONPATH": str(root)},
        capture_output=True,
        text=True,
        timeout=600,
    )
    assert done.returncode == 0, done.stderr
    trials = _study(tmp_path, "w").get_trials()
    assert len(trials) == 4 and trials[3].user_attrs.get("rejected") == "trial 3 is odd"
