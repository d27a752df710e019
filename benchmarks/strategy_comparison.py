"""Search strategies on a trained supernet: evolution vs random vs TPE at equal trial counts.

Trains the tiny supernet of ``--space`` (default vit_resnas) once on the digits with its
study recipe (studies/NAME.yaml), then runs each strategy (``nas.strategies``' own
samplers, built from the study config with ``strategy=NAME``: the evolution settings
are the study preset's) for ``--trials`` trials and each of ``--seeds`` seeds, on one
objective, the inherited validation accuracy (``supernet.extract`` + BN
recalibration, as ``evaluator=supernet`` scores a trial), under a FLOPs budget
``--max-mflops`` (default: the median FLOPs of 200 random children, so about half the
space is over it). A trial over the budget records its excess as the platform does
(the ``constraint`` attribute that TPE's and evolution's constraint handling read) and
does not count. Evolution redraws such children before they are scored, as the paper
does; TPE learns from them; random search ignores the budget.

Printed per strategy: the best accuracy within the budget (mean and min over seeds),
how many of its trials were within the budget, and the trial at which the best was
found; then the ratios against random search. Scores are cached per child: every
strategy scores a child the same.

    python benchmarks/strategy_comparison.py [--space vit_resnas] [--trials 60]
        [--seeds 3] [--max-mflops M] [--supernet-epochs N]
"""

from __future__ import annotations

import argparse
import statistics
import tempfile
import time
import warnings
from pathlib import Path
from typing import Any

from _table import Column, print_table

STRATEGIES = ("evolution", "tpe", "random")


