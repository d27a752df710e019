"""Stand-alone trial throughput on the embedded default (digits, studies/nasnet.yaml).

Runs ``--trials`` real trials through ``nas.search.run_search`` with ``pruner=none`` (real
sampling, training, FLOP counting, weights and store, in a temporary SQLite file), then
trains the same architectures again -- decoded from each trial's stored ``arch``, built
and trained with the trial's stored ``seed`` -- in a minimal plain-PyTorch loop: the same
optimiser, cosine schedule, gradient clipping, batch size, epochs and data tensors,
validation accuracy after every epoch, and nothing else. The ratio nas/plain of seconds
per trial is what the platform costs on top of training.

Times are the trial loop alone (for ``nas`` from the first ``ask`` to the last ``tell``;
setting up the study and loading the data are shown apart). ``img/s`` counts training
images per second of that loop, so validation and bookkeeping lower it. ``val acc`` is
the mean final validation accuracy: equal on both sides when the two loops did the
same arithmetic.

The plain loop leaves out the drop-path schedule and the auxiliary loss, which the
preset switches off (``model.drop_path=0``, ``model.auxiliary_head=false``).

    python benchmarks/standalone_throughput.py [--trials 6] [--epochs 4] [--device cpu]
"""

from __future__ import annotations

import argparse
import statistics
import tempfile
import time
import warnings
from dataclasses import asdict
from itertools import pairwise
from pathlib import Path
from typing import Any

from _table import Column, print_table

from nas.progress import Best, SilentReporter

VARIANTS = ("nas", "plain")


class _TimingReporter(SilentReporter):
    """Prints nothing; notes when the trial loop starts and ends."""

    def __init__(self) -> None:
        self.loop_started = 0.0
        self.loop_ended = 0.0
        self.finished: list[float] = []  # when each trial was told

    def start(self, *, study: str, done: int, total: int, best: Best) -> None:
        self.loop_started = time.perf_counter()

    def trial_finished(self, number: int, outcome: str, *, done: int, best: Best) -> None:
        self.finished.append(time.perf_counter())

    def close(self) -> None:
        self.loop_ended = time.perf_counter()


def _train_plain(
    model: Any, train_set: Any, val_set: Any, train: Any, *, epochs: int, seed: int, device: Any
) -> list[float]:
    """Train from scratch and return the validation accuracy after each epoch."""
    import torch
    from torch import nn
    from torch.utils.data import DataLoader

    torch.manual_seed(seed)
    loader = DataLoader(
        train_set,
        batch_size=train.batch_size,
        shuffle=True,
        generator=torch.Generator().manual_seed(seed),
    )
    model.to(device)
    optimizer: torch.optim.Optimizer
    if train.optimizer == "adamw":
        optimizer = torch.optim.AdamW(
            model.parameters(), lr=train.lr, weight_decay=train.weight_decay
        )
    else:
        optimizer = torch.optim.SGD(
            model.parameters(),
            lr=train.lr,
            momentum=train.momentum,
            nesterov=train.momentum > 0,
            weight_decay=train.weight_decay,
        )
    schedule = torch.optim.lr_scheduler.CosineAnnealingLR(optimizer, T_max=epochs * len(loader))
    criterion = nn.CrossEntropyLoss(label_smoothing=train.label_smoothing)
    curve = []
    for _ in range(epochs):
        model.train()
        for inputs, targets in loader:
            inputs, targets = inputs.to(device), targets.to(device)
            loss = criterion(model(inputs), targets)
            optimizer.zero_grad(set_to_none=True)
            loss.backward()
            if train.grad_clip > 0:
                nn.utils.clip_grad_norm_(model.parameters(), train.grad_clip)
            optimizer.step()
            schedule.step()
        model.eval()
        correct = 0
        with torch.no_grad():
            for inputs, targets in DataLoader(val_set, batch_size=256):
                predictions = model(inputs.to(device)).argmax(dim=1)
                correct += int((predictions == targets.to(device)).sum())
        curve.append(correct / len(val_set))
    return curve


def _warm_up(config: Any, space: Any, data: Any, device: Any) -> None:
    """Untimed first-use costs on both sides: lazy imports, torch kernels, allocators.

    A one-trial, one-epoch search in its own study of the same store, then a short plain
    run on a slice of the data.
    """
    from torch.utils.data import Subset

    from nas.config import compose_search
    from nas.search import run_search

    overrides = [
        f"storage={config.storage}",
        f"artifacts={config.artifacts}",
        "study=warm-up",
        "trials=1",
        "epochs=1",
        "pruner=none",
        f"device={config.device}",
    ]
    run_search(compose_search(overrides), reporter=_TimingReporter(), echo=lambda *_: None)
    model = space.build(space.named_architectures()["nasnet-a"], data.spec)
    subset = Subset(data.train, range(4 * config.train.batch_size))
    _train_plain(model, subset, data.val, config.train, epochs=1, seed=0, device=device)


