"""Record a corpus of real learning curves from the platform's own stand-alone trials.

For every family (``--families``) and training setting (``--settings``) this runs one
``nas search`` study on the embedded digits data (the only data set that runs offline)
with random sampling and no pruning, so every trial trains its full ``--epochs``, and
collects each trial's validation accuracy after every epoch (its stored ``curve``):

* families: ``nasnet`` (cells trained alone, the study's AdamW recipe), ``bignas``,
  ``vit_resnas`` and ``tas`` (their children or pruned networks trained alone from
  scratch, ``evaluator=standalone``);
* settings: ``base`` (the family's recipe), ``sgd-low`` / ``sgd-high`` (SGD at lr 0.01 /
  0.2), ``adamw`` (lr 0.003), ``smooth`` (label smoothing 0.1).

The output, gzip-compressed JSON, holds the provenance (this command, the search
overrides of each study, git commit, library versions, date) and one record per curve:
family, setting, study, trial number, seed, architecture, params, FLOPs, the curve, and
its ``split``. Within each family, curves are ordered by a hash of (setting, trial) and
alternate between ``tuning`` and ``held-out``, so each half has every setting and the
held-out half is never fitted or tuned on (``benchmarks/lcpfn_quality.py``).

The studies live in one SQLite file: an interrupted recording (Ctrl-C) resumes where it
stopped when the same command runs again; a finished one only rewrites the output.
``--collect-only`` trains nothing and writes the curves the studies hold so far (while
a recording goes on elsewhere, or to ship a recording cut short); the provenance says so.

    python benchmarks/record_corpus.py [--trials 20 | --trials bignas=30,nasnet=10] [--epochs 20]
        [--reports-per-epoch 1]
        [--families nasnet,bignas,vit_resnas,tas] [--settings base,sgd-low,sgd-high,adamw,smooth]
        [--out benchmarks/data/real_curves.json.gz]
"""

from __future__ import annotations

import argparse
import datetime
import gzip
import json
import shlex
import subprocess
import sys
import zlib
from pathlib import Path
from typing import Any

DEFAULT_OUT = Path(__file__).parent / "data" / "real_curves.json.gz"
FAMILIES: dict[str, list[str]] = {
    "nasnet": ["space=nasnet"],
    "bignas": ["space=bignas", "evaluator=standalone"],
    "vit_resnas": ["space=vit_resnas", "evaluator=standalone"],
    "tas": ["space=tas", "evaluator=standalone"],
}
SETTINGS: dict[str, list[str]] = {
    "base": [],
    "sgd-low": ["train.optimizer=sgd", "train.lr=0.01"],
    "sgd-high": ["train.optimizer=sgd", "train.lr=0.2"],
    "adamw": ["train.optimizer=adamw", "train.lr=0.003"],
    "smooth": ["train.label_smoothing=0.1"],
}
SPLITS = ("tuning", "held-out")
DEFAULT_TRIALS = 20


def _names(text: str, known: dict[str, list[str]], what: str) -> list[str]:
    names = [name for name in text.split(",") if name]
    unknown = [name for name in names if name not in known]
    if not names or unknown:
        raise argparse.ArgumentTypeError(f"{what} must be among {', '.join(known)}, got {text!r}")
    return names


