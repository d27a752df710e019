"""End-to-end stories through the `nas` command: search, resume, inspect, export."""

from __future__ import annotations

import json
import os
import re
import sqlite3
import subprocess
import sys
import textwrap
from pathlib import Path
from typing import Any

import optuna
import pytest
import torch
from conftest import TINY_SEARCH, interrupt_search

from nas import store
from nas.artifacts import open_artifacts
from nas.cli import main
from nas.export import checked_state_dict, load_trial_weights

DB = Path("nas-runs/nas.db")


def run(capsys: pytest.CaptureFixture[str], *args: str) -> tuple[int, str, str]:
    code = main(list(args))
    out, err = capsys.readouterr()
    return code, out, err


def load(name: str = "nasnet-digits") -> optuna.Study:
    return optuna.load_study(study_name=name, storage=f"sqlite:///{DB}")


def test_named_lists_published_models_with_their_sizes(
    capsys: pytest.CaptureFixture[str],
) -> None:
    code, out, _ = run(capsys, "named", "space=nasnet", "model.preset=mobile")
    assert code == 0 and "nasnet-a" in out and "5.29M" in out and "563.6M" in out
    assert "normal[b0=sep_conv_5x5(1)" in out  # the description, not eaten as markup
    code, _, err = run(capsys, "named", "space=nasnet", "model.preset=medium")
    assert code == 2 and "model.preset" in err and err.count("\n") == 1
    code, out, _ = run(capsys, "named", "space=bignas")
    assert code == 0 and "names no architectures" in out


def test_export_named_writes_the_published_model_without_a_study(
    capsys: pytest.CaptureFixture[str], tmp_path: Path
) -> None:
    out_file = tmp_path / "bignas_s.py"
    args = ("export", "space=bignas", "named=bignas-s", "model.preset=imagenet")
    code, out, err = run(capsys, *args, "image_size=192", f"out={out_file}")
    assert code == 0, err
    assert "bignas-s" in out and out_file.is_file()
    namespace: dict[str, object] = {}
    exec(compile(out_file.read_text(), str(out_file), "exec"), namespace)
    network = namespace["build_network"]()  # type: ignore[operator]
    params = sum(p.numel() for p in network.parameters())
    assert abs(params / 4.5e6 - 1) < 0.01  # BigNASModel-S, as published
    code, _, err = run(capsys, "export", "space=bignas", "named=bignas-xs", "model.preset=imagenet")
    assert code == 2 and "Did you mean 'bignas-s'?" in err and err.count("\n") == 1


def test_spaces_lists_nasnet(capsys: pytest.CaptureFixture[str]) -> None:
    code, out, _ = run(capsys, "spaces")
    assert code == 0 and "nasnet" in out


@pytest.mark.e2e
def test_search_records_trials_and_resumes(capsys: pytest.CaptureFixture[str]) -> None:
    code, out, err = run(capsys, "search", "space=nasnet", *TINY_SEARCH)
    assert code == 0, err
    assert str(DB.resolve()) in out  # the store's location is printed
    assert "Best" in out and "2/2 trials finished" in out
    study = load()
    trials = study.get_trials()
    assert [t.state.name for t in trials] == ["COMPLETE", "COMPLETE"]
    for trial in trials:
        assert set(trial.user_attrs) >= {
            "arch",
            "arch_str",
            "seed",
            "curve",
            "params",
            "flops",
            "weights",
        }
        assert len(trial.user_attrs["curve"]) == 2
        assert trial.value == trial.user_attrs["curve"][-1]
        assert sorted(trial.intermediate_values) == [1, 2]
    assert study.user_attrs[store.ATTR_SPACE] == "nasnet"
    assert study.user_attrs[store.ATTR_CONFIG]["epochs"] == 2
    assert study.user_attrs[store.ATTR_DATA_SPEC] == {
        "in_channels": 1,
        "num_classes": 10,
        "image_size": 8,
    }
    before = {t.number: t.datetime_complete for t in trials}

    # Same command again: nothing left to do, nothing re-run.
    code, out, _ = run(capsys, "search", "space=nasnet", *TINY_SEARCH)
    assert code == 0 and "2/2 trials finished" in out
    assert len(load().get_trials()) == 2

    # A larger budget continues the same study; trial numbers continue.
    code, out, _ = run(capsys, "search", "space=nasnet", *TINY_SEARCH, "trials=3")
    assert code == 0 and "3/3 trials finished" in out
    trials = load().get_trials()
    assert [t.number for t in trials] == [0, 1, 2]
    assert {t.number: t.datetime_complete for t in trials[:2]} == before
    assert trials[2].user_attrs["seed"] not in {t.user_attrs["seed"] for t in trials[:2]}


