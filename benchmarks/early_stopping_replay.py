"""Early stopping replayed on real learning curves, tuned on one half and judged on the other.

Replays the recorded corpus (``benchmarks/data/real_curves.json.gz``, written by
``benchmarks/record_corpus.py`` from the platform's own stand-alone trials). Each
family's curves of one half form one study, as if one search had tried them: a replay
walks them in a random order through a single-objective Optuna study (in memory),
reporting every epoch of a curve and asking the pruner after each; a stopped trial costs
the epochs it ran, a finished one all of them.

* ``saved``: epochs without pruning / epochs with it, summed over families (mean over
  ``--orders`` random orders);
* ``regret``: per family, the best final accuracy of all its curves minus the best among
  the curves the pruner let finish, in percentage points; the mean over families and
  orders, and the worst single replay.

Every pruner has a few variants (``VARIANTS``: its knobs; the first is what ``nas search
pruner=NAME`` builds). The variant of each pruner is chosen on the **tuning half**: the
one saving most with mean regret <= ``--max-regret`` (0.5 pp), else the one of least
regret. Only the **held-out half**, which nothing was fitted or tuned on (the shipped
LC-PFN included), is reported for the chosen variants. LC-PFN's predictions are computed
once per (curve, observed epochs) in one batched call and replayed from that cache, as the
predictive distribution does not depend on the target it is compared with.

``--every-variant`` also replays every variant on the held-out half, choosing nothing:
each pruner's trade-off curve, to compare pruners at equal regret.

    python benchmarks/early_stopping_replay.py [--orders 20] [--corpus PATH] [--weights PATH]
        [--max-regret 0.5] [--every-variant]
"""

from __future__ import annotations

import argparse
import statistics
import time
import warnings
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

import numpy as np
from _table import Column, print_table

DEFAULT_CORPUS = Path(__file__).parent / "data" / "real_curves.json.gz"
MAX_REGRET_PP = 0.5
PRUNERS = ("none", "median", "successive_halving", "hyperband", "lcpfn")


def _variants(epochs: int) -> dict[str, list[tuple[str, Callable[[], Any]]]]:
    """Labelled pruner factories per pruner; the first of each is the platform's default."""
    import optuna

    from nas.config import compose_search
    from nas.pruners import create_pruner

    def platform(name: str, *extra: str) -> Callable[[], Any]:
        return lambda: create_pruner(compose_search([f"pruner={name}", f"epochs={epochs}", *extra]))

    variants: dict[str, list[tuple[str, Callable[[], Any]]]] = {
        "none": [("", platform("none"))],
        "median": [("warm-up E/2", platform("median"))],
        "successive_halving": [("r=1 eta=4", platform("successive_halving"))],
        "hyperband": [("r=1 eta=3", platform("hyperband"))],
        "lcpfn": [],
    }
    for warmup in (2, 5, 15):  # the default is E/2
        variants["median"].append(
            (
                f"warm-up {warmup}",
                lambda w=warmup: optuna.pruners.MedianPruner(n_startup_trials=5, n_warmup_steps=w),
            )
        )
    for low in (1, 2, 5):
        for eta in (2, 3, 4):
            if (low, eta) != (1, 4):  # the default
                variants["successive_halving"].append(
                    (
                        f"r={low} eta={eta}",
                        lambda r=low, e=eta: optuna.pruners.SuccessiveHalvingPruner(
                            min_resource=r, reduction_factor=e
                        ),
                    )
                )
            if (low, eta) != (1, 3):  # the default
                variants["hyperband"].append(
                    (
                        f"r={low} eta={eta}",
                        lambda r=low, e=eta: optuna.pruners.HyperbandPruner(
                            min_resource=r, max_resource=epochs, reduction_factor=e
                        ),
                    )
                )
    for threshold in (0.15, 0.01, 0.02, 0.05, 0.1, 0.25, 0.4):
        variants["lcpfn"].append(
            (f"threshold {threshold:g}", platform("lcpfn", f"lcpfn.threshold={threshold}"))
        )
    return variants


