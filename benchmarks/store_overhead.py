"""Per-trial cost of the study store: a search through ``nas`` vs plain Optuna.

Both sides write to one SQLite file (a fresh temporary file per run of this script),
each variant and repeat in its own study, the variants' order rotated every repeat so
that none always meets the larger file. Training and network building are replaced by
instant stand-ins; everything that touches the store stays real.

* ``optuna``: ``study.ask()``, the NASNet space's ``sample(trial)``, ``trial.report``
  once per epoch, ``study.tell`` -- the least a search can write.
* ``nas``: ``nas.search.run_search`` with ``pruner=none keep_weights=false``: also the
  user attributes (arch, arch_str, seed, params, flops, curve per epoch), the pruning
  check, FLOP counting of a tiny stand-in network and progress reporting.
* ``nas+weights``: the same with ``keep_weights=true``: the stand-in's weights saved as
  safetensors and uploaded to Optuna's file-system artifact store.

``setup s`` is opening the store and creating the study (plus, for ``nas``, composing
the space and loading the digits); ``ms/trial`` is the trial loop alone divided by the
trials; the ratio compares ``ms/trial`` with plain Optuna's. Medians over ``--repeats``.

    python benchmarks/store_overhead.py [--trials 100] [--epochs 4] [--repeats 3]
"""

from __future__ import annotations

import argparse
import statistics
import tempfile
import time
import warnings
from collections.abc import Callable
from contextlib import ExitStack
from dataclasses import asdict
from pathlib import Path
from typing import Any
from unittest import mock

from _table import Column, print_table

from nas.progress import Best, SilentReporter

VARIANTS = ("optuna", "nas", "nas+weights")
ACCURACY = 0.5  # the stand-in training's validation accuracy, every epoch


class _TimingReporter(SilentReporter):
    """Prints nothing; notes when the trial loop starts and ends."""

    def __init__(self) -> None:
        self.loop_started = 0.0
        self.loop_ended = 0.0

    def start(self, *, study: str, done: int, total: int, best: Best) -> None:
        self.loop_started = time.perf_counter()

    def close(self) -> None:
        self.loop_ended = time.perf_counter()


def _instant_training(
    model: Any,
    data: Any,
    settings: Any,
    *,
    epochs: int,
    device: Any,
    seed: int,
    on_epoch: Callable[[Any], None] | None = None,
    on_step: Callable[[int, int], None] | None = None,
    reports_per_epoch: int = 1,
) -> list[float]:
    """Stands in for ``evaluators.train_standalone``: reports every epoch, trains nothing
    (the benchmark's studies report once per epoch)."""
    assert reports_per_epoch == 1
    from evaluators import EpochReport

    curve = []
    for epoch in range(1, epochs + 1):
        curve.append(ACCURACY)
        if on_epoch is not None:
            on_epoch(
                EpochReport(
                    epoch=epoch,
                    epochs=epochs,
                    train_loss=0.0,
                    val_accuracy=ACCURACY,
                    seconds=0.0,
                )
            )
    return curve


def _tiny_build(self: Any, arch: Any, data: Any) -> Any:
    """Stands in for ``NASNetSpace.build``: one linear layer, so FLOP counting is trivial."""
    from torch import nn

    features = data.in_channels * data.image_size * data.image_size
    return nn.Sequential(nn.Flatten(), nn.Linear(features, data.num_classes))


def _overrides(url: str, artifacts: Path, study: str, args: argparse.Namespace) -> list[str]:
    return [
        f"storage={url}",
        f"artifacts={artifacts}",
        f"study={study}",
        f"trials={args.trials}",
        f"epochs={args.epochs}",
        f"strategy={args.strategy}",
        "pruner=none",
        "device=cpu",
    ]


def _run_nas(
    url: str, artifacts: Path, study: str, args: argparse.Namespace, *, keep_weights: bool
) -> tuple[float, float]:
    """(setup seconds, trial-loop seconds) of one ``run_search``."""
    import evaluators.standalone
    from nas.config import compose_search
    from nas.search import run_search
    from search_spaces.nasnet import NASNetSpace

    overrides = [*_overrides(url, artifacts, study, args), f"keep_weights={keep_weights}"]
    config = compose_search(overrides)
    reporter = _TimingReporter()
    with ExitStack() as stack:
        stack.enter_context(
            mock.patch.object(evaluators.standalone, "train_standalone", _instant_training)
        )
        stack.enter_context(mock.patch.object(NASNetSpace, "build", _tiny_build))
        started = time.perf_counter()
        outcome = run_search(config, reporter=reporter, echo=lambda *_: None)
        ended = time.perf_counter()
    if outcome.finished != args.trials:
        raise RuntimeError(f"nas finished {outcome.finished} of {args.trials} trials.")
    loop = reporter.loop_ended - reporter.loop_started
    return ended - started - loop, loop


