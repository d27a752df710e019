"""The ``nas`` command line: ``nas COMMAND key=value ...``.

Errors a user can cause print one line on stderr and exit non-zero (2 for bad input);
tracebacks are reserved for bugs.
"""

from __future__ import annotations

import json
import shlex
import sys
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import TYPE_CHECKING

from nas.core.errors import ConfigError, NasError, close_match_hint
from nas.core.validation import check_choice

if TYPE_CHECKING:
    import optuna
    from rich.console import Console

    from nas.config import SearchConfig


# ``format=`` of the commands that print what the store holds.
OUTPUT_FORMATS = ("table", "json")

USAGE = """\
usage: nas COMMAND [key=value ...]

commands:
  spaces                          list the search spaces (built in and installed plug-ins)
  evaluators                      list the evaluators (built in and installed plug-ins)
  named space=NAME [model.preset=P] [image_size=224 num_classes=1000]
                                  a space's architectures from the literature, with
                                  their parameters and multiply-adds
  search space=NAME [key=value]   run or resume a search (keys: nas/config.py SearchConfig);
                                  workers=K runs K local worker processes
  worker study=NAME [storage=URL] [device=cuda:0]
                                  join a study from any machine; runs trials until its
                                  budget is met (NAS_STORAGE may hold the URL)
  studies [storage=URL] [format=json]
                                  the studies in the store with trial counts and best values
  show study=NAME [storage=URL] [format=json]
                                  a study's best / Pareto-optimal trials
  export study=NAME trial=best|N out=net.py [storage=URL]
                                  standalone PyTorch source (+ .safetensors weights)
  export space=NAME named=ARCH [model.preset=P image_size=224] out=net.py
                                  the source of an architecture from the literature
  lcpfn train [size=small|paper steps=N]
                                  train the learning-curve extrapolator (resumable)

examples:
  nas search space=bignas
  nas search space=nasnet
  nas search space=nasnet trials=20 objectives=[accuracy,flops] strategy=nsga2
  nas search space=bignas objectives=[accuracy] strategy=coarse_to_fine constraints.max_flops=1e6
  nas export study=bignas-digits trial=best out=net.py
  nas named space=nasnet model.preset=mobile
  nas export space=nasnet named=nasnet-a model.preset=mobile out=nasnet_mobile.py
"""


def _console() -> Console:
    from rich.console import Console

    console = Console()
    # Off a terminal rich assumes 80 columns, which folds architecture strings badly.
    return console if console.is_terminal else Console(width=200)


def _list_plugins(kind: str, names: Sequence[str], load: Callable[[str], type]) -> None:
    """One line per name: the class's first docstring line, or why it does not load."""
    for name in names:
        try:
            doc = load(name).__doc__ or ""
        except ConfigError as error:  # a broken plug-in must not hide the others
            print(f"{name:12s} (cannot load this {kind}: {error})")
            continue
        summary = doc.strip().splitlines()[0] if doc.strip() else ""
        print(f"{name:12s} {summary}")


def cmd_spaces(args: Sequence[str]) -> int:
    from search_spaces import get_space_class, list_spaces

    if args:
        raise ConfigError(f"'nas spaces' takes no arguments, got {' '.join(args)}.")
    _list_plugins("search space", list_spaces(), get_space_class)
    return 0


def cmd_evaluators(args: Sequence[str]) -> int:
    from evaluators import get_evaluator_class, list_evaluators

    if args:
        raise ConfigError(f"'nas evaluators' takes no arguments, got {' '.join(args)}.")
    _list_plugins("evaluator", list_evaluators(), get_evaluator_class)
    return 0


def cmd_named(args: Sequence[str]) -> int:
    from dataclasses import asdict

    from nas.config import NamedConfig, compose_named
    from nas.core.dataspec import DataSpec
    from nas.report import named_table
    from search_spaces import create_space

    config = compose_named(args, NamedConfig)
    space = create_space(config.space, **asdict(config.model))
    if not space.named_architectures():
        print(f"Search space '{config.space}' names no architectures from the literature.")
        return 0
    spec = DataSpec(config.in_channels, config.num_classes, config.image_size)
    _console().print(named_table(space, spec))
    return 0


def cmd_search(args: Sequence[str]) -> int:
    from nas.config import compose_search
    from nas.search import run_search
    from nas.torchrun import torchrun_world_size

    config = compose_search(args)
    main_rank = True
    if torchrun_world_size() > 1:  # torchrun: a data-parallel supernet, then K workers
        from nas.torchrun import run_torchrun_search

        outcome, main_rank = run_torchrun_search(config)
    elif config.backend == "ray" or config.workers > 1:
        return _search_with_workers(config, args)
    else:
        outcome = run_search(config)
    if main_rank and outcome.study.get_trials(deepcopy=False):
        _print_results(outcome.study)
    if outcome.interrupted:
        command = shlex.join(["nas", "search", *args])
        print(
            f"Interrupted; no trial is left running and an interrupted trial will be retried. "
            f"Resume with: {command}",
            file=sys.stderr,
        )
        return 130
    print(
        f"{outcome.finished}/{config.trials} trials finished in study '{outcome.study.study_name}'."
    )
    return 0


