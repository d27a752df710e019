"""Children of the BigNAS ``imagenet`` space at the sizes of the published BigNASModels.

Yu et al., "BigNAS: Scaling Up Neural Architecture Search with Big Single-Stage Models"
(ECCV 2020) publish BigNASModel-S/M/L/XL by their size only (242 / 418 / 586 / 1040M
multiply-adds; 4.5 / 5.5 / 6.4 / 9.5M parameters); neither the paper nor the public
reimplementations we read (mmrazor, AttentiveNAS, AlphaNet, pytorch-BigNAS) list their
per-stage widths, depths, kernels and expansions. This script finds, for each, a child
of the space whose size, counted by the project's counters, is closest to the published
one (Optuna's TPE over the space's own ``sample``, seeded, then the best single change
of one choice while any helps), and prints it with the ratios; the space's
``named_architectures()`` holds what it found.

    python benchmarks/bignas_published_children.py [--trials 100] [--seed 0]
"""

from __future__ import annotations

import argparse
from typing import Any

from _table import Column, print_table

# Published (parameters, multiply-adds) of each model.
PUBLISHED = {
    "bignas-s": (4.5e6, 242e6),
    "bignas-m": (5.5e6, 418e6),
    "bignas-l": (6.4e6, 586e6),
    "bignas-xl": (9.5e6, 1040e6),
}
PARAMS_TOLERANCE, MACS_TOLERANCE = 0.01, 0.02


def _parse(argv: list[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--trials", type=int, default=100, help="TPE trials per model")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--only", nargs="+", choices=list(PUBLISHED))
    return parser.parse_args(argv)


def size_of(space: Any, arch: Any) -> tuple[float, float]:
    """(parameters, multiply-adds) of ``arch`` as deployed, at its own resolution.

    Built on torch's meta device: shapes only, so counting costs no arithmetic.
    """
    import torch

    from nas.core.dataspec import DataSpec
    from nas.report import named_size

    with torch.device("meta"):
        size = named_size(space, arch, DataSpec(3, 1000, arch.resolution))
    return size["params"], size["flops"] / 2


def misfit(size: tuple[float, float], target: tuple[float, float]) -> float:
    """The relative errors in units of their tolerances, combined (a sum of squares:
    unlike their maximum, it rewards a change that improves either); < 1: within both."""
    return (abs(size[0] / target[0] - 1) / PARAMS_TOLERANCE) ** 2 + (
        abs(size[1] / target[1] - 1) / MACS_TOLERANCE
    ) ** 2


def fit(space: Any, target: tuple[float, float], trials: int, seed: int) -> Any:
    """TPE over the space for a start, then the best single change, until none helps."""
    import optuna

    study = optuna.create_study(sampler=optuna.samplers.TPESampler(seed=seed))
    study.optimize(lambda t: misfit(size_of(space, space.sample(t)), target), n_trials=trials)
    best = space.sample(optuna.trial.FixedTrial(study.best_params))
    best_misfit = study.best_value
    while True:
        scored = [(misfit(size_of(space, arch), target), arch) for arch in neighbours(space, best)]
        candidate_misfit, candidate = min(scored, key=lambda pair: pair[0])
        if candidate_misfit >= best_misfit:
            return best
        best, best_misfit = candidate, candidate_misfit


def neighbours(space: Any, arch: Any) -> list[Any]:
    """Every child that differs from ``arch`` in one choice (a depth change keeps the
    other blocks' kernels and expansions)."""
    preset, encoded = space.preset, space.encode(arch)
    changed: list[dict[str, Any]] = []
    for key, choices in (
        ("resolution", preset.resolutions),
        ("stem", preset.stems),
        ("head", preset.heads),
    ):
        changed += [{**encoded, key: value} for value in choices if value != encoded[key]]
    for i, spec in enumerate(preset.stages):
        stage = encoded["stages"][i]
        options = [{**stage, "width": w} for w in spec.widths if w != stage["width"]]
        for depth in spec.depths:
            if depth != stage["depth"]:
                pad = depth - stage["depth"]
                kernels = (stage["kernels"] + [min(spec.kernels)] * pad)[:depth]
                expands = (stage["expands"] + [max(spec.expands)] * pad)[:depth]
                options.append({**stage, "depth": depth, "kernels": kernels, "expands": expands})
        for j in range(stage["depth"]):
            for field, values in (("kernels", spec.kernels), ("expands", spec.expands)):
                for value in values:
                    if value != stage[field][j]:
                        options.append(
                            {**stage, field: [*stage[field][:j], value, *stage[field][j + 1 :]]}
                        )
        for option in options:
            stages = [*encoded["stages"][:i], option, *encoded["stages"][i + 1 :]]
            changed.append({**encoded, "stages": stages})
    return [space.decode(data) for data in changed]


def main(argv: list[str] | None = None) -> list[dict[str, Any]]:
    import optuna
    import torch

    from search_spaces import create_space

    args = _parse(argv)
    torch.set_num_threads(1)
    optuna.logging.set_verbosity(optuna.logging.WARNING)
    space = create_space("bignas", preset="imagenet")
    rows = []
    for name in args.only or list(PUBLISHED):
        target = PUBLISHED[name]
        arch = fit(space, target, args.trials, args.seed)
        params, macs = size_of(space, arch)
        rows.append(
            {
                "name": name,
                "params": params / 1e6,
                "params_ratio": params / target[0],
                "macs": macs / 1e6,
                "macs_ratio": macs / target[1],
                "arch": space.describe(arch),
                "encoded": space.encode(arch),
            }
        )
    print_table(
        f"BigNAS imagenet children nearest the published models (TPE, {args.trials} trials, "
        f"seed {args.seed}, then single changes); parameters and multiply-adds in millions",
        [
            Column("model", "name", "<10"),
            Column("params", "params", ">7.3f"),
            Column("ratio", "params_ratio", ">6.3f"),
            Column("MACs", "macs", ">7.1f"),
            Column("ratio", "macs_ratio", ">6.3f"),
            Column("child", "arch", "<"),
        ],
        rows,
    )
    for row in rows:
        print(row["name"], row["encoded"])
    return rows


if __name__ == "__main__":
    main()