def _sampler(strategy: str, seed: int) -> Any:
    import optuna

    if strategy == "tpe":  # configured as nas configures it
        return optuna.samplers.TPESampler(
            seed=seed, multivariate=True, group=True, constant_liar=True
        )
    return optuna.samplers.RandomSampler(seed=seed)


def _run_optuna(url: str, study_name: str, args: argparse.Namespace) -> tuple[float, float]:
    """(setup seconds, trial-loop seconds) of the plain ask/sample/report/tell loop."""
    import optuna

    from nas.config import compose_search
    from search_spaces import create_space

    space = create_space("nasnet", **asdict(compose_search([]).model))
    started = time.perf_counter()
    storage = optuna.storages.RDBStorage(url)
    study = optuna.create_study(
        study_name=study_name,
        storage=storage,
        direction="maximize",
        sampler=_sampler(args.strategy, seed=0),
        pruner=optuna.pruners.NopPruner(),
    )
    loop_started = time.perf_counter()
    for _ in range(args.trials):
        trial = study.ask()
        space.sample(trial)
        for epoch in range(1, args.epochs + 1):
            trial.report(ACCURACY, epoch)
        study.tell(trial, ACCURACY)
    ended = time.perf_counter()
    return loop_started - started, ended - loop_started


def _parse(argv: list[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--trials", type=int, default=100, help="trials per variant and repeat")
    parser.add_argument("--epochs", type=int, default=4, help="reports per trial")
    parser.add_argument("--repeats", type=int, default=3, help="runs per variant; median taken")
    parser.add_argument(
        "--strategy",
        choices=("random", "tpe"),
        default="random",
        help="sampler on both sides; random keeps sampler cost out of the comparison",
    )
    args = parser.parse_args(argv)
    for name in ("trials", "epochs", "repeats"):
        if getattr(args, name) < 1:
            parser.error(f"--{name} must be >= 1, but got {getattr(args, name)}.")
    return args


def _print_table(rows: list[dict[str, Any]], args: argparse.Namespace) -> None:
    print_table(
        f"store overhead: {args.trials} trials x {args.epochs} epochs, strategy={args.strategy}, "
        f"median of {args.repeats} repeat(s); one temporary SQLite file, a study per run",
        [
            Column("variant", "variant", "<12"),
            Column("trials", "trials", ">6"),
            Column("total s", "total_s", ">8.2f"),
            Column("setup s", "setup_s", ">8.2f"),
            Column("ms/trial", "ms_per_trial", ">9.2f"),
            Column("ratio", lambda row: f"{row['ratio']:.2f}x", ">6"),
        ],
        rows,
    )


def main(argv: list[str] | None = None) -> list[dict[str, Any]]:
    """Run the benchmark, print its table and return its rows."""
    import optuna

    args = _parse(argv)
    optuna.logging.set_verbosity(optuna.logging.WARNING)
    warnings.filterwarnings("ignore", category=optuna.exceptions.ExperimentalWarning)
    times: dict[str, list[tuple[float, float]]] = {v: [] for v in VARIANTS}
    with tempfile.TemporaryDirectory(prefix="nas-bench-") as tmp:
        db = Path(tmp) / "store.db"
        url = f"sqlite:///{db}"
        artifacts = Path(tmp) / "artifacts"
        # Untimed: imports, the digits, first-use caches; a small study of its own.
        warm = argparse.Namespace(**{**vars(args), "trials": 2, "epochs": 1})
        _run_nas(url, artifacts, "warm-up-nas", warm, keep_weights=True)
        _run_optuna(url, "warm-up-optuna", warm)
        for repeat in range(args.repeats):
            order = VARIANTS[repeat % 3 :] + VARIANTS[: repeat % 3]
            for variant in order:
                study = f"{variant}-{repeat}"
                if variant == "optuna":
                    result = _run_optuna(url, study, args)
                else:
                    keep = variant == "nas+weights"
                    result = _run_nas(url, artifacts, study, args, keep_weights=keep)
                times[variant].append(result)
    base = statistics.median(loop for _, loop in times["optuna"]) / args.trials
    rows = []
    for variant in VARIANTS:
        setup = statistics.median(s for s, _ in times[variant])
        loop = statistics.median(loop for _, loop in times[variant])
        total = statistics.median(s + loop for s, loop in times[variant])
        per_trial = loop / args.trials
        rows.append(
            {
                "variant": variant,
                "trials": args.trials,
                "epochs": args.epochs,
                "total_s": total,
                "setup_s": setup,
                "ms_per_trial": per_trial * 1000,
                "ratio": per_trial / base,
            }
        )
    _print_table(rows, args)
    return rows


if __name__ == "__main__":
    main()
