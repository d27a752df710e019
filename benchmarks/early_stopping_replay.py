"""Early stopping replayed on real learning curves: compute saved and regret per pruner.

Replays the curves that ``benchmarks/record_curves.py`` recorded from the platform's own
stand-alone trials (``benchmarks/data/nasnet_digits_curves.json``, kept in the repo).
Each replay walks the trials in a random order through a single-objective Optuna study
(in memory), reporting every epoch of a trial's recorded curve and asking the pruner
after each; a stopped trial costs the epochs it ran, a finished one all of them. The
pruners are the ones ``nas search pruner=...`` builds (``nas.pruners.create_pruner``
with the recording's epochs): none, median, successive_halving, hyperband, and lcpfn
at each ``--thresholds`` value (its other settings are the defaults).

* ``epochs``: epochs trained, summed over trials (mean over the orders);
* ``saved``: epochs without pruning / epochs with it;
* ``regret``: best final accuracy of all trials minus the best final accuracy among the
  trials the pruner let finish, in percentage points (mean and worst over the orders).

Target for lcpfn: saved >= 2x with mean regret < 0.5 percentage points.

    python benchmarks/early_stopping_replay.py [--orders 20] [--thresholds 0.05 0.15 0.25]
"""

from __future__ import annotations

import argparse
import json
import statistics
import time
import warnings
from pathlib import Path
from typing import Any

from _table import Column, print_table

DEFAULT_CURVES = Path(__file__).parent / "data" / "nasnet_digits_curves.json"
PRUNERS = ("none", "median", "successive_halving", "hyperband", "lcpfn")


def _parse(argv: list[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--curves", type=Path, default=DEFAULT_CURVES, help="recorded curves")
    parser.add_argument("--orders", type=int, default=20, help="random trial orders")
    parser.add_argument("--pruners", nargs="+", choices=PRUNERS, default=list(PRUNERS))
    parser.add_argument(
        "--thresholds",
        type=float,
        nargs="+",
        default=[0.05, 0.15, 0.25],
        help="lcpfn.threshold values, one lcpfn row each",
    )
    parser.add_argument("--threads", type=int, default=2, help="torch threads")
    args = parser.parse_args(argv)
    if args.orders < 1:
        parser.error(f"--orders must be >= 1, but got {args.orders}.")
    return args


def load_curves(path: Path) -> tuple[int, list[list[float]]]:
    """(epochs, curves) from a recording; every curve is checked, none trusted."""
    try:
        record = json.loads(path.read_text(encoding="utf-8"))
        epochs = record["epochs"]
        curves = [trial["curve"] for trial in record["trials"]]
    except (OSError, ValueError, KeyError, TypeError) as error:
        raise SystemExit(f"error: unreadable curve recording {path}: {error}") from None
    if not isinstance(epochs, int) or epochs < 2 or len(curves) < 2:
        raise SystemExit(f"error: {path} needs epochs >= 2 and at least 2 curves.")
    for index, curve in enumerate(curves):
        if (
            not isinstance(curve, list)
            or len(curve) != epochs
            or not all(isinstance(v, (int, float)) and 0.0 <= v <= 1.0 for v in curve)
        ):
            raise SystemExit(f"error: curve {index} of {path} is not {epochs} values in [0, 1].")
    return epochs, [[float(v) for v in curve] for curve in curves]


def replay(pruner: Any, curves: list[list[float]], order: list[int]) -> tuple[int, float]:
    """Epochs trained and best final accuracy among finished trials, for one order."""
    import optuna

    study = optuna.create_study(direction="maximize", pruner=pruner)
    spent = 0
    best = float("-inf")
    for index in order:
        curve = curves[index]
        trial = study.ask()
        for epoch, value in enumerate(curve, start=1):
            trial.report(value, epoch)
            if epoch < len(curve) and trial.should_prune():
                study.tell(trial, state=optuna.trial.TrialState.PRUNED)
                spent += epoch
                break
        else:
            study.tell(trial, curve[-1])
            spent += len(curve)
            best = max(best, curve[-1])
    return spent, best


def _pruner(name: str, epochs: int, threshold: float | None = None) -> Any:
    from nas.config import compose_search
    from nas.pruners import create_pruner

    extra = [f"lcpfn.threshold={threshold}"] if threshold is not None else []
    return create_pruner(compose_search([f"pruner={name}", f"epochs={epochs}", *extra]))


def main(argv: list[str] | None = None) -> list[dict[str, Any]]:
    import numpy as np
    import optuna
    import torch

    args = _parse(argv)
    torch.set_num_threads(args.threads)
    optuna.logging.set_verbosity(optuna.logging.WARNING)
    warnings.filterwarnings("ignore", category=optuna.exceptions.ExperimentalWarning)
    epochs, curves = load_curves(args.curves)
    oracle = max(curve[-1] for curve in curves)
    orders = [
        np.random.default_rng([order, 11]).permutation(len(curves)).tolist()
        for order in range(args.orders)
    ]
    variants = [
        (name, threshold)
        for name in args.pruners
        for threshold in (args.thresholds if name == "lcpfn" else [None])
    ]
    rows = []
    for name, threshold in variants:
        started = time.perf_counter()
        results = [replay(_pruner(name, epochs, threshold), curves, order) for order in orders]
        spent = [r[0] for r in results]
        regret = [100.0 * (oracle - r[1]) for r in results]
        rows.append(
            {
                "pruner": name if threshold is None else f"{name} (threshold {threshold:g})",
                "epochs": statistics.mean(spent),
                "regret_pp": statistics.mean(regret),
                "worst_regret_pp": max(regret),
                "seconds": time.perf_counter() - started,
            }
        )
    full = len(curves) * epochs
    for row in rows:
        row["saved"] = full / row["epochs"]
    _print_table(rows, args, epochs, len(curves), oracle)
    return rows


def _print_table(
    rows: list[dict[str, Any]], args: argparse.Namespace, epochs: int, count: int, oracle: float
) -> None:
    print_table(
        f"early-stopping replay: {count} recorded curves of {epochs} epochs ({args.curves.name}), "
        f"{args.orders} random orders, best final accuracy {oracle:.4f}; "
        "target for lcpfn: saved >= 2x, mean regret < 0.5 pp",
        [
            Column("pruner", "pruner", "<24"),
            Column("epochs", "epochs", ">8.1f"),
            Column("saved", lambda row: f"{row['saved']:.2f}x", ">7"),
            Column("regret pp", "regret_pp", ">10.2f"),
            Column("worst pp", "worst_regret_pp", ">9.2f"),
            Column("replay s", "seconds", ">9.1f"),
        ],
        rows,
    )


if __name__ == "__main__":
    main()
