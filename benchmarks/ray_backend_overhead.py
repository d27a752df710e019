"""``nas search backend=ray`` vs plain Ray Tune with OptunaSearch, on the same trials.

Both sides train the same ``--trials`` NASNet architectures (drawn once by Optuna's
random sampler, seed 0) on the embedded digits data for ``--epochs`` epochs each, one
trial at a time on a local Ray instance with one CPU per trial:

* ``plain``: ``tune.Tuner`` with ``OptunaSearch`` (the architectures as its
  ``points_to_evaluate``) and a function trainable that builds the network and trains
  it with ``evaluators.train_standalone``, reporting every epoch;
* ``nas``: ``nas.ray_backend.run_with_ray`` on a study whose queue holds the same
  architectures: each Tune trial asks the SQL study, trains, stores curve, costs and
  weights, and tells the study.

``seconds`` is the wall time of the whole call (Ray start included on both sides);
the ratio is nas over plain.

    python benchmarks/ray_backend_overhead.py [--trials 20] [--epochs 2]
"""

from __future__ import annotations

import argparse
import os
import tempfile
import time
from pathlib import Path
from typing import Any

from _table import Column, print_table

MODEL = {"cells_per_stage": 1, "init_channels": 4}


def _parse(argv: list[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--trials", type=int, default=20)
    parser.add_argument("--epochs", type=int, default=2)
    args = parser.parse_args(argv)
    if args.trials < 1 or args.epochs < 1:
        parser.error("--trials and --epochs must be >= 1.")
    return args


def architectures(count: int) -> list[dict[str, Any]]:
    """The parameters of ``count`` NASNet architectures from a seeded random sampler."""
    import optuna

    from search_spaces import create_space

    optuna.logging.set_verbosity(optuna.logging.WARNING)
    space = create_space("nasnet", **MODEL)
    study = optuna.create_study(sampler=optuna.samplers.RandomSampler(seed=0))
    params = []
    for _ in range(count):
        trial = study.ask()
        space.sample(trial)
        params.append(dict(trial.params))
        study.tell(trial, 0.0)
    return params


def _define_by_run(trial: Any) -> None:
    """OptunaSearch's space: the NASNet space's own sampling (module level: it is pickled)."""
    from search_spaces import create_space

    create_space("nasnet", **MODEL).sample(trial)


def _plain_trainable(params: dict[str, Any]) -> None:
    import optuna
    import torch
    from ray import tune

    from evaluators import TrainSettings, train_standalone
    from nas.data import load_dataset
    from search_spaces import create_space

    epochs = int(os.environ["BENCH_EPOCHS"])
    space = create_space("nasnet", **MODEL)
    data = load_dataset("digits")
    arch = space.sample(optuna.trial.FixedTrial(params))
    torch.manual_seed(0)
    model = space.build(arch, data.spec)
    # studies/nasnet.yaml's training settings, with the batch size of the nas side.
    settings = TrainSettings(batch_size=128, optimizer="adamw", lr=0.004, weight_decay=1e-4)
    train_standalone(
        model,
        data,
        settings,
        epochs=epochs,
        device=torch.device("cpu"),
        seed=0,
        on_epoch=lambda report: tune.report({"accuracy": report.val_accuracy}),
    )


def _run_plain(params: list[dict[str, Any]], epochs: int, tmp: Path) -> float:
    import ray
    from ray import tune
    from ray.tune.search.optuna import OptunaSearch

    started = time.perf_counter()
    ray.init(include_dashboard=False, runtime_env={"env_vars": {"BENCH_EPOCHS": str(epochs)}})
    try:
        searcher = OptunaSearch(
            space=_define_by_run,
            metric="accuracy",
            mode="max",
            points_to_evaluate=params,
        )
        tuner = tune.Tuner(
            tune.with_resources(_plain_trainable, {"cpu": 1}),
            tune_config=tune.TuneConfig(
                search_alg=searcher, num_samples=len(params), max_concurrent_trials=1
            ),
            run_config=tune.RunConfig(storage_path=str(tmp / "plain"), verbose=0),
        )
        tuner.fit()
    finally:
        ray.shutdown()
    return time.perf_counter() - started


def _run_nas(params: list[dict[str, Any]], epochs: int, tmp: Path) -> float:
    from nas.config import compose_search
    from nas.ray_backend import run_with_ray
    from nas.search import prepare_study

    overrides = [
        "space=nasnet",
        f"storage=sqlite:///{tmp / 'nas.db'}",
        f"trials={len(params)}",
        f"epochs={epochs}",
        "train.batch_size=128",
        "pruner=none",
        "backend=ray",
        *(f"model.{k}={v}" for k, v in MODEL.items()),
    ]
    config = compose_search(overrides)
    study = prepare_study(config, echo=lambda *_: None)
    for point in params:
        study.enqueue_trial(point)
    started = time.perf_counter()
    finished, _ = run_with_ray(config, echo=lambda *_: None)
    seconds = time.perf_counter() - started
    if finished != len(params):
        raise SystemExit(f"nas finished {finished} of {len(params)} trials")
    return seconds


def main(argv: list[str] | None = None) -> list[dict[str, Any]]:
    args = _parse(argv)
    params = architectures(args.trials)
    with tempfile.TemporaryDirectory() as tmp:
        plain = _run_plain(params, args.epochs, Path(tmp))
        ours = _run_nas(params, args.epochs, Path(tmp))
    rows = [
        {"variant": "plain Ray Tune + OptunaSearch", "seconds": plain, "ratio": 1.0},
        {"variant": "nas backend=ray", "seconds": ours, "ratio": ours / plain},
    ]
    print_table(
        f"ray backend overhead: {args.trials} NASNet trials x {args.epochs} epochs on digits, "
        f"one at a time, local Ray, {os.cpu_count()} CPU cores; target ratio <= 1.2",
        [
            Column("variant", "variant", "<32"),
            Column("seconds", "seconds", ">8.1f"),
            Column("s/trial", lambda row: row["seconds"] / args.trials, ">8.2f"),
            Column("ratio", "ratio", ">6.2f"),
        ],
        rows,
    )
    return rows


if __name__ == "__main__":
    main()