def _parse(argv: list[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--families", default=",".join(FAMILIES))
    parser.add_argument("--settings", default=",".join(SETTINGS))
    parser.add_argument(
        "--trials",
        default="20",
        help="curves per family and setting: N, or FAMILY=N,... (the others keep 20)",
    )
    parser.add_argument("--epochs", type=int, default=20, help="epochs per curve")
    parser.add_argument(
        "--reports-per-epoch",
        type=int,
        default=1,
        help="validations per epoch: curves of epochs x this many values",
    )
    parser.add_argument("--seed", type=int, default=0, help="the studies' seed")
    parser.add_argument("--out", type=Path, default=DEFAULT_OUT, help="gzip JSON to write")
    parser.add_argument(
        "--collect-only",
        action="store_true",
        help="train nothing: write the curves the studies hold so far",
    )
    parser.add_argument(
        "--storage",
        default="sqlite:///nas-runs/record-corpus/nas.db",
        help="SQL store of the recording studies (resumable)",
    )
    args = parser.parse_args(argv)
    for name in ("epochs", "reports_per_epoch"):
        if getattr(args, name) < 1:
            flag = "--" + name.replace("_", "-")
            parser.error(f"{flag} must be >= 1, but got {getattr(args, name)}.")
    try:
        args.families = _names(args.families, FAMILIES, "--families")
        args.settings = _names(args.settings, SETTINGS, "--settings")
        args.trials = _trials(args.trials)
    except argparse.ArgumentTypeError as error:
        parser.error(str(error))
    return args


def _trials(text: str) -> dict[str, int]:
    """Curves per setting of each family, from ``N`` or ``FAMILY=N,...``."""
    counts = dict.fromkeys(FAMILIES, DEFAULT_TRIALS)
    items = text.split(",") if "=" in text else [f"{name}={text}" for name in FAMILIES]
    for item in items:
        family, _, number = item.partition("=")
        if family not in FAMILIES or not number.isdigit() or int(number) < 1:
            raise argparse.ArgumentTypeError(
                f"--trials must be N or FAMILY=N,... with families among "
                f"{', '.join(FAMILIES)} and N >= 1, got {text!r}"
            )
        counts[family] = int(number)
    return counts


def study_overrides(args: argparse.Namespace, family: str, setting: str) -> list[str]:
    """The ``nas search`` settings of one study of the recording."""
    reports = f"r{args.reports_per_epoch}" if args.reports_per_epoch > 1 else ""
    return [
        *FAMILIES[family],
        *SETTINGS[setting],
        f"study=corpus-{family}-{setting}-e{args.epochs}{reports}-s{args.seed}",
        f"storage={args.storage}",
        f"trials={args.trials[family]}",
        f"epochs={args.epochs}",
        f"reports_per_epoch={args.reports_per_epoch}",
        f"seed={args.seed}",
        "dataset=digits",
        "objectives=[accuracy]",
        "strategy=random",
        "pruner=none",
        "keep_weights=false",
        "device=cpu",
    ]


def _record(
    trial: Any, family: str, setting: str, study: str, reports: int
) -> dict[str, Any] | None:
    curve = trial.user_attrs.get("curve")
    if not isinstance(curve, list) or len(curve) != reports:
        return None
    return {
        "family": family,
        "setting": setting,
        "study": study,
        "number": trial.number,
        "seed": trial.user_attrs.get("seed"),
        "arch": trial.user_attrs.get("arch_str"),
        "params": trial.user_attrs.get("params"),
        "flops": trial.user_attrs.get("flops"),
        "curve": [round(float(v), 6) for v in curve],
    }


def assign_splits(records: list[dict[str, Any]]) -> None:
    """Per family, alternate tuning / held-out in the order of a hash of (setting, trial)."""
    for family in {r["family"] for r in records}:
        ordered = sorted(
            (r for r in records if r["family"] == family),
            key=lambda r: zlib.crc32(f"{r['setting']}/{r['number']}".encode()),
        )
        for i, record in enumerate(ordered):
            record["split"] = SPLITS[i % 2]


def provenance(argv: list[str], studies: dict[str, list[str]], epochs: int) -> dict[str, Any]:
    import optuna
    import torch

    try:
        commit = subprocess.run(
            ["git", "rev-parse", "HEAD"],
            capture_output=True,
            text=True,
            check=True,
            timeout=30,
            cwd=Path(__file__).parent,
        ).stdout.strip()
    except (OSError, subprocess.SubprocessError):
        commit = None
    return {
        "description": (
            "Validation accuracy after every epoch of real stand-alone trials of several "
            "families and training settings on the embedded digits data (360 validation "
            "images), recorded by the command below."
        ),
        "command": shlex.join(["python", "benchmarks/record_corpus.py", *argv]),
        "studies": studies,
        "epochs": epochs,
        "git_commit": commit,
        "versions": {"torch": torch.__version__, "optuna": optuna.__version__},
        "recorded": datetime.datetime.now(datetime.timezone.utc).isoformat(timespec="seconds"),
    }


def _record_study(overrides: list[str]) -> Any:
    """Run (or resume) one recording study; None when interrupted."""
    from nas.config import compose_search
    from nas.progress import LogReporter
    from nas.search import run_search

    outcome = run_search(compose_search(overrides), reporter=LogReporter())
    return None if outcome.interrupted else outcome.study


def _collect(overrides: list[str]) -> Any:
    """The recording study as it stands, without training (``--collect-only``)."""
    import optuna

    from nas.config import compose_search, study_name

    config = compose_search(overrides)
    try:
        return optuna.load_study(study_name=study_name(config), storage=config.storage)
    except KeyError:  # not started yet
        return None


def main(argv: list[str] | None = None) -> int:
    import optuna

    argv = list(sys.argv[1:] if argv is None else argv)
    args = _parse(argv)
    if args.storage.startswith("sqlite:///") and not args.storage.startswith("sqlite:////"):
        Path(args.storage.removeprefix("sqlite:///")).parent.mkdir(parents=True, exist_ok=True)
    records: list[dict[str, Any]] = []
    studies: dict[str, list[str]] = {}
    for family in args.families:
        for setting in args.settings:
            overrides = study_overrides(args, family, setting)
            print(f"== {family} / {setting}: {shlex.join(overrides)}", flush=True)
            if args.collect_only:
                study = _collect(overrides)
                if study is None:
                    print("   not recorded yet", flush=True)
                    continue
            else:
                study = _record_study(overrides)
                if study is None:
                    print("interrupted; run the same command again to resume", file=sys.stderr)
                    return 130
            name = study.study_name
            studies[name] = overrides
            for trial in study.get_trials(states=(optuna.trial.TrialState.COMPLETE,)):
                record = _record(trial, family, setting, name, args.epochs * args.reports_per_epoch)
                if record is not None:
                    records.append(record)
    assign_splits(records)
    corpus = {
        **provenance(argv, studies, args.epochs),
        "complete": not args.collect_only,
        "reports_per_epoch": args.reports_per_epoch,
        "curves": records,
    }
    args.out.parent.mkdir(parents=True, exist_ok=True)
    with gzip.open(args.out, "wt", encoding="utf-8") as handle:
        json.dump(corpus, handle, separators=(",", ":"))
    reports = args.epochs * args.reports_per_epoch
    print(f"{len(records)} curves of {reports} reports ({args.epochs} epochs) -> {args.out}")
    return 0


def load_corpus(path: Path = DEFAULT_OUT) -> dict[str, Any]:
    """The recorded corpus, provenance and all (``load_curve_corpus`` reads one split)."""
    from evaluators.lcpfn.corpus import read_corpus_file

    return read_corpus_file(path)


if __name__ == "__main__":
    raise SystemExit(main())
