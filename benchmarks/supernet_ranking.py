"""Supernet ranking quality: children with inherited weights vs the same children trained alone.

Trains the tiny supernet of ``--space`` (bignas or vit_resnas) on the digits with the
space's study recipe (studies/NAME.yaml, ``train_supernet``, checkpoint in a temporary
folder), then scores ``--children`` children: the smallest, the largest and random ones
(``RandomTrial``, seeded, all distinct).

* ``inherited``: ``supernet.extract(arch)``, BN recalibrated on the preset's
  ``calibration_batches`` training batches (``CALIBRATION_SEED``), validation accuracy.
* ``alone``: ``space.build(arch)`` (seeded initialisation) trained from scratch with
  ``train_standalone`` for ``--epochs-alone`` epochs (default: the supernet's) with the
  supernet's optimizer (SGD with Nesterov momentum, or AdamW), batch size, peak lr,
  momentum, weight decay, gradient clipping and label smoothing, per-step cosine decay to
  0, no warm-up; the space's own regularisation (BigNAS tiny: dropout 0.1, drop-connect
  0.05; ViT-ResNAS tiny: stochastic depth 0.05).

Printed: each child's FLOPs and both accuracies; Kendall's tau-b between the two
rankings (the weight-sharing proxy's quality) and of each against FLOPs; the biggest
child inherited vs alone; and the wall time of training the supernet once vs training
the children alone one by one (both include their per-epoch validations).

    python benchmarks/supernet_ranking.py [--space vit_resnas] [--children 8]
        [--supernet-epochs N] [--epochs-alone N] [--seed 0]
"""

from __future__ import annotations

import argparse
import math
import tempfile
import time
from pathlib import Path
from typing import Any

from _table import Column, print_table


