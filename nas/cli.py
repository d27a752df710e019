"""The ``nas`` command line: ``nas COMMAND key=value ...``.

Errors a user can cause print one line on stderr and exit non-zero (2 for bad input);
tracebacks are reserved for bugs.
"""

from __future__ import annotations

import json
import shlex
import sys
import textwrap
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

from nas.core.errors import ConfigError, NasError, close_match_hint
from nas.core.validation import check_choice

if TYPE_CHECKING:
    import optuna
    from rich.console import Console

    from nas.config import SearchConfig


# ``format=`` of the commands that print what the store holds.
OUTPUT_FORMATS = ("table", "json")

EXAMPLES = """\
examples:
  nas search space=bignas
  nas search space=nasnet
  nas search space=nasnet trials=20 objectives=[accuracy,flops] strategy=nsga2
  nas search space=bignas objectives=[accuracy] strategy=coarse_to_fine constraints.max_flops=1e6
  nas search space=bignas --help      (its keys and their values; --cfg: the whole config)
  nas export study=bignas-digits trial=best out=net.py
  nas plot study=bignas-digits kind=pareto out=front.html
  nas named space=nasnet model.preset=mobile
  nas export space=nasnet named=nasnet-a model.preset=mobile out=nasnet_mobile.py
"""
HELP_FLAGS = ("-h", "--help")
# Prints the fully composed config of a command and runs nothing.
CFG_FLAG = "--cfg"


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
        summary = summary.replace("``", "")  # the docstring's literal markup
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
    print(_finished_line(outcome.finished, config.trials, outcome.study.study_name))
    return 0


def _finished_line(finished: int, trials: int, study: str) -> str:
    if finished > trials:  # trials= below what the study already holds: nothing ran
        return (
            f"Study '{study}' already holds {finished} finished trials, more than trials="
            f"{trials}: nothing to run (trials= is the study's total; raise it to search more)."
        )
    return f"{finished}/{trials} trials finished in study '{study}'."


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
    print(_finished_line(finished, config.trials, study.study_name))
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
    storage = store.open_storage(config.storage, must_exist=True)
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
    study = store.load_study(store.open_storage(config.storage, must_exist=True), config.study)
    if config.format == "json":
        print(json.dumps(study_report(study, config.top), indent=2))
        return 0
    summary = preparation_summary(study)
    if summary is not None:
        print(summary)
    _print_results(study, config.top)
    return 0


def cmd_plot(args: Sequence[str]) -> int:
    from nas import store
    from nas.config import PlotConfig, compose
    from nas.core.files import check_output_file
    from nas.plots import PLOT_KINDS, write_plot

    config = compose(PlotConfig, args)
    check_choice("kind", config.kind, PLOT_KINDS)
    out = Path(config.out)
    check_output_file(out)
    study = store.load_study(store.open_storage(config.storage, must_exist=True), config.study)
    print(f"{config.kind} of '{study.study_name}' -> {write_plot(study, config.kind, out)}")
    return 0


def cmd_dashboard(args: Sequence[str]) -> int:
    from nas import store
    from nas.config import DashboardConfig, compose
    from nas.dashboard import serve

    config = compose(DashboardConfig, args)
    serve(config.storage or store.default_storage_url(), config.host, config.port)
    return 0


def _print_results(study: optuna.Study, top: int = 10) -> None:
    """Trial counts (rejections by protocol), the best trials or Pareto front, and the
    named baselines trained beside them."""
    from nas.report import baselines_table, best_table, outcome_summary

    print(outcome_summary(study))
    if not any(t.state.name == "COMPLETE" for t in study.get_trials(deepcopy=False)):
        return  # nothing finished yet (an early Ctrl-C): no empty tables
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
    study = store.load_study(store.open_storage(url, must_exist=True), config.study)
    artifacts = study_artifacts(study, config.artifacts, url)
    result = export_trial(study, config.trial, Path(config.out), artifacts=artifacts)
    print(f"trial {result.trial} -> {result.source}")
    if result.weights is not None:
        print(f"weights -> {result.weights}")
    else:
        state = study.trials[result.trial].state.name
        print(f"the trial kept no weights ({_NO_WEIGHTS.get(state, state)}): source only")
    return 0


