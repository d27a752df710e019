"""The search: open the study, prepare the evaluator, then run trials until the budget holds.

One trial's flow: the coordinator asks the store for a trial within the shared budget
(``nas.coordination``) -> ``space.sample(trial)`` -> the evaluator scores it, reporting
every epoch so a pruner may stop it -> the study is told the outcome (``nas.trial``).
Everything a later run needs lives in the study store, so a search resumes anywhere.
"""

from __future__ import annotations

import warnings
from dataclasses import asdict, dataclass
from typing import TYPE_CHECKING, Any

from nas import store
from nas.artifacts import Artifacts, StudyFiles, open_artifacts
from nas.config import SearchConfig, evaluator_settings, study_name, to_container
from nas.coordination import TrialCoordinator, budget
from nas.core.errors import ConfigError, StudyError, close_match_hint
from nas.core.interrupt import raise_if_interrupted, stop_on_ctrl_c
from nas.progress import InterruptCheckingReporter, SearchReporter, create_reporter
from nas.pruners import create_pruner
from nas.reuse import ResultCache
from nas.strategies import create_sampler, directions
from nas.trial import TrialRules, run_trial

if TYPE_CHECKING:
    import optuna
    import torch

    from evaluators.base import Evaluator
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


def best_summary(study: optuna.Study) -> str:
    """A short 'best so far' text for progress displays."""
    from nas.report import best_trials

    best = best_trials(study, top=1)  # the whole front when there are several objectives
    if not best:
        return "-"
    if len(study.directions) == 1:
        return f"{best[0].values[0]:.4f} (trial {best[0].number})"
    return f"{len(best)} Pareto-optimal"


def study_identity(config: SearchConfig) -> dict[str, Any]:
    """Settings that define what a study's results mean; resuming must not change them."""
    from evaluators import get_evaluator_class

    identity: dict[str, Any] = {
        "space": config.space,
        "dataset": config.dataset,
        "objectives": list(config.objectives),
        "model": asdict(config.model),
        "evaluator": config.evaluator,
        "constraints": to_container(config.constraints),
    }
    evaluator_class = get_evaluator_class(config.evaluator)
    identity.update(evaluator_class.identity(evaluator_settings(config), epochs=config.epochs))
    if config.reports_per_epoch != 1:  # absent at 1, so older studies keep their identity
        identity["reports_per_epoch"] = config.reports_per_epoch
    return identity


def _open_study(
    config: SearchConfig,
    storage: optuna.storages.RDBStorage,
    space: SearchSpace[Any],
    sampler_stream: int = 0,
) -> optuna.Study:
    """Create the study, or resume it after checking it was made with the same settings."""
    import optuna

    name = study_name(config)
    identity = study_identity(config)
    existing = name in store.study_names(storage)
    n_trials = 0
    if existing:
        probe = optuna.load_study(study_name=name, storage=storage)
        store.check_trials_readable(probe, storage)
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
    # Every search may raise the total; workers that join later read it from here. A
    # rerun asking for fewer than the study already holds (a plain rerun after trials=80)
    # keeps the larger total: lowering it would change nothing but the count shown.
    stored = study.user_attrs.get(store.ATTR_TRIALS)
    already = budget(study).finished if existing else 0
    if not (type(stored) is int and stored > config.trials and already >= config.trials):
        study.set_user_attr(store.ATTR_TRIALS, config.trials)
    if not existing:
        study.set_user_attr(store.ATTR_SPACE, config.space)
        study.set_user_attr(store.ATTR_IDENTITY, identity)
        recorded = to_container(config)
        if recorded["storage"]:  # never store a database password in the database
            recorded["storage"] = store.redact(recorded["storage"])
        study.set_user_attr(store.ATTR_CONFIG, recorded)
    return study


def named_baselines(space: SearchSpace[Any], names: list[str]) -> dict[str, Any]:
    """The named architectures ``names`` of ``space``; ``ConfigError`` for an unknown one."""
    named = space.named_architectures()
    for name in names:
        if name not in named:
            known = ", ".join(named) or "none"
            raise ConfigError(
                f"baselines: '{name}' is not a named architecture of {space.name} (it names "
                f"{known}; see nas named space={space.name})." + close_match_hint(name, named)
            )
    if names:
        space.suggestions(next(iter(named.values())))  # refuses a space that cannot enqueue
    return {name: named[name] for name in names}


