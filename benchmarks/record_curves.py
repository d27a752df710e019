"""Record real learning curves from the platform's own stand-alone trials, as replay data.

Runs ``nas search`` on the NASNet space over the embedded digits data with random
sampling and no pruning, so every trial trains its full ``--epochs``; each trial's
validation accuracy after every epoch (its stored ``curve``) goes into a JSON file with
the architecture, seed and costs. ``benchmarks/early_stopping_replay.py`` replays that
file. The study lives in an SQLite file, so an interrupted recording resumes where it
stopped when run again with the same arguments.

    python benchmarks/record_curves.py [--trials 40] [--epochs 20]
        [--out benchmarks/data/nasnet_digits_curves.json]
"""

from __future__ import annotations

import argparse
import json
import shlex
import sys
from pathlib import Path
from typing import Any

DEFAULT_OUT = Path(__file__).parent / "data" / "nasnet_digits_curves.json"


def _parse(argv: list[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--trials", type=int, default=40, help="trials to record")
    parser.add_argument("--epochs", type=int, default=20, help="epochs per trial")
    parser.add_argument("--seed", type=int, default=0, help="study seed")
    parser.add_argument("--out", type=Path, default=DEFAULT_OUT, help="JSON file to write")
    parser.add_argument(
        "--storage",
        default="sqlite:///nas-runs/record-curves/nas.db",
        help="SQL store of the recording study (resumable)",
    )
    args = parser.parse_args(argv)
    for name in ("trials", "epochs"):
        if getattr(args, name) < 1:
            parser.error(f"--{name} must be >= 1, but got {getattr(args, name)}.")
    return args


def overrides(args: argparse.Namespace) -> list[str]:
    """The ``nas search`` settings of the recording."""
    return [
        "space=nasnet",
        f"study=record-curves-e{args.epochs}-s{args.seed}",
        f"storage={args.storage}",
        f"trials={args.trials}",
        f"epochs={args.epochs}",
        f"seed={args.seed}",
        "strategy=random",
        "pruner=none",
        "keep_weights=false",
        "device=cpu",
    ]


def main(argv: list[str] | None = None) -> int:
    import optuna

    from nas.config import compose_search
    from nas.progress import LogReporter
    from nas.search import run_search

    args = _parse(argv)
    Path("nas-runs/record-curves").mkdir(parents=True, exist_ok=True)
    config = compose_search(overrides(args))
    outcome = run_search(config, reporter=LogReporter())
    if outcome.interrupted:
        print("interrupted; run the same command again to resume", file=sys.stderr)
        return 130
    rows: list[dict[str, Any]] = []
    for trial in outcome.study.get_trials(states=(optuna.trial.TrialState.COMPLETE,)):
        curve = trial.user_attrs.get("curve")
        if not isinstance(curve, list) or len(curve) != args.epochs:
            continue
        rows.append(
            {
                "number": trial.number,
                "arch": trial.user_attrs.get("arch_str"),
                "seed": trial.user_attrs.get("seed"),
                "params": trial.user_attrs.get("params"),
                "flops": trial.user_attrs.get("flops"),
                "curve": [round(float(v), 6) for v in curve],
            }
        )
    record = {
        "description": (
            "Validation accuracy after every epoch of real stand-alone NASNet trials on the "
            "embedded digits data (360 validation images), recorded by the command below."
        ),
        "command": shlex.join(["python", "benchmarks/record_curves.py", *(argv or sys.argv[1:])]),
        "search_overrides": overrides(args),
        "epochs": args.epochs,
        "trials": rows,
    }
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps(record, indent=1) + "\n", encoding="utf-8")
    print(f"{len(rows)} curves of {args.epochs} epochs -> {args.out}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
