"""Trials per second for 1, 4 and 16 worker processes on one study: nas vs plain Optuna.

Every trial is trivial (no training): it samples a NASNet architecture through the
trial (50 ``suggest`` calls, as a real NASNet trial does) and returns a number. What is
measured is the cost of sharing one SQL store:

* ``optuna``: K processes, each ``study.optimize`` with a ``MaxTrialsCallback`` for the
  shared total (Optuna's own multi-process recipe);
* ``nas``: K processes, each the ``nas worker`` loop (``nas.search.run_search``: budget
  counted from the store, surplus check, heartbeats, the trial's user attributes) with
  ``evaluator=_trivial:TrivialEvaluator``, the same trivial score.

Each process imports and connects first, then all start together; ``trials/s`` is the
study's finished trials over the time from that start to the last process's exit.
``failures`` counts failed trials other than the surplus ones nas marks when two
workers claim the last trial at once, plus processes that crashed (e.g. "database is
locked"). PostgreSQL rows need ``--postgres URL`` (a role that may create databases;
``bash .ci/postgres.sh`` prints one).

    python benchmarks/workers_throughput.py [--trials 64] [--workers 1 4 16] [--postgres URL]
"""

from __future__ import annotations

import argparse
import multiprocessing as mp
import os
import tempfile
import time
import uuid
from collections.abc import Mapping
from pathlib import Path
from typing import Any

from _table import Column, print_table
from _trivial import REFERENCE as TRIVIAL

SPACE_OPTIONS = {"cells_per_stage": 1, "init_channels": 4}


