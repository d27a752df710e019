"""``backend=ray``: run a study's trials as Ray Tune trials, results in the same SQL study.

Ray schedules and places the trials (a local Ray instance, or ``ray_address=`` for an
existing cluster; ``ray_trial_cpus`` / ``ray_trial_gpus`` per trial); nas stays the
source of truth. Each Tune trial is one nas trial: it asks the SQL study for a trial
(so the study's sampler proposes it, seeing every earlier result), trains it with the
usual runner, reports every epoch to Tune and tells the study the outcome. ``nas
show``, resume and export therefore read the study the same way whichever backend ran
it. With ``ray_scheduler=asha`` Ray's ASHA stops trials early; a stopped trial is
recorded as PRUNED. The storage URL reaches the Ray workers through their environment,
never their arguments.
"""

from __future__ import annotations

import contextlib
import os
from typing import Any

from nas import store
from nas.config import SearchConfig, compose_recorded, report_steps, study_name, to_container
from nas.coordination import budget
from nas.core.errors import ConfigError, StudyError
from nas.progress import Best, SilentReporter
from nas.workers import STORAGE_ENV, sampler_stream

EPOCH_KEY = "epoch"
TRIAL_KEY = "nas_trial"


class _TuneReporter(SilentReporter):
    """Reports each epoch's validation accuracy to Ray Tune; a stop becomes a prune.

    The last epoch is reported only once the study has been told the outcome: Ray may
    end the worker as soon as a scheduler stops a trial, which schedulers also do at
    the last epoch.
    """

    def __init__(self) -> None:
        self._final: dict[str, Any] | None = None

    def epoch(self, number: int, epoch: int, epochs: int, accuracy: float) -> None:
        import optuna
        from ray import tune

        metrics = {"accuracy": accuracy, EPOCH_KEY: epoch, TRIAL_KEY: number}
        if epoch >= epochs:
            self._final = metrics
            return
        try:
            tune.report(metrics)
        except SystemExit:  # Tune's scheduler stopped this trial
            raise optuna.TrialPruned(f"stopped by Ray Tune after epoch {epoch}") from None

    def trial_finished(self, number: int, outcome: str, *, done: int, best: Best) -> None:
        from ray import tune

        if self._final is not None:
            with contextlib.suppress(SystemExit):  # the trial is over either way
                tune.report(self._final)


def _one_trial(params: dict[str, Any]) -> None:
    """Ray Tune function trainable: run one trial of the study in ``params``."""
    from ray import tune

    from nas.search import run_search

    config = compose_recorded(params["config"], [])
    config.storage = os.environ[STORAGE_ENV]
    config.study = params["study"]
    run_search(
        config,
        reporter=_TuneReporter(),
        echo=lambda *_: None,
        requeue=False,
        new_trials=1,
        trains_supernet=False,
        # Tune starts trials together: each must draw its own proposal.
        sampler_stream=sampler_stream(tune.get_context().get_trial_id() or str(os.getpid())),
    )


def _scheduler(config: SearchConfig) -> Any:
    from ray.tune.schedulers import ASHAScheduler, FIFOScheduler

    if config.ray_scheduler == "asha":
        return ASHAScheduler(time_attr=EPOCH_KEY, max_t=report_steps(config), grace_period=1)
    return FIFOScheduler()


def _mark_stopped(study: Any, results: Any, epochs: int) -> int:
    """Trials Tune stopped before their last epoch but still RUNNING in the store -> PRUNED.

    A stopped trial normally records itself as pruned; when Ray ends its worker before
    that, the driver does it, so the heartbeat timeout does not retry a pruned trial.
    """
    import optuna

    marked = 0
    for result in results:
        metrics = result.metrics or {}
        number = metrics.get(TRIAL_KEY)
        if type(number) is not int or metrics.get(EPOCH_KEY, epochs) >= epochs:
            continue
        trial = study.get_trials(deepcopy=False)[number]
        if trial.state == optuna.trial.TrialState.RUNNING:
            # Its worker may record it in between: then that record stands. Optuna's
            # skip_if_finished reads a cached state, so the store may still refuse.
            try:
                study.tell(number, state=optuna.trial.TrialState.PRUNED, skip_if_finished=True)
            except optuna.exceptions.UpdateFinishedTrialError:
                continue
            marked += 1
    return marked


def run_with_ray(config: SearchConfig, echo: Any = print) -> tuple[int, bool]:
    """Run the study's remaining trials on Ray Tune; (finished trials, interrupted)."""
    try:
        import ray
        from ray import tune
    except ImportError:
        raise ConfigError("backend=ray needs Ray Tune: pip install -e '.[ray]'.") from None
    from nas.artifacts import open_artifacts
    from nas.search import prepare_study

    url = config.storage or store.default_storage_url()
    study = prepare_study(config, echo)  # creates the study; trains a supernet once
    recorded = to_container(config)
    recorded["storage"] = None  # the URL travels in the environment only
    artifacts = open_artifacts(config.artifacts, url)
    # Local paths must be absolute for Ray's workers, which run elsewhere.
    if store.sqlite_path(url) is not None:
        url = f"sqlite:///{store.sqlite_path(url).resolve()}"  # type: ignore[union-attr]
    recorded["artifacts"] = artifacts.location
    ray.init(
        address=config.ray_address,
        include_dashboard=False,
        log_to_driver=True,
        runtime_env={"env_vars": {STORAGE_ENV: url}},
        ignore_reinit_error=True,
    )
    interrupted = False
    try:
        while True:
            now = budget(study)
            missing = config.trials - now.finished - now.running
            if now.finished >= config.trials or missing <= 0:
                break
            echo(f"ray: {missing} trial(s) to run ({now.finished}/{config.trials} finished)")
            trainable = tune.with_resources(
                _one_trial, {"cpu": config.ray_trial_cpus, "gpu": config.ray_trial_gpus}
            )
            tuner = tune.Tuner(
                trainable,
                param_space={"study": study_name(config), "config": recorded},
                tune_config=tune.TuneConfig(
                    num_samples=missing,
                    metric="accuracy",
                    mode="max",
                    scheduler=_scheduler(config),
                    max_concurrent_trials=config.workers,
                ),
                run_config=tune.RunConfig(
                    name=f"nas-{study.study_name}",
                    storage_path=str(artifacts.local_dir / "ray"),
                    verbose=1,
                ),
            )
            grid = tuner.fit()
            results = [grid[i] for i in range(len(grid))]
            _mark_stopped(study, results, report_steps(config))
            if budget(study).finished == now.finished:  # a round without progress
                errors = [str(r.error).splitlines()[0] for r in results if r.error is not None]
                raise StudyError(
                    f"no Ray trial finished; first error: {errors[0] if errors else 'none'}"
                )
    except KeyboardInterrupt:
        interrupted = True
    finally:
        ray.shutdown()
    return budget(study).finished, interrupted