# Why an exported trial has no weights, by its state.
_NO_WEIGHTS = {
    "COMPLETE": "its study ran with keep_weights=false",
    "PRUNED": "it was stopped early or rejected; only finished trials keep weights",
    "FAIL": "it failed or was interrupted before it finished",
    "RUNNING": "it is still running",
    "WAITING": "it has not started",
}


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


def _search_keys(args: Sequence[str]) -> Any:
    from nas.config import compose_search

    return compose_search(args)


def _composed(schema: str) -> Callable[[Sequence[str]], Any]:
    """The keys of a command whose config is ``nas.config.<schema>`` (imported when
    asked, so that ``nas`` starts without OmegaConf)."""

    def keys(args: Sequence[str]) -> Any:
        from nas import config

        return config.compose(getattr(config, schema), args)

    return keys


def _export_keys(args: Sequence[str]) -> Any:
    from nas.config import ExportConfig, NamedExportConfig, compose, compose_named

    if any(arg.startswith("named=") for arg in args):
        return compose_named(args, NamedExportConfig)
    return compose(ExportConfig, args)


def _named_keys(args: Sequence[str]) -> Any:
    from nas.config import NamedConfig, compose_named

    return compose_named(args, NamedConfig)


def _lcpfn_keys(args: Sequence[str]) -> Any:
    from nas.config import compose
    from nas.lcpfn_command import LCPFNCalibrateConfig, LCPFNTrainConfig

    if args[:1] == ["calibrate"]:
        return compose(LCPFNCalibrateConfig, args[1:])
    return compose(LCPFNTrainConfig, args[1:] if args[:1] == ["train"] else args)


def _lcpfn_documented_in() -> tuple[type, ...]:
    from evaluators.lcpfn import LCPFNTrainSettings

    return (LCPFNTrainSettings,)


@dataclass(frozen=True)
class Command:
    """A ``nas`` command: what runs it, and what its help says."""

    run: Callable[[Sequence[str]], int]
    usages: tuple[str, ...]  # the arguments after ``nas NAME``, one form per line
    summary: str
    # The config these arguments compose (None: the command takes no keys).
    keys: Callable[[Sequence[str]], Any] | None = None
    # Classes that document keys the command passes on to them.
    documented_in: Callable[[], tuple[type, ...]] = tuple


COMMANDS: dict[str, Command] = {
    "spaces": Command(
        cmd_spaces, ("",), "List the search spaces (built in and installed plug-ins)."
    ),
    "evaluators": Command(
        cmd_evaluators, ("",), "List the evaluators (built in and installed plug-ins)."
    ),
    "named": Command(
        cmd_named,
        ("space=NAME [model.preset=P] [image_size=224 num_classes=1000]",),
        "A space's architectures from the literature, with their parameters and multiply-adds.",
        _named_keys,
    ),
    "search": Command(
        cmd_search,
        ("space=NAME [key=value ...]",),
        "Run or resume a search; workers=K runs K local worker processes. The keys of the "
        "space's, evaluator's and strategy's groups depend on the ones chosen: give them "
        "before --help.",
        _search_keys,
    ),
    "worker": Command(
        cmd_worker,
        ("study=NAME [storage=URL] [device=cuda:0]",),
        "Join a study from any machine and run trials until its budget is met "
        "(NAS_STORAGE may hold the URL).",
        _composed("WorkerConfig"),
    ),
    "studies": Command(
        cmd_studies,
        ("[storage=URL] [format=json]",),
        "The studies in the store with trial counts and best values.",
        _composed("StoreConfig"),
    ),
    "show": Command(
        cmd_show,
        ("study=NAME [storage=URL] [format=json]",),
        "A study's best or Pareto-optimal trials.",
        _composed("ShowConfig"),
    ),
    "plot": Command(
        cmd_plot,
        ("study=NAME kind=pareto|history|curves|importance out=FILE.html|FILE.png",),
        "Draw a study: its Pareto front, the best value over trials, the learning curves "
        "(trials a pruner stopped marked where it stopped them) or the parameters' "
        "importance; .html is interactive, .png an image.",
        _composed("PlotConfig"),
    ),
    "dashboard": Command(
        cmd_dashboard,
        ("[storage=URL] [port=8080] [host=127.0.0.1]",),
        "Serve optuna-dashboard on the study store: studies, each trial's architecture, "
        "learning curves and Pareto fronts, in a browser. Ctrl-C stops it.",
        _composed("DashboardConfig"),
    ),
    "export": Command(
        cmd_export,
        (
            "study=NAME trial=best|N out=net.py [storage=URL]",
            "space=NAME named=ARCH [model.preset=P image_size=224] out=net.py",
        ),
        "A trial, or an architecture from the literature, as standalone PyTorch source "
        "(a trial's weights beside it as .safetensors). With named=, the keys are those "
        "of `nas export space=NAME named=ARCH --help`.",
        _export_keys,
    ),
    "lcpfn": Command(
        cmd_lcpfn,
        ("train [size=small|paper steps=N ...]", "calibrate weights=W fold0=A fold1=B"),
        "Train the learning-curve extrapolator (LC-PFN); running it again resumes. "
        "calibrate: fit a fine-tuned network's predictive spread on its fold networks.",
        _lcpfn_keys,
        _lcpfn_documented_in,
    ),
}