def _parse(argv: list[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--corpus", type=Path, default=DEFAULT_CORPUS, help="recorded curves")
    parser.add_argument("--orders", type=int, default=20, help="random trial orders")
    parser.add_argument("--pruners", nargs="+", choices=PRUNERS, default=list(PRUNERS))
    parser.add_argument("--max-regret", type=float, default=MAX_REGRET_PP, help="pp, tuning")
    parser.add_argument("--threads", type=int, default=1, help="torch threads")
    parser.add_argument("--weights", help="an LC-PFN other than the shipped one")
    parser.add_argument(
        "--every-variant",
        action="store_true",
        help="also replay every variant on the held-out half: each pruner's trade-off curve",
    )
    args = parser.parse_args(argv)
    if args.orders < 1:
        parser.error(f"--orders must be >= 1, but got {args.orders}.")
    return args


class CachedPredictions:
    """Stands in for a ``CurvePredictor``: every prefix's prediction computed up front."""

    def __init__(self, predictor: Any, curves: np.ndarray) -> None:
        self.model = predictor.model
        self.scale = predictor.scale
        self._predictor = predictor
        self.final = curves.shape[1]
        prefixes = [row[:cut].tolist() for row in curves for cut in range(1, self.final)]
        logits = predictor.predict(prefixes, at_epoch=[self.final], run_epochs=self.final).logits
        self._logits = {tuple(p): logits[i : i + 1] for i, p in enumerate(prefixes)}

    def predict(
        self,
        curves: Sequence[Sequence[float]],
        at_epoch: int | Sequence[int],
        *,
        run_epochs: int | None = None,
    ) -> Any:
        from evaluators.lcpfn import Prediction

        assert at_epoch == run_epochs == self.final and len(curves) == 1, (at_epoch, run_epochs)
        logits = self._logits[tuple(float(v) for v in curves[0])]
        return Prediction(
            logits, self._predictor.model.distribution, self.scale, (self.final,), True
        )


def replay(
    pruner: Any, curves: np.ndarray, order: Sequence[int], name: str = "replay"
) -> tuple[int, float]:
    """Epochs trained and best final accuracy among finished trials, for one order."""
    import optuna

    # A fixed name: hyperband puts a trial in the bracket a hash of the study's name and
    # the trial's number picks, so a generated name made its figures vary from run to run.
    study = optuna.create_study(study_name=name, direction="maximize", pruner=pruner)
    spent, best = 0, float("-inf")
    for index in order:
        curve = [float(v) for v in curves[index]]
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


def score(
    make: Callable[[], Any],
    studies: dict[str, np.ndarray],
    caches: dict[str, CachedPredictions] | None,
    orders: int,
) -> dict[str, float]:
    """Saved and regret of one pruner variant over every family's study and order."""
    spent_per_order = np.zeros(orders)
    regrets: list[float] = []
    for family, curves in studies.items():
        for order in range(orders):
            pruner = make()
            if caches is not None:
                pruner.stopper.predictor = caches[family]
            permutation = np.random.default_rng([order, 11]).permutation(len(curves))
            spent, best = replay(pruner, curves, permutation.tolist(), f"{family}-{order}")
            spent_per_order[order] += spent
            regrets.append(100.0 * (float(curves[:, -1].max()) - best))
    full = sum(curves.size for curves in studies.values())
    return {
        "epochs": float(spent_per_order.mean()),
        "saved": full / float(spent_per_order.mean()),
        "regret_pp": statistics.mean(regrets),
        "worst_regret_pp": max(regrets),
    }


def choose(rows: list[dict[str, Any]], max_regret: float) -> dict[str, Any]:
    """The variant saving most within ``max_regret``; else the one of least regret."""
    within = [row for row in rows if row["regret_pp"] <= max_regret]
    if within:
        return max(within, key=lambda row: (row["saved"], -row["regret_pp"]))
    return min(rows, key=lambda row: row["regret_pp"])


def _studies(path: Path, split: str) -> dict[str, np.ndarray]:
    from evaluators.lcpfn.corpus import load_curve_corpus

    corpus = load_curve_corpus(path, split)
    return {
        family: corpus.curves[[f == family for f in corpus.families]]
        for family in sorted(set(corpus.families))
    }


def main(argv: list[str] | None = None) -> list[dict[str, Any]]:
    import optuna
    import torch

    from evaluators.lcpfn import CurvePredictor, load_lcpfn

    args = _parse(argv)
    torch.set_num_threads(args.threads)
    optuna.logging.set_verbosity(optuna.logging.WARNING)
    warnings.filterwarnings("ignore", category=optuna.exceptions.ExperimentalWarning)
    halves = {split: _studies(args.corpus, split) for split in ("tuning", "held-out")}
    epochs = next(iter(halves["tuning"].values())).shape[1]
    predictor = CurvePredictor(load_lcpfn(args.weights))
    caches = {
        split: {family: CachedPredictions(predictor, curves) for family, curves in studies.items()}
        for split, studies in halves.items()
    }
    variants = _variants(epochs)
    tuning_rows: list[dict[str, Any]] = []
    rows: list[dict[str, Any]] = []
    curve_rows: list[dict[str, Any]] = []
    for name in args.pruners:
        started = time.perf_counter()
        tried = [
            {"pruner": name, "variant": label, "make": make}
            | score(
                make, halves["tuning"], caches["tuning"] if name == "lcpfn" else None, args.orders
            )
            for label, make in variants[name]
        ]
        tuning_rows += tried
        chosen = choose(tried, args.max_regret)
        held = score(
            chosen["make"],
            halves["held-out"],
            caches["held-out"] if name == "lcpfn" else None,
            args.orders,
        )
        rows.append(
            {
                "pruner": name,
                "variant": chosen["variant"],
                "tuning_saved": chosen["saved"],
                "tuning_regret_pp": chosen["regret_pp"],
                **held,
                "seconds": time.perf_counter() - started,
            }
        )
        if args.every_variant:
            held_cache = caches["held-out"] if name == "lcpfn" else None
            curve_rows += [
                {"pruner": name, "variant": row["variant"]}
                | score(row["make"], halves["held-out"], held_cache, args.orders)
                for row in tried
            ]
    _print_tables(tuning_rows, rows, args, halves)
    if curve_rows:
        print()
        print_table(
            "every variant on the held-out half, nothing chosen (each pruner's trade-off "
            "between epochs saved and regret; compare pruners at equal regret)",
            _VARIANT_COLUMNS,
            curve_rows,
        )
    for row in tuning_rows:
        row.pop("make")
    return rows


_VARIANT_COLUMNS = [
    Column("pruner", "pruner", "<20"),
    Column("variant", "variant", "<16"),
    Column("saved", lambda row: f"{row['saved']:.2f}x", ">7"),
    Column("regret pp", "regret_pp", ">10.2f"),
]


def _print_tables(
    tuning_rows: list[dict[str, Any]],
    rows: list[dict[str, Any]],
    args: argparse.Namespace,
    halves: dict[str, dict[str, np.ndarray]],
) -> None:
    def describe(split: str) -> str:
        studies = halves[split]
        sizes = ", ".join(f"{family} {len(curves)}" for family, curves in studies.items())
        return f"{split} half ({sizes} curves of {next(iter(studies.values())).shape[1]} epochs)"

    print_table(
        f"early-stopping variants on the {describe('tuning')}, {args.orders} orders",
        _VARIANT_COLUMNS,
        tuning_rows,
    )
    print()
    print_table(
        f"early stopping judged on the {describe('held-out')}, {args.orders} orders; each "
        f"pruner's variant chosen on the tuning half (most saved at regret <= "
        f"{args.max_regret:g} pp); target for lcpfn: saved >= 2x at regret <= 0.5 pp, more "
        "than hyperband",
        [
            Column("pruner", "pruner", "<20"),
            Column("variant", "variant", "<16"),
            Column("tuning", lambda row: f"{row['tuning_saved']:.2f}x", ">7"),
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