@pytest.mark.e2e
def test_conflicting_resume_is_refused_and_nothing_lost(capsys: pytest.CaptureFixture[str]) -> None:
    assert run(capsys, "search", "space=nasnet", *TINY_SEARCH)[0] == 0
    code, _, err = run(capsys, "search", "space=nasnet", *TINY_SEARCH, "epochs=3")
    assert code == 2
    assert "epochs=2 (asked 3)" in err and "study=NEW_NAME" in err
    assert err.count("\n") == 1
    assert len(load().get_trials()) == 2
    # A new study name starts afresh next to the old one.
    code, _, _ = run(capsys, "search", "space=nasnet", *TINY_SEARCH, "epochs=1", "study=short")
    assert code == 0
    code, out, _ = run(capsys, "studies")
    assert code == 0 and "nasnet-digits" in out and "short" in out


@pytest.mark.e2e
def test_reports_within_epochs_fill_the_curve_and_fix_the_study(
    capsys: pytest.CaptureFixture[str],
) -> None:
    args = ["search", "space=nasnet", *TINY_SEARCH, "trials=1", "reports_per_epoch=3"]
    code, out, err = run(capsys, *args, "pruner=lcpfn")
    assert code == 0, err
    assert "epoch 6/6" in out
    (trial,) = load().get_trials()
    assert len(trial.user_attrs["curve"]) == 6 and sorted(trial.intermediate_values) == [
        *range(1, 7)
    ]
    code, _, err = run(capsys, *args[:-1], "pruner=lcpfn")  # once per epoch: another study
    assert code == 2 and "reports_per_epoch" in err and err.count("\n") == 1


@pytest.mark.e2e
def test_multi_objective_search_shows_pareto_front(capsys: pytest.CaptureFixture[str]) -> None:
    code, out, err = run(
        capsys,
        "search",
        "space=nasnet",
        *TINY_SEARCH,
        "trials=3",
        "objectives=[accuracy,params]",
        "strategy=nsga2",
    )
    assert code == 0, err
    assert "Pareto front" in out and "pruner=median is not applied" in out
    study = load()
    assert [d.name for d in study.directions] == ["MAXIMIZE", "MINIMIZE"]
    for trial in study.get_trials():
        assert trial.values[1] == trial.user_attrs["params"]
    code, out, _ = run(capsys, "show", "study=nasnet-digits")
    assert code == 0 and "Pareto front" in out