def usage() -> str:
    """``nas --help``: every command with its arguments and what it does."""
    lines = ["usage: nas COMMAND [key=value ...]   (nas COMMAND --help: its keys)", "", "commands:"]
    for name, command in COMMANDS.items():
        forms = [f"{name} {form}".rstrip() for form in command.usages]
        lines.extend(f"  {form}" for form in forms)
        lines.extend(
            textwrap.wrap(
                command.summary, width=88, initial_indent=" " * 6, subsequent_indent=" " * 6
            )
        )
    return "\n".join(lines) + "\n\n" + EXAMPLES


def command_help(name: str, args: Sequence[str]) -> str:
    """``nas NAME --help``: its forms, what it does, and its keys with the values ``args``
    give them."""
    from nas.help import describe_keys, format_help

    command = COMMANDS[name]
    usage_line = "\n       ".join(f"nas {name} {form}".rstrip() for form in command.usages)
    rows = []
    if command.keys is not None:
        config = command.keys(args)
        rows = list(describe_keys(config, also_from=command.documented_in()))
    heading = "keys (key, value with the defaults, presets and keys given, meaning):"
    return format_help(usage_line, command.summary, rows, heading)


def composed_config(name: str, args: Sequence[str]) -> str:
    """``nas NAME ... --cfg``: the config the arguments compose, as YAML, nothing run."""
    from omegaconf import OmegaConf

    from nas.config import to_container

    command = COMMANDS[name]
    if command.keys is None:
        raise ConfigError(f"'nas {name}' takes no keys, so it has no config to print.")
    return OmegaConf.to_yaml(to_container(command.keys(args)))


def _run(name: str, args: Sequence[str]) -> int:
    """Runs a command, or prints its help (--help) or its composed config (--cfg)."""
    flags = [arg for arg in args if arg in (*HELP_FLAGS, CFG_FLAG)]
    rest = [arg for arg in args if arg not in flags]
    if any(flag in HELP_FLAGS for flag in flags):
        print(command_help(name, rest), end="")
        return 0
    if flags:
        print(composed_config(name, rest), end="")
        return 0
    return COMMANDS[name].run(rest)


def main(argv: Sequence[str] | None = None) -> int:
    args = list(sys.argv[1:] if argv is None else argv)
    if not args or args[0] in (*HELP_FLAGS, "help"):
        print(usage(), end="")
        return 0
    if args[0] == "--version":
        from nas import __version__

        print(f"nas {__version__}")
        return 0
    if args[0] not in COMMANDS:
        print(
            f"error: unknown command '{args[0]}'. Commands: {', '.join(COMMANDS)}."
            + close_match_hint(args[0], COMMANDS),
            file=sys.stderr,
        )
        return 2
    try:
        return _run(args[0], args[1:])
    except NasError as error:
        print(f"error: {error}", file=sys.stderr)
        return error.exit_code
    except KeyboardInterrupt:
        print("Interrupted.", file=sys.stderr)
        return 130


if __name__ == "__main__":
    raise SystemExit(main())