def _parse(argv: list[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--space", choices=("bignas", "vit_resnas"), default="vit_resnas")
    parser.add_argument("--trials", type=int, default=60, help="trials per strategy and seed")
    parser.add_argument("--seeds", type=int, default=3)
    parser.add_argument("--max-mflops", type=float, default=None, help="default: the median")
    parser.add_argument("--supernet-epochs", type=int, default=None)
    parser.add_argument("--threads", type=int, default=1, help="torch threads")
    args = parser.parse_args(argv)
    for name in ("trials", "seeds", "threads"):
        if getattr(args, name) < 1:
            parser.error(f"--{name} must be >= 1, but got {getattr(args, name)}.")
    return args


class Scorer:
    """Inherited accuracy and FLOPs of children, cached by encoded architecture."""

    def __init__(self, space: Any, supernet: Any, data: Any, settings: Any) -> None:
        self.space, self.supernet, self.data, self.settings = space, supernet, data, settings
        self._cache: dict[str, tuple[float, float]] = {}

    def __call__(self, arch: Any) -> tuple[float, float]:
        import json

        import torch

        from evaluators import inherited_accuracy
        from nas.metrics import count_flops

        key = json.dumps(self.space.encode(arch), sort_keys=True)
        if key not in self._cache:
            child = self.supernet.extract(arch)
            flops = float(count_flops(child, self.data.spec.input_shape(1)))
            accuracy = inherited_accuracy(
                child,
                self.data,
                device=torch.device("cpu"),
                batches=self.settings.calibration_batches,
                batch_size=self.settings.batch_size,
            )
            self._cache[key] = (accuracy, flops)
        return self._cache[key]


def _median_flops(space: Any, spec: Any, count: int = 200) -> float:
    import numpy as np
    import torch

    from nas.core.random_trial import RandomTrial
    from nas.metrics import count_flops

    rng = np.random.default_rng(12345)
    values = []
    for _ in range(count):
        with torch.device("meta"):
            model = space.build(space.sample(RandomTrial(rng)), spec)
        values.append(float(count_flops(model, spec.input_shape(1))))
    return statistics.median(values)


def _search(
    strategy: str, seed: int, args: argparse.Namespace, ctx: dict[str, Any]
) -> dict[str, Any]:
    import optuna

    from nas import store
    from nas.config import compose_search
    from nas.strategies import create_sampler

    space, scorer, limit = ctx["space"], ctx["scorer"], ctx["limit"]
    config = compose_search(
        [
            f"space={args.space}",
            f"strategy={strategy}",
            "objectives=[accuracy]",
            f"constraints.max_flops={limit}",
            f"seed={seed}",
            f"trials={args.trials}",
        ]
    )
    sampler = create_sampler(config, resumed_trials=0, space=space)
    study = optuna.create_study(direction="maximize", sampler=sampler)
    study.set_user_attr(store.ATTR_DATA_SPEC, vars(ctx["data"].spec).copy())
    best, best_trial, feasible = float("-inf"), -1, 0
    for number in range(args.trials):
        trial = study.ask()
        accuracy, flops = scorer(space.sample(trial))
        trial.set_user_attr("constraint", [flops - limit])
        study.tell(trial, accuracy)
        if flops <= limit:
            feasible += 1
            if accuracy > best:
                best, best_trial = accuracy, number
    return {"strategy": strategy, "seed": seed, "best": best, "at": best_trial, "ok": feasible}


def _summaries(results: list[dict[str, Any]]) -> list[dict[str, Any]]:
    rows = []
    for strategy in STRATEGIES:
        mine = [r for r in results if r["strategy"] == strategy]
        rows.append(
            {
                "strategy": strategy,
                "mean_best": statistics.mean(r["best"] for r in mine),
                "min_best": min(r["best"] for r in mine),
                "feasible": statistics.mean(r["ok"] for r in mine),
                "found_at": statistics.mean(r["at"] for r in mine),
            }
        )
    random_best = next(r["mean_best"] for r in rows if r["strategy"] == "random")
    for row in rows:
        row["vs_random"] = row["mean_best"] - random_best
    return rows


def main(argv: list[str] | None = None) -> list[dict[str, Any]]:
    """Run the benchmark, print its table and return its rows (one per strategy)."""
    import optuna
    import torch

    from evaluators import SupernetSettings, train_supernet
    from nas.config import compose_search, to_container
    from nas.data import load_dataset
    from search_spaces import create_space

    args = _parse(argv)
    torch.set_num_threads(args.threads)
    optuna.logging.set_verbosity(optuna.logging.WARNING)
    # TPE's `group` is experimental and its constraints_func deprecated in Optuna 5: noise here.
    warnings.filterwarnings("ignore", category=optuna.exceptions.ExperimentalWarning)
    warnings.filterwarnings("ignore", message=".*constraints_func", category=FutureWarning)
    config = compose_search([f"space={args.space}"])
    recipe = to_container(config.supernet)
    if args.supernet_epochs is not None:
        recipe["epochs"] = args.supernet_epochs
    settings = SupernetSettings(**recipe)
    space = create_space(args.space, **to_container(config.model))
    data = load_dataset(config.dataset)
    torch.manual_seed(0)
    supernet = space.supernet(data.spec)
    started = time.perf_counter()
    with tempfile.TemporaryDirectory(prefix="nas-bench-") as tmp:
        train_supernet(
            space, supernet, data, settings, device=torch.device("cpu"), seed=0,
            checkpoint=Path(tmp) / "supernet.pt",
        )  # fmt: skip
    supernet_s = time.perf_counter() - started
    supernet.eval()
    limit = args.max_mflops * 1e6 if args.max_mflops else _median_flops(space, data.spec)
    ctx = {"space": space, "data": data, "limit": limit}
    ctx["scorer"] = Scorer(space, supernet, data, settings)
    results = [
        _search(strategy, seed, args, ctx) for seed in range(args.seeds) for strategy in STRATEGIES
    ]
    rows = _summaries(results)
    print_table(
        f"{args.space} (tiny) on {config.dataset}: best inherited validation accuracy within "
        f"{limit / 1e6:.2f} MFLOPs after {args.trials} trials, {args.seeds} seeds "
        f"(supernet {settings.epochs} epochs, {supernet_s:.0f} s), "
        f"{torch.get_num_threads()} torch threads, cpu",
        [
            Column("strategy", "strategy", "<10"),
            Column("mean best", "mean_best", ">10.4f"),
            Column("min best", "min_best", ">9.4f"),
            Column("vs random", "vs_random", ">+10.4f"),
            Column("within budget", "feasible", ">14.1f"),
            Column("best at trial", "found_at", ">14.1f"),
        ],
        rows,
    )
    return rows


if __name__ == "__main__":
    main()
