"""The search loop: ask the store for a trial, sample, train, tell; resumable at any point.

One trial's flow: ``study.ask()`` -> ``space.sample(trial)`` -> build and train from
scratch (reporting every epoch so a pruner may stop it) -> ``study.tell`` with the
objectives. Everything a later run needs lives in the study store.
"""

from __future__ import annotations

import time
import warnings
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from nas import store
from nas.artifacts import (
    Artifacts,
    fetch_for_resume,
    open_artifacts,
    publish_checkpoint,
    published_checkpoint,
    wait_for_supernet,
)
from nas.config import SearchConfig, study_name, to_container
from nas.errors import ConfigError, NasError, StudyError
from nas.progress import SearchReporter, create_reporter
from nas.runners import (
    StandaloneRunner,
    SupernetRunner,
    TrialRunner,
    supernet_checkpoint_path,
    train_or_resume_supernet,
)
from nas.strategies import create_pruner, create_sampler, directions

if TYPE_CHECKING:
    import optuna
    import torch

    from evaluators.distributed import DataParallelContext
    from nas.data import DatasetSplits
    from search_spaces.base import SearchSpace

MAX_CONSECUTIVE_FAILURES = 5


@dataclass
class SearchOutcome:
    study: optuna.Study
    finished: int  # finished trials (complete + pruned) now in the study
    interrupted: bool
    storage_url: str


class _BudgetWaiter:
    """Waits while other workers run the last trials of the budget.

    A dead worker's trial is failed after the store's grace period and queued again,
    so waiting a little longer than that lets this worker pick the retry up. A study
    whose running trials show no change for ``patience`` seconds (trials left RUNNING
    by a version without heartbeats) is left alone instead of waited on forever.
    """

    POLL_S = 1.0

    def __init__(self, grace_period: float, heartbeat_interval: float) -> None:
        self.patience = grace_period + 3 * heartbeat_interval
        self._last: store.Budget | None = None
        self._since = time.monotonic()

    def wait(self, now: store.Budget) -> bool:
        """Sleep one poll; False once nothing has changed for ``patience`` seconds."""
        if now != self._last:
            self._last, self._since = now, time.monotonic()
        if time.monotonic() - self._since > self.patience:
            return False
        time.sleep(self.POLL_S)
        return True


def best_summary(study: optuna.Study) -> str:
    """A short 'best so far' text for progress displays."""
    complete = [t for t in study.get_trials(deepcopy=False) if t.state.name == "COMPLETE"]
    if not complete:
        return "-"
    if len(study.directions) == 1:
        best = study.best_trial
        return f"{best.value:.4f} (trial {best.number})"
    return f"{len(study.best_trials)} Pareto-optimal"


def _open_study(
    config: SearchConfig,
    storage: optuna.storages.RDBStorage,
    space: SearchSpace[Any],
    sampler_stream: int = 0,
) -> optuna.Study:
    """Create the study, or resume it after checking it was made with the same settings."""
    import optuna

    name = study_name(config)
    identity = store.study_identity(config, config.model)
    existing = name in store.study_names(storage)
    n_trials = 0
    if existing:
        probe = optuna.load_study(study_name=name, storage=storage)
        store.check_compatible(probe, identity)
        n_trials = len(probe.get_trials(deepcopy=False))
    study = optuna.create_study(
        study_name=name,
        storage=storage,
        load_if_exists=True,
        directions=directions(config.objectives),
        sampler=create_sampler(config, resumed_trials=n_trials, space=space, stream=sampler_stream),
        pruner=create_pruner(config),
    )
    # Every search may raise the total; workers that join later read it from here.
    study.set_user_attr(store.ATTR_TRIALS, config.trials)
    if not existing:
        study.set_user_attr(store.ATTR_SPACE, config.space)
        study.set_user_attr(store.ATTR_IDENTITY, identity)
        recorded = to_container(config)
        if recorded["storage"]:  # never store a database password in the database
            recorded["storage"] = store.redact(recorded["storage"])
        study.set_user_attr(store.ATTR_CONFIG, recorded)
    return study


def _requeue_interrupted(study: optuna.Study) -> int:
    """Give each trial that Ctrl-C stopped one more run with the same architecture and seed."""
    trials = study.get_trials(deepcopy=False)
    retried = {t.user_attrs.get("retry_of") for t in trials}
    count = 0
    for trial in trials:
        if (
            trial.state.name == "FAIL"
            and trial.user_attrs.get("interrupted")
            and trial.number not in retried
        ):
            study.enqueue_trial(
                trial.params,
                user_attrs={"retry_of": trial.number, "seed": trial.user_attrs.get("seed")},
            )
            count += 1
    return count


def _check_training_settings(config: SearchConfig) -> None:
    from evaluators import SupernetSettings, TrainSettings

    try:
        if config.evaluator == "supernet":
            SupernetSettings(**to_container(config.supernet))
        else:
            TrainSettings(epochs=config.epochs, **to_container(config.train))
    except ConfigError as error:
        group = "supernet" if config.evaluator == "supernet" else "train"
        raise ConfigError(f"Bad {group}.* setting: {error}") from None