def _search_with_workers(config: SearchConfig, args: Sequence[str]) -> int:
    from nas import store
    from nas.config import study_name
    from nas.workers import run_local_workers

    if config.backend == "ray":
        from nas.ray_backend import run_with_ray

        finished, interrupted = run_with_ray(config)
    else:
        finished, interrupted = run_local_workers(config)
    study = store.load_study(store.open_storage(config.storage), study_name(config))
    if study.get_trials(deepcopy=False):
        _print_results(study)
    if interrupted:
        command = shlex.join(["nas", "search", *args])
        print(f"Interrupted; resume with: {command}", file=sys.stderr)
        return 130
    print(f"{finished}/{config.trials} trials finished in study '{study.study_name}'.")
    return 0


def cmd_worker(args: Sequence[str]) -> int:
    from nas.workers import run_worker

    outcome = run_worker(args)
    if outcome.interrupted:
        print("Interrupted; this worker's trial will be retried by the study.", file=sys.stderr)
        return 130
    print(f"worker done: {outcome.finished} trials finished in '{outcome.study.study_name}'.")
    return 0


def cmd_studies(args: Sequence[str]) -> int:
    from nas import store
    from nas.config import StoreConfig, compose
    from nas.report import studies_table, study_rows

    config = compose(StoreConfig, args)
    check_choice("format", config.format, OUTPUT_FORMATS)
    storage = store.open_storage(config.storage)
    if config.format == "json":
        print(json.dumps(study_rows(storage), indent=2))
    else:
        _console().print(studies_table(storage))
    return 0


def cmd_show(args: Sequence[str]) -> int:
    from nas import store
    from nas.config import ShowConfig, compose
    from nas.report import preparation_summary, study_report

    config = compose(ShowConfig, args)
    if config.top <= 0:
        raise ConfigError(f"'top' must be > 0, but got top={config.top}.")
    check_choice("format", config.format, OUTPUT_FORMATS)
    study = store.load_study(store.open_storage(config.storage), config.study)
    if config.format == "json":
        print(json.dumps(study_report(study, config.top), indent=2))
        return 0
    summary = preparation_summary(study)
    if summary is not None:
        print(summary)
    _print_results(study, config.top)
    return 0


def _print_results(study: optuna.Study, top: int = 10) -> None:
    """Trial counts (rejections by protocol), the best trials or Pareto front, and the
    named baselines trained beside them."""
    from nas.report import baselines_table, best_table, outcome_summary

    print(outcome_summary(study))
    console = _console()
    console.print(best_table(study, top))
    table = baselines_table(study)
    if table is not None:
        console.print(table)


def cmd_export(args: Sequence[str]) -> int:
    from nas import store
    from nas.config import ExportConfig, compose
    from nas.core.files import check_output_file
    from nas.export import export_trial, study_artifacts

    if any(arg.startswith("named=") for arg in args):
        return _export_named(args)
    config = compose(ExportConfig, args)
    check_output_file(Path(config.out))
    url = config.storage or store.default_storage_url()
    study = store.load_study(store.open_storage(url), config.study)
    artifacts = study_artifacts(study, config.artifacts, url)
    result = export_trial(study, config.trial, Path(config.out), artifacts=artifacts)
    print(f"trial {result.trial} -> {result.source}")
    if result.weights is not None:
        print(f"weights -> {result.weights}")
    else:
        print("the trial kept no weights (keep_weights=false or pruned): source only")
    return 0


def _export_named(args: Sequence[str]) -> int:
    from dataclasses import asdict

    from nas.config import NamedExportConfig, compose_named
    from nas.core.dataspec import DataSpec
    from nas.core.files import check_output_file
    from nas.export import export_named
    from search_spaces import create_space

    config = compose_named(args, NamedExportConfig)
    check_output_file(Path(config.out))
    settings = asdict(config.model)
    space = create_space(config.space, **settings)
    spec = DataSpec(config.in_channels, config.num_classes, config.image_size)
    out = export_named(space, config.named, spec, Path(config.out))
    print(f"{config.named} -> {out} (untrained: build it and train, or load your weights)")
    return 0


def cmd_lcpfn(args: Sequence[str]) -> int:
    from nas.lcpfn_command import cmd_lcpfn as run

    return run(args)


COMMANDS: dict[str, Callable[[Sequence[str]], int]] = {
    "spaces": cmd_spaces,
    "evaluators": cmd_evaluators,
    "named": cmd_named,
    "search": cmd_search,
    "worker": cmd_worker,
    "studies": cmd_studies,
    "show": cmd_show,
    "export": cmd_export,
    "lcpfn": cmd_lcpfn,
}


def main(argv: Sequence[str] | None = None) -> int:
    args = list(sys.argv[1:] if argv is None else argv)
    if not args or args[0] in ("-h", "--help", "help"):
        print(USAGE, end="")
        return 0
    if args[0] == "--version":
        from nas import __version__

        print(f"nas {__version__}")
        return 0
    command = COMMANDS.get(args[0])
    if command is None:
        print(
            f"error: unknown command '{args[0]}'. Commands: {', '.join(COMMANDS)}."
            + close_match_hint(args[0], COMMANDS),
            file=sys.stderr,
        )
        return 2
    try:
        return command(args[1:])
    except NasError as error:
        print(f"error: {error}", file=sys.stderr)
        return error.exit_code
    except KeyboardInterrupt:
        print("Interrupted.", file=sys.stderr)
        return 130


if __name__ == "__main__":
    raise SystemExit(main())