def _parse(argv: list[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--trials", type=int, default=64, help="finished trials per study")
    parser.add_argument("--workers", type=int, nargs="+", default=[1, 4, 16])
    parser.add_argument("--postgres", default=os.environ.get("NAS_TEST_POSTGRES_URL"))
    args = parser.parse_args(argv)
    if args.trials < 1 or min(args.workers) < 1:
        parser.error("--trials and --workers must be >= 1.")
    return args


def _optuna_worker(url: str, name: str, total: int, start: Any) -> None:
    import optuna
    from optuna.study import MaxTrialsCallback

    from search_spaces import create_space

    optuna.logging.set_verbosity(optuna.logging.WARNING)
    space = create_space("nasnet", **SPACE_OPTIONS)
    study = optuna.load_study(study_name=name, storage=url)

    def objective(trial: optuna.Trial) -> float:
        space.sample(trial)
        return 0.5

    start.wait()
    study.optimize(
        objective,
        callbacks=[MaxTrialsCallback(total, states=(optuna.trial.TrialState.COMPLETE,))],
    )


def _nas_worker(url: str, name: str, total: int, start: Any) -> None:
    import nas.search
    from nas.config import compose_search
    from nas.progress import SilentReporter

    config = compose_search(_nas_overrides(url, name, total))
    # Open the study (store, space) before the start, as Optuna's side loads its study.
    opened = nas.search._open_search(config, lambda *_: None, requeue=False)
    nas.search._open_search = lambda *_, **__: opened  # type: ignore[assignment]
    start.wait()
    nas.search.run_search(config, reporter=SilentReporter(), echo=lambda *_: None, requeue=False)


def _nas_overrides(url: str, name: str, total: int) -> list[str]:
    return [
        "space=nasnet",
        f"study={name}",
        f"storage={url}",
        f"trials={total}",
        "pruner=none",
        "keep_weights=false",
        "device=cpu",
        f"evaluator={TRIVIAL}",  # the same trivial score, no training
        *(f"model.{k}={v}" for k, v in SPACE_OPTIONS.items()),
    ]


def _create(variant: str, url: str, name: str, total: int) -> None:
    import optuna

    if variant == "optuna":
        optuna.create_study(study_name=name, storage=url)
        return
    from nas.config import compose_search
    from nas.search import prepare_study

    prepare_study(compose_search(_nas_overrides(url, name, total)), echo=lambda *_: None)


def _run(variant: str, url: str, workers: int, total: int) -> dict[str, Any]:
    import optuna

    name = f"bench-{variant}-{uuid.uuid4().hex[:8]}"
    _create(variant, url, name, total)
    context = mp.get_context("spawn")
    # Every process imports and connects, then all pass the barrier together with us.
    start = context.Barrier(workers + 1)
    target = _optuna_worker if variant == "optuna" else _nas_worker
    processes = [
        context.Process(target=target, args=(url, name, total, start)) for _ in range(workers)
    ]
    for process in processes:
        process.start()
    start.wait()
    began = time.perf_counter()
    for process in processes:
        process.join()
    elapsed = time.perf_counter() - began
    trials = optuna.load_study(study_name=name, storage=url).get_trials(deepcopy=False)
    finished = sum(t.state.name in ("COMPLETE", "PRUNED") for t in trials)
    failed = sum(t.state.name == "FAIL" and not t.user_attrs.get("surplus") for t in trials)
    crashed = sum(process.exitcode != 0 for process in processes)
    return {
        "variant": variant,
        "workers": workers,
        "finished": finished,
        "trials_per_s": finished / elapsed,
        "ms_per_trial": 1000 * elapsed / max(finished, 1),
        "failures": failed + crashed,
        "extra": finished - total,
    }


def _postgres_database(admin: str) -> tuple[str, Any]:
    import sqlalchemy

    name = f"nas_bench_{uuid.uuid4().hex[:8]}"
    engine = sqlalchemy.create_engine(admin, isolation_level="AUTOCOMMIT")
    with engine.connect() as connection:
        connection.execute(sqlalchemy.text(f'CREATE DATABASE "{name}"'))

    def drop() -> None:
        with engine.connect() as connection:
            connection.execute(sqlalchemy.text(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)'))
        engine.dispose()

    url = sqlalchemy.engine.make_url(admin).set(database=name)
    return url.render_as_string(hide_password=False), drop


def main(argv: list[str] | None = None) -> list[dict[str, Any]]:
    import optuna

    args = _parse(argv)
    optuna.logging.set_verbosity(optuna.logging.WARNING)
    rows = []
    with tempfile.TemporaryDirectory() as tmp:
        backends = [("sqlite", f"sqlite:///{Path(tmp) / 'bench.db'}", None)]
        if args.postgres:
            url, drop = _postgres_database(args.postgres)
            backends.append(("postgresql", url, drop))
        try:
            for backend, url, _ in backends:
                for workers in args.workers:
                    for variant in ("optuna", "nas"):
                        row = _run(variant, url, workers, args.trials)
                        rows.append({"backend": backend, **row})
        finally:
            for _, _, drop in backends:
                if drop is not None:
                    drop()
    _print_table(rows, args)
    return rows


def _print_table(rows: list[dict[str, Any]], args: argparse.Namespace) -> None:
    base = {(r["backend"], r["workers"]): r for r in rows if r["variant"] == "optuna"}

    def ratio(row: Mapping[str, Any]) -> float:
        return row["ms_per_trial"] / base[(row["backend"], row["workers"])]["ms_per_trial"]

    print_table(
        f"workers throughput: {args.trials} trivial NASNet trials per study, "
        f"{os.cpu_count()} CPU cores; x = nas ms/trial over plain Optuna's",
        [
            Column("backend", "backend", "<11"),
            Column("workers", "workers", ">7"),
            Column("variant", "variant", "<7"),
            Column("trials/s", "trials_per_s", ">9.1f"),
            Column("ms/trial", "ms_per_trial", ">9.1f"),
            Column("x", ratio, ">6.2f"),
            Column("finished", "finished", ">8"),
            Column("failures", "failures", ">8"),
        ],
        rows,
    )
    if not args.postgres:
        print("(no PostgreSQL rows: pass --postgres URL or set NAS_TEST_POSTGRES_URL)")


if __name__ == "__main__":
    main()
