"""The shared trial budget: racing workers, counting only near the end, one heartbeat
thread per worker."""

from __future__ import annotations

import time
from pathlib import Path

import optuna
import pytest
import sqlalchemy

from nas import coordination, store
from nas.coordination import COUNT_NEAR_END, is_surplus

pytestmark = pytest.mark.filterwarnings("ignore:Heartbeat of storage:UserWarning")


def _study(tmp_path: Path, **storage_options: int) -> optuna.Study:
    storage = store.open_storage(f"sqlite:///{tmp_path / 'nas.db'}", **storage_options)
    return optuna.create_study(study_name="budget", storage=storage)


def test_of_two_racing_trials_at_the_end_exactly_the_later_is_surplus(tmp_path: Path) -> None:
    study = _study(tmp_path)
    for _ in range(3):
        study.tell(study.ask(), 1.0)
    first, second = study.ask(), study.ask()  # two workers asking at once
    assert not is_surplus(study, first, trials=4)
    assert is_surplus(study, second, trials=4)
    study.tell(first, 1.0)
    assert is_surplus(study, second, trials=4)


def test_far_from_the_end_no_trial_is_counted(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    study = _study(tmp_path)
    trial = study.ask()
    counted: list[int | None] = []
    real_counts = coordination._state_counts

    def counting(study: optuna.Study, below_number: int | None = None) -> dict[str, int]:
        counted.append(below_number)
        return real_counts(study, below_number)

    monkeypatch.setattr(coordination, "_state_counts", counting)
    assert not is_surplus(study, trial, trials=COUNT_NEAR_END + 1)
    assert counted == []
    assert not is_surplus(study, trial, trials=COUNT_NEAR_END)
    assert counted == [0]


def _heartbeats(study: optuna.Study) -> dict[int, object]:
    storage = store.backend(study._storage)
    query = sqlalchemy.text("SELECT trial_id, heartbeat FROM trial_heartbeats")
    with storage.engine.connect() as connection:
        rows = connection.execute(query)
        return {trial_id: beat for trial_id, beat in rows}


def test_one_heartbeat_thread_beats_for_the_running_trial_only(tmp_path: Path) -> None:
    study = _study(tmp_path, heartbeat_interval=1, grace_period=3)
    first, second = study.ask(), study.ask()
    with store.Heartbeat(study) as heartbeat:
        with heartbeat.watch(first):
            time.sleep(0.3)
        assert set(_heartbeats(study)) == {first._trial_id}
        beat_of_first = _heartbeats(study)[first._trial_id]
        with heartbeat.watch(second, first_beat=False):
            time.sleep(0.3)
            assert second._trial_id not in _heartbeats(study)  # the first beat waits
            time.sleep(1.2)
            assert second._trial_id in _heartbeats(study)
        thread = heartbeat._thread
    assert not thread.is_alive()
    assert _heartbeats(study)[first._trial_id] == beat_of_first  # none after watch left it


def test_waiting_on_a_running_trial_says_what_for_once(tmp_path: Path) -> None:
    """Issue 17: after a SIGKILLed worker the next run waited the grace period in silence."""
    study = _study(tmp_path, heartbeat_interval=1, grace_period=2)
    study.tell(study.ask(), 1.0)
    dead = study.ask()  # RUNNING in a worker that beat once, then was SIGKILLed
    store.backend(study._storage).record_heartbeat(dead._trial_id)
    said: list[str] = []
    coordinator = coordination.TrialCoordinator(
        study,
        f"sqlite:///{tmp_path / 'nas.db'}",
        trials=2,
        timeout=None,
        heartbeat_interval=1,
        grace_period=2,
        echo=said.append,
    )
    retry = coordinator.next_trial()  # the dead trial is failed and queued again
    assert retry is not None
    waits = [line for line in said if line.startswith("waiting for 1 trial(s) RUNNING")]
    assert len(waits) == 1 and "retried here after 2s without a heartbeat" in waits[0]
