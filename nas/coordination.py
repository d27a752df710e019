"""Workers sharing one study's trial budget: whether, and which, trial runs next.

Every worker counts the study's finished trials from the store, never locally, so the
budget holds however many workers join or leave. A trial whose worker died (no
heartbeat for the grace period) is failed and queued again; a worker whose share of
the budget is running elsewhere waits a little longer than that, to pick such a retry
up. Two workers that ask at once are told apart by trial number (``is_surplus``).
"""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from nas import store
from nas.core.errors import StudyError

if TYPE_CHECKING:
    import optuna

FINISHED_STATES = ("COMPLETE", "PRUNED")
# Within this many trials of the budget, every new trial counts the study's trials first.
COUNT_NEAR_END = 32


@dataclass(frozen=True)
class Budget:
    """Where a study's trials stand, for workers sharing its trial budget."""

    finished: int  # complete + pruned
    running: int
    waiting: int  # queued retries


def _state_counts(study: optuna.Study, below_number: int | None = None) -> dict[str, int]:
    """Trials by state: counted by the database on nas's storage (reading every trial
    of a large study for each new one would grow with the study), else from the list."""
    storage = store.backend(study._storage)
    counter = getattr(storage, "count_trials", None)
    if counter is not None:
        counts: dict[str, int] = counter(study._study_id, below_number=below_number)
        return counts
    counted: dict[str, int] = {}
    for trial in study.get_trials(deepcopy=False):
        state = trial.state.name
        ahead = below_number is None or state not in ("RUNNING", "WAITING")
        if ahead or trial.number < below_number:  # type: ignore[operator]
            counted[state] = counted.get(state, 0) + 1
    return counted


def budget(study: optuna.Study) -> Budget:
    counts = _state_counts(study)
    return Budget(
        finished=sum(counts.get(s, 0) for s in FINISHED_STATES),
        running=counts.get("RUNNING", 0),
        waiting=counts.get("WAITING", 0),
    )


def read_trials_budget(study: optuna.Study) -> int:
    """The study's requested total of finished trials, validated."""
    value = study.user_attrs.get(store.ATTR_TRIALS)
    if type(value) is not int or value < 1:
        raise StudyError(
            f"Study '{study.study_name}' holds no valid trial budget "
            f"({store.ATTR_TRIALS}={value!r}); run `nas search ... trials=N` on it once to set one."
        )
    return value


def is_surplus(study: optuna.Study, trial: optuna.Trial, trials: int) -> bool:
    """Whether ``trial`` would exceed the budget of ``trials`` finished trials.

    Workers check the budget before ``ask``, but two may ask at once. The trials ahead
    of this one (finished, or running or queued with a smaller number) have the first
    claim, so exactly one of two racing workers learns it is one too many. Far from the
    end of the budget (fewer trials of any state numbered before this one) no count is
    needed: a trial that started later and finished first counted this one ahead of it.
    """
    if trial.number < trials - COUNT_NEAR_END:
        return False
    counts = _state_counts(study, below_number=trial.number)
    ahead = sum(counts.get(s, 0) for s in (*FINISHED_STATES, "RUNNING", "WAITING"))
    return ahead >= trials


class BudgetWaiter:
    """Waits while other workers run the last trials of the budget.

    A dead worker's trial is failed after the store's grace period and queued again,
    so waiting a little longer than that lets this worker pick the retry up. A study
    whose running trials show no change for ``patience`` seconds (trials left RUNNING
    by a version without heartbeats) is left alone instead of waited on forever.
    """

    POLL_S = 1.0

    def __init__(self, grace_period: float, heartbeat_interval: float) -> None:
        self.patience = grace_period + 3 * heartbeat_interval
        self._last: Budget | None = None
        self._since = time.monotonic()

    def wait(self, now: Budget) -> bool:
        """Sleep one poll; False once nothing has changed for ``patience`` seconds."""
        if now != self._last:
            self._last, self._since = now, time.monotonic()
        if time.monotonic() - self._since > self.patience:
            return False
        time.sleep(self.POLL_S)
        return True


class TrialCoordinator:
    """Hands out the next trial of a shared study, or None when this worker should stop.

    Args:
        study: The shared study.
        storage_url: Its store (SQLite stores serialise the claim of queued trials).
        trials: The budget of finished trials.
        timeout: Seconds after which no new trial starts; None for no limit.
        heartbeat_interval: How often dead workers' trials are looked for.
        grace_period: Silence after which a trial's worker counts as dead.
        echo: Where to say why the loop stops early.
    """

    def __init__(
        self,
        study: optuna.Study,
        storage_url: str,
        *,
        trials: int,
        timeout: float | None,
        heartbeat_interval: float,
        grace_period: float,
        echo: Callable[[str], Any] = print,
    ) -> None:
        self.study, self._url, self.trials, self._timeout = study, storage_url, trials, timeout
        self._interval, self._echo = heartbeat_interval, echo
        self._waiter = BudgetWaiter(grace_period, heartbeat_interval)
        self._grace_period = grace_period
        self._announced: Budget | None = None  # the last wait said, so it is said once
        self._started = time.monotonic()
        self._next_stale_check = 0.0
        self.finished = budget(study).finished

    def next_trial(self) -> optuna.Trial | None:
        """Ask the study for a trial within the budget, waiting while the rest runs
        elsewhere; None when the budget is met, the timeout passed or waiting is futile."""
        import optuna

        while True:
            if self._timeout is not None and time.monotonic() - self._started > self._timeout:
                self._echo(
                    f"timeout of {self._timeout:g}s reached; {self.finished}/{self.trials} finished"
                )
                return None
            # Dead workers' trials -> queued again; a trial goes stale only after the
            # grace period, so looking once per heartbeat interval is soon enough. The
            # budget is counted then too, and at every trial near its end; in between,
            # this worker's own count stands (others only add to it, and is_surplus
            # below catches a trial too many).
            counted = time.monotonic() >= self._next_stale_check
            if counted:
                optuna.storages.fail_stale_trials(self.study)
                self._next_stale_check = time.monotonic() + self._interval
            if counted or self.trials - self.finished <= COUNT_NEAR_END:
                now = budget(self.study)
            else:
                now = Budget(finished=self.finished, running=0, waiting=0)
            self.finished = now.finished
            if now.finished >= self.trials:
                return None
            if now.finished + now.running >= self.trials:
                # The rest of the budget is running elsewhere; stay in case a worker dies.
                if now != self._announced:
                    self._announced = now
                    self._echo(
                        f"waiting for {now.running} trial(s) RUNNING elsewhere (another worker, "
                        f"or one that died: its trial is retried here after "
                        f"{self._grace_period:g}s without a heartbeat)"
                    )
                if self._waiter.wait(now):
                    continue
                self._echo(
                    f"{now.running} trial(s) still RUNNING with no sign of life for "
                    f"{self._waiter.patience:.0f}s; leaving them to their workers."
                )
                return None
            with store.ask_lock(self._url):
                trial = self.study.ask()
            if not is_surplus(self.study, trial, self.trials):
                return trial
            trial.set_user_attr("surplus", True)  # another worker asked at the same time
            self.study.tell(trial, state=optuna.trial.TrialState.FAIL)
            self._next_stale_check = 0.0  # count exactly from now on