def _parse(argv: list[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--space", choices=("bignas", "vit_resnas"), default="bignas")
    parser.add_argument(
        "--children", type=int, default=8, help="smallest, largest and N-2 random children"
    )
    parser.add_argument(
        "--supernet-epochs", type=int, default=None, help="default: the study preset's"
    )
    parser.add_argument(
        "--epochs-alone", type=int, default=None, help="default: the supernet's epochs"
    )
    parser.add_argument("--seed", type=int, default=0, help="training and child sampling")
    parser.add_argument("--threads", type=int, default=2, help="torch threads")
    args = parser.parse_args(argv)
    if args.children < 2:
        parser.error(f"--children must be >= 2, but got {args.children}.")
    for name in ("supernet_epochs", "epochs_alone"):
        value = getattr(args, name)
        if value is not None and value < 1:
            parser.error(f"--{name.replace('_', '-')} must be >= 1, but got {value}.")
    if args.threads < 1:
        parser.error(f"--threads must be >= 1, but got {args.threads}.")
    return args


def _children(space: Any, count: int, seed: int) -> list[tuple[str, Any]]:
    """(role, arch): the smallest, the largest, then distinct random children."""
    import numpy as np

    from nas.core.random_trial import RandomTrial

    chosen = [("smallest", space.smallest()), ("largest", space.largest())]
    seen = {repr(space.encode(arch)) for _, arch in chosen}
    rng = np.random.default_rng(seed)
    for _ in range(1000 * count):
        if len(chosen) >= count:
            break
        arch = space.sample(RandomTrial(rng))
        key = repr(space.encode(arch))
        if key not in seen:
            seen.add(key)
            chosen.append((f"random-{len(chosen) - 1}", arch))
    if len(chosen) < count:
        raise RuntimeError(f"found only {len(chosen)} distinct children of {count}.")
    return chosen


def _kendall(x: list[float], y: list[float]) -> float:
    """Kendall's tau-b (scipy's); NaN when either side is constant."""
    import warnings

    from scipy.stats import kendalltau

    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # constant input: NaN, said in the table
        return float(kendalltau(x, y).statistic)


def _alone(
    space: Any, arch: Any, data: Any, train: Any, epochs: int, device: Any, seed: int
) -> float:
    import torch

    from evaluators import train_standalone

    torch.manual_seed(seed)  # initial weights
    model = space.build(arch, data.spec)
    return train_standalone(model, data, train, epochs=epochs, device=device, seed=seed)[-1]


def _fmt(value: float) -> str:
    return "   nan" if math.isnan(value) else f"{value:+.3f}"


def _print_table(rows: list[dict[str, Any]], summary: dict[str, Any], header: str) -> None:
    print_table(
        header,
        [
            Column("child", "child", "<10"),
            Column("MFLOPs", lambda row: row["flops"] / 1e6, ">7.2f"),
            Column("inherited", "inherited_acc", ">9.4f"),
            Column("alone", "alone_acc", ">7.4f"),
            Column("alone s", "alone_s", ">8.1f"),
            Column(" architecture", lambda row: f" {row['arch']}", ""),
        ],
        rows,
    )
    print("-" * 60)
    print(
        f"Kendall tau-b over {len(rows)} children: inherited vs alone "
        f"{_fmt(summary['tau_inherited_alone'])}; vs FLOPs: inherited "
        f"{_fmt(summary['tau_inherited_flops'])}, alone {_fmt(summary['tau_alone_flops'])}"
    )
    print(
        f"biggest child: inherited {summary['biggest_inherited']:.4f} vs alone "
        f"{summary['biggest_alone']:.4f} (inherited - alone {summary['biggest_gap']:+.4f})"
    )
    print(
        f"wall time: supernet {summary['supernet_s']:.1f} s ({summary['supernet_epochs']} "
        f"epochs) + inherited scoring {summary['inherited_s']:.1f} s for {len(rows)} children "
        f"vs alone {summary['alone_s']:.1f} s ({len(rows)} x {summary['epochs_alone']} epochs): "
        f"alone / supernet {summary['cost_ratio']:.2f}x"
    )


def main(argv: list[str] | None = None) -> list[dict[str, Any]]:
    """Run the benchmark, print its table and return its rows (children, then a summary)."""
    import torch

    from evaluators import SupernetSettings, TrainSettings, child_accuracy, train_supernet
    from nas.config import compose_search, to_container
    from nas.data import load_dataset
    from nas.metrics import count_flops
    from search_spaces import create_space

    args = _parse(argv)
    torch.set_num_threads(args.threads)
    device = torch.device("cpu")
    config = compose_search([f"space={args.space}"])
    recipe = to_container(config.supernet)
    if args.supernet_epochs is not None:
        recipe["epochs"] = args.supernet_epochs
    settings = SupernetSettings(**recipe)
    epochs_alone = args.epochs_alone if args.epochs_alone is not None else settings.epochs
    train = TrainSettings(
        batch_size=settings.batch_size,
        optimizer=settings.optimizer,
        lr=settings.lr,
        momentum=settings.momentum,
        weight_decay=settings.weight_decay,
        grad_clip=settings.grad_clip,
        label_smoothing=settings.label_smoothing,
    )
    space = create_space(args.space, **to_container(config.model))
    data = load_dataset(config.dataset)
    children = _children(space, args.children, args.seed)

    torch.manual_seed(args.seed)
    supernet = space.supernet(data.spec)
    with tempfile.TemporaryDirectory(prefix="nas-bench-") as tmp:
        started = time.perf_counter()
        train_supernet(
            space,
            supernet,
            data,
            settings,
            device=device,
            seed=args.seed,
            checkpoint=Path(tmp) / "supernet.pt",
        )
        supernet_s = time.perf_counter() - started

    rows: list[dict[str, Any]] = []
    inherited_s = 0.0
    for role, arch in children:
        started = time.perf_counter()
        inherited = child_accuracy(supernet, arch, data, settings, device)
        inherited_s += time.perf_counter() - started
        started = time.perf_counter()
        alone = _alone(space, arch, data, train, epochs_alone, device, args.seed)
        rows.append(
            {
                "child": role,
                "arch": space.describe(arch),
                "flops": count_flops(space.build(arch, data.spec), data.spec.input_shape(1)),
                "inherited_acc": inherited,
                "alone_acc": alone,
                "alone_s": time.perf_counter() - started,
            }
        )
    flops = [float(row["flops"]) for row in rows]
    inherited_acc = [row["inherited_acc"] for row in rows]
    alone_acc = [row["alone_acc"] for row in rows]
    biggest = next(row for row in rows if row["child"] == "largest")
    alone_s = sum(row["alone_s"] for row in rows)
    summary = {
        "child": "summary",
        "tau_inherited_alone": _kendall(inherited_acc, alone_acc),
        "tau_inherited_flops": _kendall(inherited_acc, flops),
        "tau_alone_flops": _kendall(alone_acc, flops),
        "biggest_inherited": biggest["inherited_acc"],
        "biggest_alone": biggest["alone_acc"],
        "biggest_gap": biggest["inherited_acc"] - biggest["alone_acc"],
        "supernet_epochs": settings.epochs,
        "epochs_alone": epochs_alone,
        "supernet_s": supernet_s,
        "inherited_s": inherited_s,
        "alone_s": alone_s,
        "cost_ratio": alone_s / supernet_s,
    }
    _print_table(
        rows,
        summary,
        f"{args.space} ranking: preset {space.settings.preset} on {config.dataset} "
        f"({data.num_train} train / {data.num_val} val), seed {args.seed}, "
        f"{torch.get_num_threads()} torch threads, cpu\n"
        f"supernet: studies/{args.space}.yaml recipe, {settings.sampling} sampling, "
        f"{settings.epochs} epochs, batch {settings.batch_size}, {settings.optimizer} lr "
        f"{settings.lr:g} (warm-up {settings.warmup_epochs}, decay {settings.lr_decay:g}/epoch); "
        f"inherited = extract + BN recalibration ({settings.calibration_batches} batches)\n"
        f"alone: {epochs_alone} epochs, batch {train.batch_size}, {train.optimizer} lr "
        f"{train.lr:g} cosine to 0, weight decay {train.weight_decay:g}, clip "
        f"{train.grad_clip:g}, label smoothing {train.label_smoothing:g}, the space's "
        f"regularisation",
    )
    return [*rows, summary]


if __name__ == "__main__":
    main()