def _enqueue_baselines(study: optuna.Study, space: SearchSpace[Any], named: dict[str, Any]) -> None:
    """Queue each named baseline the study does not hold yet, as a trial marked ``baseline``."""
    held = {t.user_attrs.get("baseline") for t in study.get_trials(deepcopy=False)}
    for name, arch in named.items():
        if name not in held:
            study.enqueue_trial(space.suggestions(arch), user_attrs={"baseline": name})


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
            kept = {k: v for k, v in trial.user_attrs.items() if k == "baseline"}
            study.enqueue_trial(
                trial.params,
                user_attrs={"retry_of": trial.number, "seed": trial.user_attrs.get("seed"), **kept},
            )
            count += 1
    return count


@dataclass
class _OpenedSearch:
    study: optuna.Study
    space: SearchSpace[Any]
    artifacts: Artifacts
    url: str
    data: DatasetSplits | None  # None: the evaluator uses no data
    device: torch.device | None  # resolved with the data; else on the evaluator's first use


def _open_search(
    config: SearchConfig, echo: Any, *, requeue: bool, sampler_stream: int = 0
) -> _OpenedSearch:
    """Everything before the first trial but the evaluator: space, data, store and study.

    The device and data load (and their errors show) before the store is touched, unless
    the evaluator uses no data (a lookup table).
    """
    import optuna

    from evaluators import get_evaluator_class
    from search_spaces import create_space

    warnings.filterwarnings("ignore", category=optuna.exceptions.ExperimentalWarning)
    # nas records heartbeats itself (store.Heartbeat) in its ask/tell loop.
    warnings.filterwarnings("ignore", message="Heartbeat of storage is supposed to be used")
    # A retried trial inherits its dead run's reports; the same seed reports the same values.
    warnings.filterwarnings("ignore", message="The reported value is ignored because")
    optuna.logging.set_verbosity(optuna.logging.WARNING)
    space = create_space(config.space, **asdict(config.model))
    baselines = named_baselines(space, config.baselines)
    data, device, threads = None, None, 0
    if get_evaluator_class(config.evaluator).needs_data:
        from nas.data import load_dataset
        from nas.device import resolve_device, set_torch_threads

        device = resolve_device(config.device)
        threads = set_torch_threads(config.threads)
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
    if data is not None:
        study.set_user_attr(store.ATTR_DATA_SPEC, vars(data.spec).copy())

    location = store.sqlite_path(url)
    threads_shown = f"  torch threads: {threads}" if threads else ""  # 0: no data, no torch
    echo(
        f"store: {location.resolve() if location else store.redact(url)}  "
        f"study: {study.study_name}{threads_shown}"
    )
    requeued = _requeue_interrupted(study) if requeue else 0
    if requeued:
        echo(f"retrying {requeued} trial(s) interrupted in an earlier run")
    if requeue:
        _enqueue_baselines(study, space, baselines)
    if len(config.objectives) > 1 and config.pruner not in ("none", "lcpfn"):
        echo(
            f"note: pruner={config.pruner} is not applied: Optuna pruners need a single "
            "objective; pruner=lcpfn works with several."
        )
    return _OpenedSearch(study, space, artifacts, url, data, device)


def _prepare_evaluator(
    config: SearchConfig,
    opened: _OpenedSearch,
    reporter: SearchReporter,
    echo: Any,
    *,
    trains: bool,
    parallel: DataParallelContext | None = None,
) -> Evaluator[Any]:
    """The study's evaluator, prepared: what it does once (a supernet trained, or waited
    for by a worker) is done before this returns. Data and device load on first use."""
    from evaluators import EvaluationContext, get_evaluator_class

    study = opened.study

    def load_data() -> DatasetSplits:
        if opened.data is None:
            raise ConfigError(
                f"evaluator={config.evaluator} declares needs_data=False but asked for data."
            )
        return opened.data

    def resolve() -> torch.device:
        from nas.device import resolve_device

        return opened.device or resolve_device(config.device)

    context = EvaluationContext(
        space=opened.space,
        seed=config.seed,
        epochs=config.epochs,
        reports_per_epoch=config.reports_per_epoch,
        reporter=reporter,
        files=StudyFiles(study, opened.artifacts, echo),
        load_data=load_data,
        resolve_device=resolve,
        set_study_attr=study.set_user_attr,
        echo=echo,
        trains=trains,
        parallel=parallel,
        latency_threads=config.latency_threads,
    )
    evaluator = get_evaluator_class(config.evaluator)(evaluator_settings(config), context)
    evaluator.prepare()
    return evaluator