def _create_runner(
    config: SearchConfig,
    opened: _OpenedSearch,
    reporter: SearchReporter,
    echo: Any,
    *,
    trains_supernet: bool,
    parallel: DataParallelContext | None = None,
) -> TrialRunner:
    """The trial runner for ``config.evaluator``. For supernets: a trainer trains (or
    resumes) and publishes the supernet first (with ``parallel``, every torchrun process
    trains and the main one publishes); a worker waits for the published one."""
    from search_spaces.base import WeightSharingSpace

    study, space, artifacts = opened.study, opened.space, opened.artifacts
    context = (config, space, opened.data, opened.device, artifacts, reporter)
    if config.evaluator == "standalone":
        return StandaloneRunner(*context)
    if not isinstance(space, WeightSharingSpace):
        raise ConfigError(
            f"evaluator=supernet needs a weight-sharing space (bignas); space={config.space} "
            "has no supernet. Use evaluator=standalone."
        )
    checkpoint = supernet_checkpoint_path(artifacts.local_dir, study.study_name)
    if trains_supernet:
        main = parallel is None or parallel.is_main
        if main and fetch_for_resume(study, artifacts, checkpoint):
            echo(f"resuming the supernet from its published checkpoint ({artifacts.location})")
        if parallel is not None and parallel.distributed:
            parallel.barrier()  # every process resumes from the file the main one fetched

        def publish(epoch: int) -> None:
            publish_checkpoint(study, artifacts, checkpoint, epoch)

        supernet, reports = train_or_resume_supernet(
            config,
            space,
            opened.data,
            opened.device,
            checkpoint,
            reporter,
            parallel,
            on_trained_epoch=publish if main else None,
        )
        if main and reports:
            published = published_checkpoint(study)
            if published is None or published[1] < len(reports):
                # Trained before artifact stores existed, or the last upload failed.
                publish(len(reports))
    else:
        checkpoint = wait_for_supernet(
            study, artifacts, config.supernet.epochs, checkpoint.name, echo
        )
        supernet, reports = train_or_resume_supernet(
            config, space, opened.data, opened.device, checkpoint, reporter, require_finished=True
        )
    # The supernet's training curve, for `nas show`.
    curve = [{k: float(v) for k, v in vars(r).items() if k != "resumed"} for r in reports]
    study.set_user_attr(store.ATTR_SUPERNET, curve)
    return SupernetRunner(*context, supernet=supernet)


@dataclass
class _OpenedSearch:
    study: optuna.Study
    space: SearchSpace[Any]
    data: DatasetSplits
    device: torch.device
    artifacts: Artifacts
    url: str


def _open_search(
    config: SearchConfig, echo: Any, *, requeue: bool, sampler_stream: int = 0
) -> _OpenedSearch:
    """Everything before the first trial: space, data, device, store and study."""
    import optuna

    from nas.data import load_dataset
    from nas.device import resolve_device
    from search_spaces import create_space

    warnings.filterwarnings("ignore", category=optuna.exceptions.ExperimentalWarning)
    # nas records heartbeats itself (store.Heartbeat) in its ask/tell loop.
    warnings.filterwarnings("ignore", message="Heartbeat of storage is supposed to be used")
    # A retried trial inherits its dead run's reports; the same seed reports the same values.
    warnings.filterwarnings("ignore", message="The reported value is ignored because")
    optuna.logging.set_verbosity(optuna.logging.WARNING)
    space = create_space(config.space, **config.model)
    _check_training_settings(config)  # bad values fail before the store is touched
    device = resolve_device(config.device)
    data = load_dataset(config.dataset, data_dir=config.data_dir, image_size=config.image_size)
    url = config.storage or store.default_storage_url()
    storage = store.open_storage(
        url, heartbeat_interval=config.heartbeat_interval, grace_period=config.grace_period
    )
    artifacts = open_artifacts(config.artifacts, url)
    if config.artifacts is not None:
        # Recorded with the study as resolved, so that workers elsewhere find the same store.
        config.artifacts = artifacts.location
    study = _open_study(config, storage, space, sampler_stream)
    study.set_user_attr(store.ATTR_DATA_SPEC, vars(data.spec).copy())

    location = store.sqlite_path(url)
    echo(
        f"store: {location.resolve() if location else store.redact(url)}  study: {study.study_name}"
    )
    requeued = _requeue_interrupted(study) if requeue else 0
    if requeued:
        echo(f"retrying {requeued} trial(s) interrupted in an earlier run")
    if len(config.objectives) > 1 and config.pruner not in ("none", "lcpfn"):
        echo(
            f"note: pruner={config.pruner} is not applied: Optuna pruners need a single "
            "objective; pruner=lcpfn works with several."
        )
    return _OpenedSearch(study, space, data, device, artifacts, url)


