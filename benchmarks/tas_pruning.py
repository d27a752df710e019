"""TAS on the embedded digits: (a) TAS vs uniform width scaling vs L1 filter pruning at
equal FLOPs, (b) one search step vs one step of the unpruned network, (c) distillation
vs plain training of the same pruned network.

The unpruned network of ``--preset`` (the teacher) trains once (``--teacher-epochs``).

(a) For each of ``--seeds`` seeds, each method finds a network within ``--ratio`` of
    the teacher's multiply-adds (TAS: a search of ``--search-epochs``; uniform: every
    layer at the widest fraction that fits; L1: those widths, inheriting the teacher's
    largest-L1 filters), which then trains ``--epochs`` epochs by distillation
    (a = 0.9, T = 4), the evaluator's own ``find_architecture`` and ``train_pruned``.
    Printed: validation accuracy (mean, min), the network's MACs as a fraction of the
    teacher's, and each method's accuracy minus uniform scaling's.
(b) Wall time of one TAS search step (a weights step on one batch, then an architecture
    step on another: two widths per conv, every depth, the expected FLOPs) and of one
    training step of the unpruned network on the same batch size, per preset
    (``--step-presets``), and their ratio.
(c) The network uniform scaling finds at ``--ratio``, trained from scratch with and
    without distillation, same epochs and seeds.

    python benchmarks/tas_pruning.py [--parts abc] [--seeds 3] [--ratio 0.5]
        [--epochs 15] [--search-epochs 10] [--teacher-epochs 15] [--threads 1]
"""

from __future__ import annotations

import argparse
import statistics
import tempfile
import time
from dataclasses import replace
from pathlib import Path
from typing import Any

from _table import Column, print_table

METHODS = ("tas", "uniform", "l1")