def prepare_study(
    config: SearchConfig, echo: Any = print, parallel: DataParallelContext | None = None
) -> optuna.Study:
    """Create or resume the study and prepare its evaluator (train its supernet, if it has
    one), running no trial; what a pool of workers needs done once before they start.
    With ``parallel`` (torchrun), every process calls this: the main one opens the study
    first, then all prepare together."""
    main = parallel is None or parallel.is_main
    if parallel is not None and not main:
        parallel.barrier()  # wait for the main process to create the study
    opened = _open_search(config, echo, requeue=main)
    if parallel is not None and main:
        parallel.barrier()
    reporter = create_reporter()
    try:
        _prepare_evaluator(config, opened, reporter, echo, trains=True, parallel=parallel)
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
    whoever prepared the study. ``new_trials`` stops after that many trials (a Ray Tune
    trial runs exactly one). A worker (``trains_supernet=False``) uses what the study's
    trainer prepared (its published supernet), waiting for it if it is still training
    elsewhere. Each of several workers gives its own ``sampler_stream`` (see
    ``create_sampler``).
    """
    with stop_on_ctrl_c():
        return _run_search(
            config, reporter, echo, requeue, new_trials, trains_supernet, sampler_stream
        )


def _run_search(
    config: SearchConfig,
    reporter: SearchReporter | None,
    echo: Any,
    requeue: bool,
    new_trials: int | None,
    trains_supernet: bool,
    sampler_stream: int,
) -> SearchOutcome:
    opened = _open_search(config, echo, requeue=requeue, sampler_stream=sampler_stream)
    study, url = opened.study, opened.url
    reporter = InterruptCheckingReporter(reporter or create_reporter())
    interrupted = False
    try:
        evaluator = _prepare_evaluator(config, opened, reporter, echo, trains=trains_supernet)
        coordinator = TrialCoordinator(
            study,
            url,
            trials=config.trials,
            timeout=config.timeout,
            heartbeat_interval=config.heartbeat_interval,
            grace_period=config.grace_period,
            echo=echo,
        )
        results = ResultCache.of(study, opened.space) if config.reuse_results else None
        rules = TrialRules.from_config(config, opened.artifacts, reporter, results)
        reporter.start(
            study=study.study_name,
            done=coordinator.finished,
            total=max(config.trials, coordinator.finished),  # never "80/40"
            best=lambda: best_summary(study),
        )
        interrupted = _trial_loop(coordinator, opened.space, evaluator, rules, new_trials)
    except KeyboardInterrupt:  # between trials: nothing is running, nothing to mark
        interrupted = True
    finally:
        reporter.close()
    finished = budget(study).finished  # other workers' trials included
    return SearchOutcome(study=study, finished=finished, interrupted=interrupted, storage_url=url)


def _trial_loop(
    coordinator: TrialCoordinator,
    space: SearchSpace[Any],
    evaluator: Evaluator[Any],
    rules: TrialRules,
    new_trials: int | None,
) -> bool:
    """Run trials while the coordinator hands them out; whether Ctrl-C stopped one.

    Raises:
        StudyError: ``MAX_CONSECUTIVE_FAILURES`` trials failed in a row (rejected
            candidates are outcomes, not failures).
    """
    study, reporter = coordinator.study, rules.reporter
    failures_in_row = 0
    ran = 0
    with store.Heartbeat(study) as heartbeat:  # one thread for all its trials
        while new_trials is None or ran < new_trials:
            raise_if_interrupted()  # a Ctrl-C whose exception was lost in a callback
            trial = coordinator.next_trial()
            if trial is None:
                return False
            ran += 1
            outcome = run_trial(study, trial, space, evaluator, rules, heartbeat)
            if outcome.state == "interrupted":
                return True
            if outcome.failed:
                failures_in_row += 1
            elif outcome.state != "rejected":
                failures_in_row = 0
            if not outcome.failed:  # for the display; the next trial recounts from the store
                coordinator.finished += 1
            reporter.trial_finished(
                trial.number,
                outcome.message,
                done=coordinator.finished,
                best=lambda: best_summary(study),
            )
            if failures_in_row >= MAX_CONSECUTIVE_FAILURES:
                raise StudyError(
                    f"{failures_in_row} trials failed in a row; last error: "
                    f"{outcome.message.removeprefix('failed: ')}"
                )
    return False
