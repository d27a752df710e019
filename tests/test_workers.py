"""Many workers, one study: exact budgets, joining workers, and a SIGKILLed worker's trial."""

from __future__ import annotations

import signal
import time
from pathlib import Path

import optuna
import pytest

from nas.cli import main
from nas.config import compose_search
from nas.search import prepare_study
from tests.conftest import TINY_SEARCH, start_worker, wait_for

pytestmark = pytest.mark.e2e  # real searches, processes or servers: the end-to-end tier


def _study(url: str) -> optuna.Study:
    return optuna.load_study(study_name="nasnet-digits", storage=url)


def _states(study: optuna.Study) -> list[str]:
    return [t.state.name for t in study.get_trials()]


@pytest.mark.timeout(300)
def test_four_local_workers_finish_exactly_the_budget(
    capsys: pytest.CaptureFixture[str], postgres_url: str
) -> None:
    # On a server store (workers on SQLite: the SIGKILL test below and the benchmarks).
    storage_url = postgres_url
    search = ["search", "space=nasnet", *TINY_SEARCH, f"storage={storage_url}"]
    code = main([*search, "trials=8", "workers=4"])
    out = capsys.readouterr()
    assert code == 0, out.err
    study = _study(storage_url)
    states = _states(study)
    finished = [t for t in study.get_trials() if t.state.name in ("COMPLETE", "PRUNED")]
    assert len(finished) == 8 and "RUNNING" not in states, states
    # Trials beyond the budget only ever appear as 'surplus' failures, never run.
    for trial in study.get_trials():
        if trial.state.name == "FAIL":
            assert trial.user_attrs.get("surplus") is True
    assert "8/8 trials finished" in out.out
    # Workers get the URL through their environment: it never shows in the output.
    assert "nas-ci-secret" not in out.out + out.err


def test_worker_takes_only_its_own_keys(capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["worker", "study=x", "epochs=5"]) == 2
    err = capsys.readouterr().err
    assert "nas worker takes study, storage, device" in err and "epochs" in err
    assert main(["worker", "study=missing"]) == 2
    assert "No study store at nas-runs/nas.db" in capsys.readouterr().err  # none made


def test_a_joining_worker_uses_the_study_settings_and_latest_budget(
    capsys: pytest.CaptureFixture[str],
) -> None:
    url = "sqlite:///nas-runs/nas.db"
    assert main(["search", "space=nasnet", *TINY_SEARCH, "trials=1", "epochs=3"]) == 0
    # Raising the total records it; a worker that joins later runs up to it, with the
    # study's own settings (epochs=3), not the defaults.
    prepare_study(compose_search(["space=nasnet", *TINY_SEARCH, "trials=3", "epochs=3"]))
    assert main(["worker", "study=nasnet-digits", f"storage={url}"]) == 0
    assert "3 trials finished" in capsys.readouterr().out
    study = _study(url)
    assert _states(study) == ["COMPLETE"] * 3
    assert all(len(t.user_attrs["curve"]) == 3 for t in study.get_trials())


@pytest.mark.timeout(300)
def test_a_sigkilled_workers_trial_is_retried_and_the_study_completes(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    # SQLite: claiming the queued retry there needs nas's file lock (store.ask_lock).
    url = f"sqlite:///{tmp_path / 'nas.db'}"
    settings = ["space=nasnet", *TINY_SEARCH, "trials=3", "epochs=4", f"storage={url}"]
    settings += ["heartbeat_interval=1", "grace_period=3"]
    prepare_study(compose_search(settings))
    log = tmp_path / "victim.log"
    victim = start_worker(url, log)
    try:
        wait_for(log, "trial 0 epoch 1/4", victim)
        time.sleep(1.5)  # at least one heartbeat after the first report
    finally:
        victim.send_signal(signal.SIGKILL)
        victim.wait()
    killed = _study(url).get_trials()[0]
    assert killed.state.name == "RUNNING"

    assert main(["worker", "study=nasnet-digits", f"storage={url}"]) == 0
    study = _study(url)
    trials = study.get_trials()
    assert trials[0].state.name == "FAIL"
    finished = [t for t in trials if t.state.name in ("COMPLETE", "PRUNED")]
    assert len(finished) == 3 and "RUNNING" not in _states(study)
    (retry,) = [t for t in trials if t.system_attrs.get("failed_trial") == 0]
    assert retry.state.name == "COMPLETE"
    assert retry.params == killed.params
    assert retry.user_attrs["seed"] == killed.user_attrs["seed"]
    assert retry.user_attrs["arch"] == killed.user_attrs["arch"]
    # The killed trial keeps the curve it reported before it died.
    assert len(trials[0].user_attrs["curve"]) >= 1
    assert trials[0].intermediate_values


@pytest.mark.timeout(300)
def test_results_do_not_depend_on_the_number_of_workers(
    capsys: pytest.CaptureFixture[str],
) -> None:
    # Every process computes with threads=1 (the default), or float sums in another
    # order could flip one validation image.
    _run_with_1_and_2_workers(capsys)


def _run_with_1_and_2_workers(capsys: pytest.CaptureFixture[str]) -> None:
    url = "sqlite:///nas-runs/nas.db"
    curves = {}
    for workers in (1, 2):
        settings = ["space=nasnet", *TINY_SEARCH, "trials=3", f"study=w{workers}"]
        study = prepare_study(compose_search(settings))
        if workers == 1:  # the same three architectures, queued in both studies
            sampler = optuna.create_study(sampler=optuna.samplers.RandomSampler(seed=3))
            from search_spaces import create_space

            space = create_space("nasnet", cells_per_stage=1, init_channels=4)
            params = []
            for _ in range(3):
                trial = sampler.ask()
                space.sample(trial)
                params.append(trial.params)
                sampler.tell(trial, 0.0)
        for point in params:
            study.enqueue_trial(point)
        assert main(["search", *settings, f"workers={workers}"]) == 0
        done = optuna.load_study(study_name=f"w{workers}", storage=url).get_trials()
        curves[workers] = {t.number: (t.params, t.user_attrs["curve"]) for t in done}
    capsys.readouterr()
    # Each trial number has the same architecture and seed, so the same curve.
    assert curves[1] == curves[2]