def _parse(argv: list[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--parts", default="abc", help="any of a, b, c")
    parser.add_argument("--preset", default="digits")
    parser.add_argument("--seeds", type=int, default=3)
    parser.add_argument("--ratio", type=float, default=0.5, help="FLOPs target")
    parser.add_argument("--epochs", type=int, default=15, help="training epochs of a network")
    parser.add_argument("--search-epochs", type=int, default=10)
    parser.add_argument("--teacher-epochs", type=int, default=15)
    parser.add_argument("--step-presets", default="digits,resnet20,resnet56")
    parser.add_argument("--step-batch", type=int, default=64)
    parser.add_argument("--threads", type=int, default=1, help="torch threads")
    args = parser.parse_args(argv)
    for name in ("seeds", "epochs", "search_epochs", "teacher_epochs", "threads", "step_batch"):
        if getattr(args, name) < 1:
            parser.error(f"--{name.replace('_', '-')} must be >= 1, got {getattr(args, name)}.")
    if not 0 < args.ratio <= 1 or not set(args.parts) <= set("abc"):
        parser.error("--ratio must be in (0, 1] and --parts made of a, b, c.")
    return args


def _context(args: argparse.Namespace) -> dict[str, Any]:
    import torch

    from evaluators.standalone import train_standalone
    from evaluators.tas import TASSettings
    from nas.data import load_dataset
    from search_spaces import create_space

    space = create_space("tas", preset=args.preset)
    data = load_dataset("digits")
    settings = TASSettings(search_epochs=args.search_epochs)
    torch.manual_seed(0)
    teacher = space.build(space.largest(), data.spec)
    started = time.perf_counter()
    curve = train_standalone(
        teacher, data, settings.training(), epochs=args.teacher_epochs,
        device=torch.device("cpu"), seed=0,
    )  # fmt: skip
    print(
        f"teacher ({args.preset}, unpruned): {args.teacher_epochs} epochs, validation accuracy "
        f"{curve[-1]:.4f}, {time.perf_counter() - started:.0f} s"
    )
    return {"space": space, "data": data, "settings": settings, "teacher": teacher.eval()}


def _train(
    ctx: dict[str, Any], args: argparse.Namespace, method: str, seed: int, **kw: Any
) -> dict[str, Any]:
    import torch

    from evaluators.tas import find_architecture, train_pruned

    space, data = ctx["space"], ctx["data"]
    settings = replace(ctx["settings"], method=method, **kw)
    started = time.perf_counter()
    with tempfile.TemporaryDirectory(prefix="nas-bench-") as tmp:
        arch, _ = find_architecture(
            space, data, settings, flops_ratio=args.ratio, device=torch.device("cpu"),
            seed=seed, checkpoint=Path(tmp) / "search.ckpt",
        )  # fmt: skip
    searched = time.perf_counter() - started
    _, curve = train_pruned(
        space, arch, data, settings, ctx["teacher"], epochs=args.epochs,
        device=torch.device("cpu"), seed=seed,
    )  # fmt: skip
    full = space.macs(space.largest(), data.spec)
    return {
        "accuracy": curve[-1],
        "ratio": space.macs(arch, data.spec) / full,
        "search_s": searched,
        "arch": space.describe(arch),
    }


def _summary(name: str, runs: list[dict[str, Any]]) -> dict[str, Any]:
    accuracies = [run["accuracy"] for run in runs]
    return {
        "method": name,
        "mean": statistics.mean(accuracies),
        "min": min(accuracies),
        "ratio": statistics.mean(run["ratio"] for run in runs),
        "search_s": statistics.mean(run["search_s"] for run in runs),
    }


def part_a(ctx: dict[str, Any], args: argparse.Namespace) -> list[dict[str, Any]]:
    rows = [
        _summary(method, [_train(ctx, args, method, seed) for seed in range(args.seeds)])
        for method in METHODS
    ]
    uniform = next(row["mean"] for row in rows if row["method"] == "uniform")
    for row in rows:
        row["vs_uniform"] = row["mean"] - uniform
    print_table(
        f"(a) pruning to {args.ratio:g} of the teacher's MACs, {args.epochs} epochs of "
        f"distillation, {args.seeds} seeds, {_threads()} torch threads, cpu",
        [
            Column("method", "method", "<8"),
            Column("acc mean", "mean", ">9.4f"),
            Column("acc min", "min", ">8.4f"),
            Column("MACs ratio", "ratio", ">10.3f"),
            Column("search s", "search_s", ">8.1f"),
            Column("vs uniform", "vs_uniform", ">+10.4f"),
        ],
        rows,
    )
    return rows


def _step_times(preset: str, batch: int) -> dict[str, Any]:
    """Median ms of an unpruned training step and of a TAS search step for ``preset``."""
    import torch
    import torch.nn.functional as F

    from evaluators.tas import TASSettings
    from evaluators.tas_search import flops_loss
    from nas.core.dataspec import DataSpec
    from search_spaces import create_space

    space = create_space("tas", preset=preset)
    spec = DataSpec(1, 10, 8) if preset == "digits" else DataSpec(3, 10, 32)
    x, y = torch.randn(batch, *spec.input_shape(1)[1:]), torch.randint(0, 10, (batch,))
    torch.manual_seed(0)
    static = space.build(space.largest(), spec).train()
    optimizer = torch.optim.SGD(static.parameters(), lr=0.01, momentum=0.9)

    def static_step() -> None:
        optimizer.zero_grad()
        F.cross_entropy(static(x), y).backward()
        optimizer.step()

    supernet = space.supernet(spec).train()
    weights = torch.optim.SGD(supernet.weight_parameters(), lr=0.01, momentum=0.9)
    arch = torch.optim.Adam(
        supernet.arch_parameters(), lr=TASSettings().arch_lr, betas=(0.5, 0.999)
    )
    full = supernet.arch_macs(space.largest())

    def search_step() -> None:
        weights.zero_grad()
        F.cross_entropy(supernet.search_forward(x, 5.0), y).backward()
        weights.step()
        arch.zero_grad()
        current = supernet.arch_macs(supernet.derive())
        cost = flops_loss(supernet.expected_macs(), current, 0.5 * full, 0.05 * full)
        (F.cross_entropy(supernet.search_forward(x, 5.0), y) + 2 * cost).backward()
        arch.step()

    static_ms, search_ms = _time(static_step), _time(search_step)
    return {
        "preset": preset,
        "static": static_ms,
        "search": search_ms,
        "ratio": search_ms / static_ms,
    }


def part_b(args: argparse.Namespace) -> list[dict[str, Any]]:
    rows = [_step_times(preset, args.step_batch) for preset in args.step_presets.split(",")]
    print_table(
        f"(b) one step, batch {args.step_batch}: the unpruned network vs a TAS search step "
        f"(weights + architecture, two forward-backward passes), {_threads()} torch threads, cpu",
        [
            Column("preset", "preset", "<10"),
            Column("unpruned ms", "static", ">11.1f"),
            Column("search ms", "search", ">10.1f"),
            Column("search/unpruned", "ratio", ">15.2f"),
        ],
        rows,
    )
    return rows


def _time(step: Any, warmup: int = 2, repeats: int = 5) -> float:
    for _ in range(warmup):
        step()
    timings = []
    for _ in range(repeats):
        started = time.perf_counter()
        step()
        timings.append(time.perf_counter() - started)
    return statistics.median(timings) * 1000


def part_c(ctx: dict[str, Any], args: argparse.Namespace) -> list[dict[str, Any]]:
    rows = [
        _summary(
            name,
            [_train(ctx, args, "uniform", seed, distill=distill) for seed in range(args.seeds)],
        )
        for name, distill in (("distill", True), ("plain", False))
    ]
    plain = rows[-1]["mean"]
    for row in rows:
        row["vs_plain"] = row["mean"] - plain
    print_table(
        f"(c) the uniform network at {args.ratio:g} of the MACs ({rows[0]['ratio']:.3f}), "
        f"{args.epochs} epochs from scratch, {args.seeds} seeds, {_threads()} torch threads, cpu",
        [
            Column("training", "method", "<8"),
            Column("acc mean", "mean", ">9.4f"),
            Column("acc min", "min", ">8.4f"),
            Column("vs plain", "vs_plain", ">+9.4f"),
        ],
        rows,
    )
    return rows


def _threads() -> int:
    import torch

    return torch.get_num_threads()


def main(argv: list[str] | None = None) -> dict[str, list[dict[str, Any]]]:
    """Run the chosen parts, print their tables and return their rows by part."""
    import torch

    args = _parse(argv)
    torch.set_num_threads(args.threads)
    results: dict[str, list[dict[str, Any]]] = {}
    if "b" in args.parts:
        results["b"] = part_b(args)
    if "a" in args.parts or "c" in args.parts:
        ctx = _context(args)
        if "a" in args.parts:
            results["a"] = part_a(ctx, args)
        if "c" in args.parts:
            results["c"] = part_c(ctx, args)
    return results


if __name__ == "__main__":
    main()