def _parse(argv: list[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--trials", type=int, default=6, help="trials on each side")
    parser.add_argument("--epochs", type=int, default=None, help="default: the preset's (4)")
    parser.add_argument("--device", default="cpu", help="cpu, cuda or cuda:N (both sides)")
    args = parser.parse_args(argv)
    if args.trials < 1 or (args.epochs is not None and args.epochs < 1):
        parser.error("--trials and --epochs must be >= 1.")
    return args


def _row(
    variant: str, epochs: int, num_train: int, setup: float, per_trial: list[float], acc: float
) -> dict[str, Any]:
    trials, loop = len(per_trial), sum(per_trial)
    return {
        "variant": variant,
        "trials": trials,
        "epochs": epochs,
        "setup_s": setup,
        "loop_s": loop,
        "trial_s": per_trial,
        "trials_per_min": 60 * trials / loop,
        "s_per_trial": loop / trials,
        "s_per_epoch": loop / (trials * epochs),
        "images_per_s": trials * epochs * num_train / loop,
        "val_acc": acc,
    }


def _run_nas(config: Any) -> tuple[float, list[float], list[Any]]:
    """(setup seconds, seconds of each trial, the finished trials) of one search."""
    from nas.search import run_search

    reporter = _TimingReporter()
    started = time.perf_counter()
    outcome = run_search(config, reporter=reporter, echo=lambda *_: None)
    total = time.perf_counter() - started
    trials = sorted(outcome.study.get_trials(deepcopy=False), key=lambda t: t.number)
    if len(trials) != config.trials or any(t.state.name != "COMPLETE" for t in trials):
        raise RuntimeError(f"expected {config.trials} complete trials, got {trials}.")
    marks = [reporter.loop_started, *reporter.finished]
    per_trial = [later - earlier for earlier, later in pairwise(marks)]
    return total - (reporter.loop_ended - reporter.loop_started), per_trial, trials


def _run_plain(
    config: Any, space: Any, data: Any, trials: list[Any], device: Any
) -> tuple[list[float], list[float]]:
    """(seconds of each trial, final accuracies), replaying the stored trials."""
    import torch

    per_trial, final = [], []
    for trial in trials:
        started = time.perf_counter()
        arch = space.decode(trial.user_attrs["arch"])
        seed = trial.user_attrs["seed"]
        torch.manual_seed(seed)  # as nas seeds the initial weights
        model = space.build(arch, data.spec)
        curve = _train_plain(
            model,
            data.train,
            data.val,
            config.train,
            epochs=config.epochs,
            seed=seed,
            device=device,
        )
        per_trial.append(time.perf_counter() - started)
        final.append(curve[-1])
    return per_trial, final


def _print_table(rows: list[dict[str, Any]], header_line: str) -> None:
    print_table(
        header_line,
        [
            Column("variant", "variant", "<8"),
            Column("trials", "trials", ">6"),
            Column("epochs", "epochs", ">6"),
            Column("setup s", "setup_s", ">8.2f"),
            Column("loop s", "loop_s", ">8.2f"),
            Column("trials/min", "trials_per_min", ">10.2f"),
            Column("s/trial", "s_per_trial", ">8.2f"),
            Column("s/epoch", "s_per_epoch", ">8.3f"),
            Column("img/s", "images_per_s", ">7.0f"),
            Column("val acc", "val_acc", ">8.4f"),
            Column("nas/plain", lambda row: f"{row['ratio']:.3f}x", ">9"),
        ],
        rows,
    )


def main(argv: list[str] | None = None) -> list[dict[str, Any]]:
    """Run the benchmark, print its table and return its rows."""
    import optuna
    import torch

    from nas.config import compose_search
    from nas.data import load_dataset
    from search_spaces import create_space

    args = _parse(argv)
    optuna.logging.set_verbosity(optuna.logging.WARNING)
    warnings.filterwarnings("ignore", category=optuna.exceptions.ExperimentalWarning)
    device = torch.device(args.device)
    with tempfile.TemporaryDirectory(prefix="nas-bench-") as tmp:
        overrides = [
            f"storage=sqlite:///{Path(tmp) / 'store.db'}",
            f"artifacts={Path(tmp) / 'artifacts'}",
            "study=throughput",
            f"trials={args.trials}",
            "pruner=none",
            f"device={args.device}",
        ]
        if args.epochs is not None:
            overrides.append(f"epochs={args.epochs}")
        config = compose_search(overrides)
        space = create_space(config.space, **asdict(config.model))
        data = load_dataset(config.dataset)
        _warm_up(config, space, data, device)

        nas_setup, nas_trials, trials = _run_nas(config)
        plain_trials, plain_final = _run_plain(config, space, data, trials, device)

    nas_acc = statistics.mean(t.user_attrs["curve"][-1] for t in trials)
    rows = [
        _row("nas", config.epochs, data.num_train, nas_setup, nas_trials, nas_acc),
        _row(
            "plain", config.epochs, data.num_train, 0.0, plain_trials, statistics.mean(plain_final)
        ),
    ]
    for row in rows:
        row["ratio"] = row["s_per_trial"] / rows[1]["s_per_trial"]
    _print_table(
        rows,
        f"stand-alone throughput: {config.space} on {config.dataset} ({data.num_train} train / "
        f"{data.num_val} val images), {args.trials} trials x {config.epochs} epochs, "
        f"batch {config.train.batch_size}, {config.train.optimizer}, {device}, "
        f"{torch.get_num_threads()} torch threads",
    )
    return rows


if __name__ == "__main__":
    main()