@pytest.mark.e2e
def test_pruned_trials_count_towards_the_budget(
    capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    # A pruner that stops every trial after its first report.
    monkeypatch.setattr(
        "nas.search.create_pruner", lambda config: optuna.pruners.ThresholdPruner(lower=2.0)
    )
    code, _, err = run(capsys, "search", "space=nasnet", *TINY_SEARCH)
    assert code == 0, err
    trials = load().get_trials()
    assert [t.state.name for t in trials] == ["PRUNED", "PRUNED"]
    assert all(len(t.user_attrs["curve"]) == 1 for t in trials)


@pytest.mark.e2e
def test_export_matches_the_trained_model(
    capsys: pytest.CaptureFixture[str], tmp_path: Path
) -> None:
    assert run(capsys, "search", "space=nasnet", *TINY_SEARCH)[0] == 0
    code, out, err = run(capsys, "export", "study=nasnet-digits", "trial=best", "out=net.py")
    assert code == 0, err
    assert Path("net.py").is_file() and Path("net.safetensors").is_file()

    study = load()
    best = max(study.get_trials(), key=lambda t: t.value)
    assert f"trial {best.number}" in out
    space = store.read_space(study)
    arch = store.read_architecture(space, best)
    spec = store.read_data_spec(study)
    weights = load_trial_weights(best, open_artifacts(None, f"sqlite:///{DB}"))
    assert weights is not None
    model = space.build(arch, spec)
    model.load_state_dict(weights)
    model.eval()
    x = torch.randn(spec.input_shape(5))
    torch.save(x, "x.pt")
    expected = model(x).detach()
    assert set(checked_state_dict(space, arch, spec, weights)) <= set(weights)

    script = textwrap.dedent("""
        import torch, net
        from safetensors.torch import load_file
        model = net.build_network()
        model.load_state_dict(load_file("net.safetensors"), strict=True)
        torch.save(model.eval()(torch.load("x.pt", weights_only=True)).detach(), "y.pt")
    """)
    subprocess.run(
        [sys.executable, "-c", script],
        check=True,
        cwd=tmp_path,
        env={**os.environ, "PYTHONPATH": str(tmp_path)},
    )
    actual = torch.load("y.pt", weights_only=True)
    assert (actual - expected).abs().max().item() <= 1e-5


@pytest.mark.e2e
def test_export_refuses_a_tampered_architecture(capsys: pytest.CaptureFixture[str]) -> None:
    assert run(capsys, "search", "space=nasnet", *TINY_SEARCH)[0] == 0
    # Finished trials are read-only through Optuna: tamper with the database directly.
    evil = json.dumps({"normal": "__import__('os').system('x')"})
    with sqlite3.connect(DB) as connection:
        connection.execute(
            "UPDATE trial_user_attributes SET value_json = ? WHERE key = 'arch'", (evil,)
        )
    code, _, err = run(capsys, "export", "study=nasnet-digits", "trial=0", "out=evil.py")
    assert code == 2 and "invalid architecture" in err
    assert not Path("evil.py").exists()


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (
            ["serch"],
            "unknown command 'serch'. Commands: spaces, evaluators, named, search, worker, "
            "studies, show, plot, dashboard, export, lcpfn. Did you mean 'search'?",
        ),
        (["search", "space=nasnet", "epoch=2"], "Did you mean 'epochs'?"),
        (["show", "study=nope"], "No study store at nas-runs/nas.db: run `nas search` first"),
        (["export", "study=nasnet-digits", "trial=x"], "No study"),
        (["search", "space=nasnet", "storage=notaurl"], "storage='notaurl' is not a SQLAlchemy"),
        (["search", "storage=me:pw@nohost"], "storage='<unparseable storage URL>' is not"),
        (
            ["search", "space=nasnet", "storage=sqlite:////proc/nas/x.db"],
            "Cannot create the folder /proc/nas for storage=sqlite:////proc/nas/x.db",
        ),
        (["search", "storage=sqlite:////etc/passwd/x.db"], "(/etc/passwd is a file)"),
        (["export", "study=s", "out=/proc/net.py"], "Cannot write out=/proc/net.py"),
        (["export", "study=s", "out=/tmp"], "out=/tmp is a folder; name a file in it"),
        (["export", "study=s", "out=/etc/passwd/net.py"], "/etc/passwd is a file, not a folder"),
        (["export", "space=nasnet", "named=nasnet-a", "out=/tmp"], "out=/tmp is a folder"),
        (["search", "space=nasnet", "dataset=cifar10", "data_dir=/nonexistent"], "/nonexistent"),
        (["search", "space=evonorm", "baselines=[evonorm-b1]"], "Did you mean 'evonorm-b0'?"),
        (["search", "space=nasnet", "baselines=[nasnet-a]"], "leave out baselines="),
        (["search", "space=nasnet", "threads=-1"], "threads must be an integer >= 0"),
    ],
)
def test_bad_input_is_one_line_without_traceback(
    capsys: pytest.CaptureFixture[str], args: list[str], message: str
) -> None:
    code, _, err = run(capsys, *args)
    assert code == 2
    assert message in err
    assert err.count("\n") == 1 and "Traceback" not in err