def prepare_study(
    config: SearchConfig, echo: Any = print, parallel: DataParallelContext | None = None
) -> optuna.Study:
    """Create or resume the study and train its supernet if it has one, running no trial;
    what a pool of workers needs done once before they start. With ``parallel``
    (torchrun), every process calls this: the main one opens the study first, then all
    train the supernet together."""
    main = parallel is None or parallel.is_main
    if parallel is not None and not main:
        parallel.barrier()  # wait for the main process to create the study
    opened = _open_search(config, echo, requeue=main)
    if parallel is not None and main:
        parallel.barrier()
    reporter = create_reporter()
    try:
        _create_runner(config, opened, reporter, echo, trains_supernet=True, parallel=parallel)
    finally:
        reporter.close()
    return opened.study


def run_search(
    config: SearchConfig,
    reporter: SearchReporter | None = None,
    echo: Any = print,
    *,
    requeue: bool = True,
    new_trials: int | None = None,
    trains_supernet: bool = True,
    sampler_stream: int = 0,
) -> SearchOutcome:
    """Run (or resume) the study described by ``config`` until it holds ``config.trials``
    finished trials, the timeout passes, or the user presses Ctrl-C.

    Several processes may run this on one study at once (``nas worker``); ``requeue``
    (queue the trials Ctrl-C interrupted in an earlier run) is then done once, by
    whoever prepared the study. ``new_trials`` stops after asking for that many trials
    (a Ray Tune trial runs exactly one). A worker (``trains_supernet=False``) evaluates
    the study's published supernet, waiting for it if it is still training elsewhere.
    Each of several workers gives its own ``sampler_stream`` (see ``create_sampler``).
    """
    import optuna
    import torch

    opened = _open_search(config, echo, requeue=requeue, sampler_stream=sampler_stream)
    study, url = opened.study, opened.url

    reporter = reporter or create_reporter()
    finished = len(store.finished_trials(study))
    started = time.monotonic()
    failures_in_row = 0
    interrupted = False
    waiter = _BudgetWaiter(config.grace_period, config.heartbeat_interval)
    try:
        runner = _create_runner(config, opened, reporter, echo, trains_supernet=trains_supernet)
        reporter.start(
            study=study.study_name, done=finished, total=config.trials, best=best_summary(study)
        )
        asked = 0
        next_stale_check = 0.0
        while new_trials is None or asked < new_trials:
            if config.timeout is not None and time.monotonic() - started > config.timeout:
                echo(f"timeout of {config.timeout:g}s reached; {finished}/{config.trials} finished")
                break
            # Dead workers' trials -> queued again; a trial goes stale only after the
            # grace period, so looking once per heartbeat interval is soon enough.
            if time.monotonic() >= next_stale_check:
                optuna.storages.fail_stale_trials(study)
                next_stale_check = time.monotonic() + config.heartbeat_interval
            # Other workers share the budget: count from the store, never locally.
            now = store.budget(study)
            finished = now.finished
            if finished >= config.trials:
                break
            if finished + now.running >= config.trials:
                # The rest of the budget is running elsewhere; stay in case a worker dies.
                if not waiter.wait(now):
                    echo(
                        f"{now.running} trial(s) still RUNNING with no sign of life for "
                        f"{waiter.patience:.0f}s; leaving them to their workers."
                    )
                    break
                continue
            with store.ask_lock(url):
                trial = study.ask()
            asked += 1
            if store.is_surplus(study, trial, config.trials):
                trial.set_user_attr("surplus", True)  # another worker asked at the same time
                study.tell(trial, state=optuna.trial.TrialState.FAIL)
                continue
            with store.Heartbeat(study, trial):
                try:
                    values = runner.run(trial)
                except optuna.TrialPruned:
                    study.tell(trial, state=optuna.trial.TrialState.PRUNED)
                    outcome = "pruned"
                except KeyboardInterrupt:
                    trial.set_user_attr("interrupted", True)
                    study.tell(trial, state=optuna.trial.TrialState.FAIL)
                    interrupted = True
                    break
                except (NasError, torch.OutOfMemoryError) as error:
                    trial.set_user_attr("error", str(error).splitlines()[0][:500])
                    study.tell(trial, state=optuna.trial.TrialState.FAIL)
                    failures_in_row += 1
                    reporter.trial_finished(
                        trial.number, f"failed: {error}", done=finished, best=best_summary(study)
                    )
                    if failures_in_row >= MAX_CONSECUTIVE_FAILURES:
                        raise StudyError(
                            f"{failures_in_row} trials failed in a row; last error: {error}"
                        ) from None
                    continue
                except BaseException:
                    study.tell(trial, state=optuna.trial.TrialState.FAIL)
                    raise
                else:
                    study.tell(trial, values)
                    outcome = "complete: " + ", ".join(
                        f"{n}={v:.4g}" for n, v in zip(config.objectives, values, strict=True)
                    )
            failures_in_row = 0
            finished += 1  # for the display; the next loop recounts from the store
            reporter.trial_finished(trial.number, outcome, done=finished, best=best_summary(study))
    except KeyboardInterrupt:  # between trials: nothing is running, nothing to mark
        interrupted = True
    finally:
        reporter.close()
    finished = store.budget(study).finished  # other workers' trials included
    return SearchOutcome(study=study, finished=finished, interrupted=interrupted, storage_url=url)
