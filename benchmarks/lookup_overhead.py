"""Per-trial cost of a trial that costs nothing: ``nas`` vs plain Optuna on a tabular benchmark.

The out-of-tree example (``pip install -e examples/nas_lookup_example``) plugs a search
space (``toy_cells``) and a lookup evaluator (no data, no training) into nas. Both sides
sample the same space with Optuna's RandomSampler into a fresh SQLite file each, in
write-ahead-log mode (nas's setting for every SQLite store):

* ``optuna``: ``study.optimize`` whose objective samples the cell and looks it up;
* ``nas``: ``nas.search.run_search`` with ``space=toy_cells evaluator=lookup
  strategy=random pruner=none reuse_results=false``: the trial's architecture, seed and
  costs stored, heartbeats, the shared budget counted from the store, the surplus check.

``ms/trial`` is wall time over trials (opening the store and creating the study
included, on both sides); ``last ms/trial`` is the mean of the last 10% of the trials
(timestamps from the store), which grows if per-trial work grows with the study; ``x``
compares nas with Optuna at the same size. No torch; one process, one thread.

    python benchmarks/lookup_overhead.py [--trials 100 1000 5000] [--repeats 3]
"""

from __future__ import annotations

import argparse
import contextlib
import itertools
import os
import sqlite3
import statistics
import tempfile
import time
from pathlib import Path
from typing import Any

from _table import Column, print_table

SEED = 0


def _parse(argv: list[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--trials", type=int, nargs="+", default=[100, 1000, 5000])
    parser.add_argument("--repeats", type=int, default=3, help="runs per size; medians shown")
    args = parser.parse_args(argv)
    if min(args.trials) < 10 or args.repeats < 1:
        parser.error("--trials must be >= 10 and --repeats >= 1.")
    return args


def _run_optuna(url: str, trials: int) -> Any:
    import optuna
    from nas_lookup_example import LookupEvaluator, ToyCellSpace, load_table

    space = ToyCellSpace()
    table = load_table()
    assert LookupEvaluator.needs_data is False

    def objective(trial: optuna.Trial) -> float:
        return table[space.sample(trial)]["accuracy"]

    study = optuna.create_study(
        study_name="optuna",
        storage=url,
        direction="maximize",
        sampler=optuna.samplers.RandomSampler(seed=SEED),
    )
    study.optimize(objective, n_trials=trials)
    return study


def _run_nas(url: str, trials: int) -> Any:
    from nas.config import compose_search
    from nas.progress import SilentReporter
    from nas.search import run_search

    config = compose_search(
        [
            "space=toy_cells",
            "evaluator=lookup",
            "strategy=random",
            "pruner=none",
            "keep_weights=false",
            "reuse_results=false",  # evaluate duplicates, as Optuna's side does
            f"seed={SEED}",
            f"trials={trials}",
            f"storage={url}",
            "study=nas",
        ]
    )
    outcome = run_search(config, reporter=SilentReporter(), echo=lambda *_: None)
    if outcome.finished != trials:
        raise RuntimeError(f"nas finished {outcome.finished} of {trials} trials.")
    return outcome.study


def _last_ms(study: Any) -> float:
    """Mean milliseconds between the starts of the last 10% of the trials."""
    starts = sorted(t.datetime_start for t in study.get_trials(deepcopy=False))
    tail = starts[-max(2, len(starts) // 10) :]
    gaps = [(b - a).total_seconds() for a, b in itertools.pairwise(tail)]
    return 1000 * statistics.mean(gaps)


def _measure(variant: str, trials: int, folder: Path, repeat: int) -> dict[str, Any]:
    path = folder / f"{variant}-{trials}-{repeat}.db"
    with contextlib.closing(sqlite3.connect(path)) as db:  # as nas opens every SQLite store
        db.execute("PRAGMA journal_mode=WAL")
    url = f"sqlite:///{path}"
    run = _run_optuna if variant == "optuna" else _run_nas
    started = time.perf_counter()
    study = run(url, trials)
    seconds = time.perf_counter() - started
    complete = [t for t in study.get_trials(deepcopy=False) if t.state.name == "COMPLETE"]
    return {
        "variant": variant,
        "trials": trials,
        "seconds": seconds,
        "ms_per_trial": 1000 * seconds / trials,
        "last_ms": _last_ms(study),
        "best": max(t.values[0] for t in complete),
    }


def _median(runs: list[dict[str, Any]]) -> dict[str, Any]:
    """The runs' medians of every timing (a busy machine's outliers left out)."""
    timings = ("seconds", "ms_per_trial", "last_ms")
    return {**runs[0], **{key: statistics.median(r[key] for r in runs) for key in timings}}


def main(argv: list[str] | None = None) -> list[dict[str, Any]]:
    import optuna

    args = _parse(argv)
    optuna.logging.set_verbosity(optuna.logging.WARNING)
    rows = []
    with tempfile.TemporaryDirectory(prefix="nas-bench-") as tmp:
        for trials in args.trials:
            runs: dict[str, list[dict[str, Any]]] = {"optuna": [], "nas": []}
            for repeat in range(args.repeats):
                # Alternate the order, so that neither side always runs on a warmer machine.
                for variant in ("optuna", "nas") if repeat % 2 == 0 else ("nas", "optuna"):
                    runs[variant].append(_measure(variant, trials, Path(tmp), repeat))
            rows += [_median(runs[variant]) for variant in ("optuna", "nas")]
    base = {row["trials"]: row for row in rows if row["variant"] == "optuna"}
    for row in rows:
        reference = base[row["trials"]]
        row["ratio"] = row["ms_per_trial"] / reference["ms_per_trial"]
        row["last_ratio"] = row["last_ms"] / reference["last_ms"]
    print_table(
        f"lookup overhead: toy_cells + lookup evaluator (no training), RandomSampler(seed={SEED}),"
        f" one SQLite file per run, median of {args.repeats}, 1 process, {os.cpu_count()} CPU "
        "cores, no torch threads",
        [
            Column("variant", "variant", "<7"),
            Column("trials", "trials", ">6"),
            Column("total s", "seconds", ">8.1f"),
            Column("ms/trial", "ms_per_trial", ">9.2f"),
            Column("x", lambda r: f"{r['ratio']:.2f}x", ">6"),
            Column("last ms/trial", "last_ms", ">14.2f"),
            Column("last x", lambda r: f"{r['last_ratio']:.2f}x", ">7"),
            Column("best", "best", ">6.4f"),
        ],
        rows,
    )
    return rows


if __name__ == "__main__":
    main()