@pytest.mark.e2e
def test_ctrl_c_leaves_no_running_trial_and_resume_retries_it(tmp_path: Path) -> None:
    # Small batches make the one epoch long enough for a signal sent as the trial starts
    # to land inside it.
    args = ["space=nasnet", *TINY_SEARCH, "epochs=1", "train.batch_size=16"]
    err = interrupt_search(args, tmp_path, after="trial 0 started")
    assert "Resume with: nas search space=nasnet" in err

    study = load()
    (trial,) = study.get_trials()
    assert trial.state.name == "FAIL" and trial.user_attrs["interrupted"] is True

    done = subprocess.run(
        [sys.executable, "-m", "nas", "search", *args, "trials=1"],
        cwd=tmp_path,
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert "retrying 1 trial(s)" in done.stdout, done.stderr
    study = load()
    retry = study.get_trials()[1]
    assert retry.params == trial.params
    assert retry.user_attrs["seed"] == trial.user_attrs["seed"]
    assert retry.user_attrs["retry_of"] == 0
    assert all(t.state.name != "RUNNING" for t in study.get_trials())


def test_a_ctrl_c_whose_exception_was_lost_still_stops_the_search(
    capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    """Issue 17: a KeyboardInterrupt raised inside a weakref callback is printed as
    ignored and lost; the flag the Ctrl-C handler also sets stops the search at the next
    step, and the trial is retried like any interrupted one."""
    from nas.core.interrupt import request_stop
    from nas.trial import OptunaTrialSession

    report = OptunaTrialSession.report

    def report_then_lose_a_ctrl_c(session: OptunaTrialSession, *args: Any) -> None:
        report(session, *args)
        request_stop()  # what the handler did before its exception was swallowed

    monkeypatch.setattr(OptunaTrialSession, "report", report_then_lose_a_ctrl_c)
    code, out, err = run(capsys, "search", *TINY_SEARCH, "epochs=3")
    assert code == 130 and "Resume with: nas search" in err
    assert "Best" not in out and "┏" not in out  # no empty tables after an interrupt
    (trial,) = load().get_trials()
    assert trial.state.name == "FAIL" and trial.user_attrs["interrupted"] is True
    assert len(trial.user_attrs["curve"]) == 1  # stopped in its second epoch
    monkeypatch.setattr(OptunaTrialSession, "report", report)
    code, out, err = run(capsys, "search", *TINY_SEARCH, "epochs=3", "trials=1")
    assert code == 0 and "retrying 1 trial(s)" in out, err


@pytest.mark.e2e
@pytest.mark.parametrize(
    "after",
    ["store:", "trial 0 epoch 1/", "trial 1 started"],  # before, inside and between trials
)
def test_ctrl_c_at_any_point_stops_the_search_and_leaves_nothing_running(
    tmp_path: Path, after: str
) -> None:
    args = ["space=nasnet", *TINY_SEARCH, "epochs=2", "trials=3"]
    err = interrupt_search(args, tmp_path, after=after)
    assert "Traceback" not in err
    assert all(t.state.name != "RUNNING" for t in load().get_trials())


@pytest.mark.e2e
def test_timeout_stops_starting_new_trials(capsys: pytest.CaptureFixture[str]) -> None:
    # Long enough for the first trial to start on a busy machine, shorter than a trial.
    code, out, _ = run(capsys, "search", "space=nasnet", *TINY_SEARCH, "trials=5", "timeout=1")
    assert code == 0
    finished = re.search(r"timeout of 1s reached; (\d)/5 finished", out)
    assert finished is not None and 1 <= int(finished.group(1)) < 5, out
    assert len(load().get_trials()) == 1


def test_cuda_request_without_gpu_is_a_clear_error(
    capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(torch.cuda, "is_available", lambda: False)
    code, _, err = run(capsys, "search", "space=nasnet", *TINY_SEARCH, "device=cuda:1")
    assert code == 2
    assert "device=cuda:1 but torch sees no CUDA GPU. Use device=cpu or device=auto." in err
    assert not DB.exists()  # refused before anything was stored


def test_import_nas_is_light() -> None:
    code = (
        "import sys, nas, nas.cli, nas.config, search_spaces; "
        "heavy = {'torch', 'ray', 'optuna'} & set(sys.modules); "
        "assert not heavy, heavy"
    )
    subprocess.run([sys.executable, "-c", code], check=True)


def test_threads_is_what_torch_computes_with_and_is_recorded(
    capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    seen: list[int] = []
    real_fit = torch.nn.Module.train

    def spy(module: torch.nn.Module, mode: bool = True) -> torch.nn.Module:
        seen.append(torch.get_num_threads())
        return real_fit(module, mode)

    monkeypatch.setattr(torch.nn.Module, "train", spy)
    threads = torch.get_num_threads()
    try:
        code, out, err = run(capsys, "search", *TINY_SEARCH, "trials=1", "epochs=1", "threads=2")
    finally:
        torch.set_num_threads(threads)
    assert code == 0, err
    assert "torch threads: 2" in out
    assert seen and set(seen) == {2}
    assert load().user_attrs[store.ATTR_CONFIG]["threads"] == 2


def test_help_and_version(capsys: pytest.CaptureFixture[str]) -> None:
    code, out, _ = run(capsys, "--help")
    assert code == 0 and "nas search space=nasnet" in out
    code, out, _ = run(capsys, "--version")
    assert code == 0 and out.startswith("nas ")


def test_a_trial_edited_out_of_its_distribution_is_one_line(
    capsys: pytest.CaptureFixture[str], tmp_path: Path
) -> None:
    db = tmp_path / "edited.db"
    study = optuna.create_study(study_name="edited", storage=f"sqlite:///{db}")
    for _ in range(2):
        trial = study.ask()
        trial.suggest_categorical("op", ["conv", "pool"])
        study.tell(trial, 0.5)
    with sqlite3.connect(db) as connection:  # trial 1's index past the two choices
        connection.execute("UPDATE trial_params SET param_value = 99 WHERE trial_id = 2")

    def rows() -> list[tuple[object, ...]]:
        with sqlite3.connect(db) as connection:
            return connection.execute("SELECT * FROM trial_params ORDER BY param_id").fetchall()

    before = rows()
    for command in (["show"], ["export", "trial=0", f"out={tmp_path / 'net.py'}"]):
        code, _, err = run(capsys, *command, "study=edited", f"storage=sqlite:///{db}")
        assert code == 2 and err.count("\n") == 1 and "Traceback" not in err
        assert "Trial 1 of study 'edited' holds a value Optuna cannot decode" in err
    assert rows() == before  # nothing stored was changed


def test_show_and_studies_print_json_for_scripts(
    capsys: pytest.CaptureFixture[str], tmp_path: Path
) -> None:
    url = f"sqlite:///{tmp_path / 'nas.db'}"
    study = optuna.create_study(study_name="s", storage=url, directions=["maximize", "minimize"])
    study.set_user_attr(store.ATTR_SPACE, "nasnet")
    study.set_user_attr(store.ATTR_IDENTITY, {"objectives": ["accuracy", "flops"]})
    for accuracy, flops in ((0.9, 200.0), (0.8, 100.0), (0.7, 300.0)):
        trial = study.ask()
        trial.set_user_attr("arch_str", f"net{flops:.0f}")
        trial.set_user_attr("flops", flops)
        study.tell(trial, [accuracy, flops])
    code, out, _ = run(capsys, "show", "study=s", f"storage={url}", "format=json")
    shown = json.loads(out)
    assert code == 0 and shown["pareto_front"] and shown["summary"] == "trials: 3 complete"
    # The front, cheapest first; the dominated trial 2 is not on it.
    front = [(t["trial"], t["architecture"]) for t in shown["best"]]
    assert front == [(1, "net100"), (0, "net200")]
    assert shown["best"][0]["objectives"] == {"accuracy": 0.8, "flops": 100.0}
    assert shown["best"][0]["costs"]["flops"] == 100.0
    code, out, _ = run(capsys, "studies", f"storage={url}", "format=json")
    (row,) = json.loads(out)
    assert code == 0 and row["study"] == "s" and row["space"] == "nasnet"
    assert (row["complete"], row["best"]) == (3, {"trial": 0, "accuracy": 0.9})
    code, _, err = run(capsys, "studies", f"storage={url}", "format=xml")
    assert code == 2 and "format must be one of json, table" in err


def test_read_only_commands_never_create_or_alter_a_store(
    capsys: pytest.CaptureFixture[str], tmp_path: Path
) -> None:
    for args in (["studies"], ["show", "study=s"], ["export", "study=s"], ["plot", "study=s"]):
        code, _, err = run(capsys, *args, "storage=sqlite:///new.db")
        assert code == 2 and "No study store at new.db: run `nas search` first" in err, args
        assert err.count("\n") == 1
    code, _, err = run(capsys, "studies")  # the default store, before any search
    assert code == 2 and "No study store" in err
    assert list(tmp_path.iterdir()) == []

    other = tmp_path / "another-app.db"
    with sqlite3.connect(other) as db:
        db.execute("CREATE TABLE studies (id INTEGER)")  # a clashing name, not Optuna's
        db.execute("CREATE TABLE users (name TEXT)")
    before = other.read_bytes()
    for args in (["studies"], ["search", "space=nasnet", "trials=1"]):
        code, _, err = run(capsys, *args, f"storage=sqlite:///{other}")
        assert code == 2 and "is a database but not an Optuna study store" in err, args
    assert other.read_bytes() == before  # no tables added, still not in WAL mode
    (tmp_path / "notes.db").write_text("not a database")
    code, _, err = run(capsys, "studies", "storage=sqlite:///notes.db")
    assert code == 2 and "file is not a database" in err and err.count("\n") == 1


def test_a_refused_search_leaves_no_study_behind(
    capsys: pytest.CaptureFixture[str], tmp_path: Path
) -> None:
    code, _, err = run(capsys, "search", "space=nasnet", "evaluator=supernet", "study=evs")
    assert code == 2 and "needs a weight-sharing space" in err
    code, _, err = run(capsys, "search", "space=nasnet", "study=")
    assert code == 2 and "study= is empty" in err
    assert not (tmp_path / "nas-runs").exists()


def test_export_says_why_a_trial_has_no_weights(capsys: pytest.CaptureFixture[str]) -> None:
    code, _, err = run(capsys, "search", *TINY_SEARCH, "trials=1", "epochs=1", "keep_weights=false")
    assert code == 0, err
    code, out, err = run(capsys, "export", "study=nasnet-digits", "trial=0", "out=net.py")
    assert code == 0, err
    assert "kept no weights (its study ran with keep_weights=false): source only" in out


def test_spaces_print_plain_text(capsys: pytest.CaptureFixture[str]) -> None:
    code, out, _ = run(capsys, "spaces")
    assert code == 0 and "nasnet" in out and "``" not in out


def test_a_plain_rerun_after_more_trials_keeps_the_total(
    capsys: pytest.CaptureFixture[str],
) -> None:
    code, _, err = run(capsys, "search", *TINY_SEARCH, "epochs=1", "trials=3")
    assert code == 0, err
    code, out, err = run(capsys, "search", *TINY_SEARCH, "epochs=1")  # trials=2 there
    assert code == 0, err
    assert "already holds 3 finished trials, more than trials=2: nothing to run" in out
    assert "3/2" not in out
    assert load().user_attrs[store.ATTR_TRIALS] == 3  # a worker joining later runs none
