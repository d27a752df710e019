"""Study configuration: YAML presets in ``studies/`` composed with ``key=value`` overrides.

Composition order (later wins): the typed schema (every default) ->
``studies/<space>.yaml`` -> command-line overrides. The schema is :class:`SearchConfig`
plus the settings groups of the chosen space (``model.*``) and evaluator (``train.*``,
``supernet.*``, ...): each is its owner's ``Settings`` dataclass, the one place of its
defaults (:func:`search_schema`). OmegaConf parses and type-checks the overrides; this
module turns its exceptions into one-line :class:`ConfigError` messages that name the
key, the allowed values and a close match.
"""

from __future__ import annotations

import dataclasses
import importlib.resources
import os
import re
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, TypeVar

from omegaconf import DictConfig, OmegaConf
from omegaconf.errors import ConfigKeyError, OmegaConfBaseException, ValidationError

from nas.core.errors import ConfigError, close_match_hint, first_line
from nas.core.validation import check_choice, check_number, check_optional_number
from nas.data import DATASETS

BACKENDS = ("local", "ray")
RAY_SCHEDULERS = ("fifo", "asha")
PRUNERS = ("none", "median", "hyperband", "successive_halving", "lcpfn")
OBJECTIVES = ("accuracy", "flops", "params", "latency")
# An accuracy on one of the networks an evaluator trains (EvoNorm's hosts): accuracy@resnet.
_HOST_ACCURACY = re.compile(r"^accuracy@[a-z0-9_]+$")
PRESET_PATH_ENV = "NAS_PRESET_PATH"  # folders of the user's own presets (os.pathsep-separated)
_DEVICE_PATTERN = re.compile(r"^(auto|cpu|cuda|cuda:\d+)$")


@dataclass
class ConstraintsConfig:
    """Budgets a child must meet to count (constrained search); null = no limit."""

    max_flops: float | None = None  # multiply-adds of one image
    max_params: float | None = None  # parameters
    max_latency_ms: float | None = None  # milliseconds per image, timed on this machine


@dataclass
class LCPFNPrunerConfig:
    """``pruner=lcpfn``: stop a trial once P(it ends better than the target) < threshold."""

    threshold: float = 0.15  # stop when P(better than the target) falls below this
    min_epochs: int = 2  # observed epochs before any decision
    rank: int = 1  # single objective: target the rank-th best finished trial
    startup_trials: int = 3  # complete trials before anything is stopped
    weights: str | None = None  # a network from `nas lcpfn train`; default: the shipped one


@dataclass
class SearchConfig:
    """Everything ``nas search`` needs: each key with its default and meaning.

    ``studies/<space>.yaml`` overrides these for one space; ``key=value`` overrides both.
    """

    space: str = "nasnet"  # a registered space (`nas spaces`) or module:Class
    # A preset over the space's own: a name in $NAS_PRESET_PATH or studies/, or a .yaml path.
    preset: str | None = None
    study: str | None = None  # default: <space>-<dataset>
    storage: str | None = None  # any SQLAlchemy URL; default: sqlite file nas-runs/nas.db
    # Weights and checkpoints: a (shared) folder or s3://bucket/prefix; default:
    # artifacts/ beside the SQLite file, else nas-runs/artifacts.
    artifacts: str | None = None
    trials: int = 10  # finished trials (complete + pruned) the study should hold in total
    timeout: float | None = None  # seconds; stop starting new trials after this long
    dataset: str = "digits"  # digits (embedded, offline) | cifar10 | folder
    data_dir: str | None = None  # folder holding cifar10 / image-folder data
    image_size: int | None = None  # folder data sets only (default 32)
    epochs: int = 3  # epochs each trial trains (evaluators that train per trial; pruners)
    # Validation reports per epoch (evaluator=standalone): the curve, the pruners and the
    # LC-PFN then see epochs x this many steps instead of one per epoch.
    reports_per_epoch: int = 1
    seed: int = 0  # base seed; per-trial seeds derive from it
    device: str = "auto"  # auto | cpu | cuda (the least used GPU) | cuda:N
    # CPU threads torch computes with in each process (each worker); 0: torch's default
    # (one per core; local workers: their share of the cores).
    # One is fastest for the small default models, idle or loaded (benchmarks/threads.py).
    threads: int = 1
    # CPU threads torch times a network's latency with (recorded with each trial), so
    # that latency objectives and limits mean the same from run to run and machine load.
    latency_threads: int = 1
    # tpe | random | nsga2 | coarse_to_fine (bignas) | evolution (vit-resnas) | module:Class;
    # options in the group of the same name (tpe.*, nsga2.*, coarse_to_fine.*, evolution.*)
    strategy: str = "tpe"
    # none | median | hyperband | successive_halving (single objective) | lcpfn (both)
    pruner: str = "median"
    # accuracy first; add flops, params and/or latency (ms) for multi-objective; an
    # evaluator training several networks gives accuracy@NAME for each (evonorm)
    objectives: list[str] = field(default_factory=lambda: ["accuracy"])
    keep_weights: bool = True  # store each finished trial's weights (safetensors) for export
    # Named architectures of the space (`nas named`) evaluated first, as trials marked
    # `baseline`, to compare the search's results with (e.g. [bn-relu,evonorm-b0]).
    baselines: list[str] = field(default_factory=list)
    # An architecture the study already evaluated takes its earlier result (marked
    # reused_from) instead of being evaluated again.
    reuse_results: bool = True
    workers: int = 1  # local worker processes sharing the study (one per GPU when there are GPUs)
    backend: str = "local"  # local (worker processes) | ray (Ray Tune trials, `workers` at once)
    ray_address: str | None = None  # backend=ray: an existing cluster; default: a local one
    ray_scheduler: str = "fifo"  # backend=ray: fifo | asha (Ray's early stopping)
    ray_trial_cpus: float = 1.0  # backend=ray: resources per trial
    ray_trial_gpus: float = 0.0  # backend=ray: GPUs per trial (fractions share one)
    heartbeat_interval: int = 10  # seconds between a running trial's heartbeats in the store
    grace_period: int = 60  # seconds without a heartbeat before a trial is failed and retried
    # standalone (train each architecture; train.*) | supernet (weight sharing; supernet.*)
    # | a plug-in's name | module:Class
    evaluator: str = "standalone"
    constraints: ConstraintsConfig = field(default_factory=ConstraintsConfig)
    lcpfn: LCPFNPrunerConfig = field(default_factory=LCPFNPrunerConfig)
    # The space's settings (model.*); the evaluator's and the strategy's settings are
    # groups of their own (e.g. train.*, tpe.*). search_schema types each.
    model: Any = field(default_factory=dict)


@dataclass
class StoreKey:
    """The key of every command that reads a study store."""

    storage: str | None = None  # any SQLAlchemy URL; default: sqlite file nas-runs/nas.db


@dataclass
class StudyKeys(StoreKey):
    """The keys of a command about one stored study."""

    study: str | None = None  # the study's name (`nas studies` lists them)


@dataclass
class StoreConfig(StoreKey):
    """Keys of the commands that only read the store (``studies``)."""

    format: str = "table"  # table | json (for scripts and notebooks)


@dataclass
class ShowConfig(StudyKeys):
    """Keys of ``nas show``."""

    top: int = 10  # rows for single-objective studies
    format: str = "table"  # table | json (for scripts and notebooks)


@dataclass
class ExportConfig(StudyKeys):
    """Keys of ``nas export study=...``."""

    # where the study kept its weights; default: the folder it recorded
    artifacts: str | None = None
    trial: str = "best"  # "best" or a trial number
    out: str = "net.py"  # the source file; the weights go beside it (.safetensors)


@dataclass
class PlotConfig(StudyKeys):
    """Keys of ``nas plot``."""

    # pareto (several objectives) | history | curves (pruned trials marked) | importance
    kind: str = "history"
    out: str = "plot.html"  # .html: interactive (plotly); .png: an image (matplotlib)


@dataclass
class DashboardConfig(StoreKey):
    """Keys of ``nas dashboard``."""

    # loopback: this machine only; 0.0.0.0 serves every network the machine is on
    host: str = "127.0.0.1"
    port: int = 8080  # the page is http://HOST:PORT/


@dataclass
class WorkerConfig:
    """Keys of ``nas worker``; every other setting is the study's own, set when it was
    created."""

    study: str | None = None  # the study to join (it must exist: `nas search` creates it)
    storage: str | None = None  # the study store's URL; default: $NAS_STORAGE, else nas-runs/nas.db
    device: str = "auto"  # auto | cpu | cuda (the least used GPU) | cuda:N
    timeout: float | None = None  # seconds; stop starting new trials after this long
    worker_name: str | None = None  # names this worker in the store; default: pid<PID>


@dataclass
class NamedConfig:
    """``nas named``: a space's architectures from the literature with their sizes, for
    images of ``in_channels`` x ``image_size``² and ``num_classes`` classes (ImageNet's
    by default); the space's own settings are the ``model.*`` group."""

    space: str = "nasnet"  # a registered space (`nas spaces`) or module:Class
    in_channels: int = 3  # image channels the sizes are counted for
    num_classes: int = 1000  # classes of the classifier the sizes are counted for
    image_size: int = 224  # image side in pixels the multiply-adds are counted for
    model: Any = field(default_factory=dict)  # the space's settings (model.*)


@dataclass
class NamedExportConfig(NamedConfig):
    """``nas export named=NAME``: one of the space's architectures from the literature as
    standalone source, without a study (untrained: there are no weights to write)."""

    named: str = ""  # the architecture's name (`nas named space=...` lists them)
    out: str = "net.py"  # the source file to write


ConfigT = TypeVar("ConfigT")
NamedConfigT = TypeVar("NamedConfigT", bound=NamedConfig)


def _preset(name: str) -> DictConfig | None:
    """The preset ``name``: a ``.yaml`` path, or ``name.yaml`` in a folder of
    ``$NAS_PRESET_PATH`` (searched first, in order) or in the ``studies`` package."""
    if name.endswith((".yaml", ".yml")):
        path = Path(name).expanduser()
        if not path.is_file():
            raise ConfigError(f"Preset file {path} does not exist.")
        return _load_yaml(path.read_text(encoding="utf-8"), str(path))
    folders = [f for f in os.environ.get(PRESET_PATH_ENV, "").split(os.pathsep) if f]
    for folder in folders:
        candidate = Path(folder).expanduser() / f"{name}.yaml"
        if candidate.is_file():
            return _load_yaml(candidate.read_text(encoding="utf-8"), str(candidate))
    resource = importlib.resources.files("studies").joinpath(f"{name}.yaml")
    if not resource.is_file():
        return None
    return _load_yaml(resource.read_text(encoding="utf-8"), f"studies/{name}.yaml")


def _load_yaml(text: str, where: str) -> DictConfig:
    import yaml  # OmegaConf's own YAML parser

    try:
        loaded = OmegaConf.create(text)
    except (OmegaConfBaseException, yaml.YAMLError, ValueError) as error:
        raise ConfigError(f"Preset {where} is not valid YAML: {first_line(error)}") from None
    if not isinstance(loaded, DictConfig):
        raise ConfigError(f"Preset {where} must be a mapping of key: value.")
    return loaded


def parse_overrides(args: Sequence[str]) -> DictConfig:
    """Parse ``key=value`` strings (values in YAML syntax) into a config."""
    for arg in args:
        key, sep, _ = arg.partition("=")
        if not sep or not key:
            raise ConfigError(f"Expected key=value, got '{arg}'. Example: nas search space=nasnet.")
        if key.startswith(("+", "~")):
            raise ConfigError(
                f"'{arg}': adding or deleting keys is not supported; use {key[1:]}=VALUE."
            )
    import yaml  # OmegaConf reads each value as YAML

    try:
        return OmegaConf.from_dotlist(list(args))
    except OmegaConfBaseException as error:
        raise ConfigError(f"Could not parse overrides {list(args)}: {error.msg}") from None
    except yaml.YAMLError:
        raise _unreadable_value(args) from None


def _unreadable_value(args: Sequence[str]) -> ConfigError:
    """A one-line error naming the override whose value YAML cannot read (a ``!!tag``,
    an unclosed bracket); yaml's own message spans several lines."""
    import yaml

    for arg in args:
        try:
            OmegaConf.from_dotlist([arg])
        except yaml.YAMLError as error:
            return ConfigError(
                f"Cannot read the value of '{arg}' ({first_line(error)}); values are YAML: a word, "
                "a number or a [list], without tags such as !!python."
            )
    return ConfigError(f"Cannot read the overrides {list(args)} as YAML.")


def _schema_keys(node: Any) -> list[str]:
    return [str(key) for key in node] if isinstance(node, DictConfig) else []


def _explain(error: OmegaConfBaseException, schema: DictConfig) -> ConfigError:
    key = getattr(error, "full_key", None) or "?"
    if isinstance(error, ConfigKeyError):
        parent, _, leaf = str(key).rpartition(".")
        node = OmegaConf.select(schema, parent) if parent else schema
        allowed = _schema_keys(node)
        return ConfigError(
            f"Unknown key '{key}'. Allowed keys{' under ' + parent if parent else ''}: "
            f"{', '.join(allowed)}." + close_match_hint(leaf, allowed)
        )
    first_line = str(error.msg).splitlines()[0] if error.msg else type(error).__name__
    if isinstance(error, ValidationError):
        expected = _annotation(schema, str(key))
        return ConfigError(f"Bad value for '{key}': {first_line}. Expected {expected}.")
    return ConfigError(f"Bad config at '{key}': {first_line}.")


def _annotation(schema: DictConfig, key: str) -> str:
    """The declared type of ``key`` in the schema dataclass, as written in the source."""
    cls = OmegaConf.get_type(schema)
    *parents, leaf = key.split(".")
    for parent in parents:
        cls = {f.name: f for f in dataclasses.fields(cls)}[parent].default_factory  # type: ignore[arg-type,assignment]
    types = (
        {f.name: f.type for f in dataclasses.fields(cls)} if dataclasses.is_dataclass(cls) else {}
    )
    return str(types.get(leaf, "a value of the declared type"))


def compose(
    schema: type[ConfigT], overrides: Sequence[str], *, presets: Sequence[str] = ()
) -> ConfigT:
    """Merge ``presets`` (names of YAML files in ``studies/``) and ``overrides`` over ``schema``.

    Returns a typed config object (an OmegaConf-backed instance of ``schema``).
    """
    layers = [p for p in (_preset(name) for name in presets) if p is not None]
    return _merge(schema, layers, parse_overrides(overrides))


def _merge(schema: type[ConfigT], layers: Sequence[DictConfig], overrides: DictConfig) -> ConfigT:
    """``overrides`` over ``layers`` over ``schema``, as a typed object.

    The layers (presets, a stored config) may hold settings groups for evaluators other
    than the chosen one: groups the schema lacks are left out of them. The user's own
    overrides get no such leniency: an unknown key is an error.
    """
    base = OmegaConf.structured(schema)
    layers = [_drop_foreign_groups(layer, base) for layer in layers]
    try:
        merged = OmegaConf.merge(base, *layers, overrides)
        return OmegaConf.to_object(merged)  # type: ignore[return-value]
    except OmegaConfBaseException as error:
        raise _explain(error, base) from None
    except ConfigError as error:  # a settings group's own checks
        raise _in_group(error, schema) from None


def _drop_foreign_groups(layer: DictConfig, schema: DictConfig) -> DictConfig:
    foreign = [
        key for key, value in layer.items() if key not in schema and isinstance(value, DictConfig)
    ]
    if not foreign:
        return layer
    kept = OmegaConf.masked_copy(layer, [str(k) for k in layer if k not in foreign])
    assert isinstance(kept, DictConfig)
    return kept


def _in_group(error: ConfigError, schema: type[Any]) -> ConfigError:
    """``error`` with its key qualified by the settings group that owns it."""
    for group in dataclasses.fields(schema):
        factory = group.default_factory
        if dataclasses.is_dataclass(factory) and error.key in {
            f.name for f in dataclasses.fields(factory)
        }:
            return error.in_group(group.name)
    return error


def search_schema(space: str, evaluator: str, strategy: str) -> type[SearchConfig]:
    """:class:`SearchConfig` with the settings groups of ``space``, ``evaluator`` and
    ``strategy``."""
    from evaluators import get_evaluator_class
    from nas.core.settings import NoSettings
    from nas.strategies import STRATEGIES
    from search_spaces import get_space_class

    space_class, evaluator_class = get_space_class(space), get_evaluator_class(evaluator)
    required = evaluator_class.space_type

    if required is not None and not issubclass(space_class, required):
        raise ConfigError(
            f"evaluator={evaluator} needs a {required.kind} space ({required.__name__}); "
            f"space={space} is not one. Use evaluator=standalone."
        )
    groups: list[tuple[str, Any, Any]] = [
        ("model", space_class.Settings, field(default_factory=space_class.Settings))
    ]
    strategy_class = STRATEGIES.get(strategy)
    owned = [(evaluator_class.settings_group, evaluator_class.Settings, f"evaluator={evaluator}")]
    if strategy_class.Settings is not NoSettings:
        owned.append((strategy_class.name, strategy_class.Settings, f"strategy={strategy}"))
    taken = {f.name for f in dataclasses.fields(SearchConfig)}
    for group, settings, owner in owned:
        if group is None:
            continue
        if group in taken:
            raise ConfigError(
                f"{owner} names its settings group '{group}', which is already a key of nas "
                "search; it must choose another name."
            )
        taken.add(group)
        groups.append((group, settings, field(default_factory=settings)))
    return dataclasses.make_dataclass("SearchConfig", groups, bases=(SearchConfig,))


def _check_reports_fit(config: SearchConfig) -> None:
    from evaluators import get_evaluator_class

    if (
        config.reports_per_epoch != 1
        and not get_evaluator_class(config.evaluator).reports_within_epochs
    ):
        raise ConfigError(
            f"reports_per_epoch={config.reports_per_epoch} needs an evaluator that validates "
            f"within an epoch (evaluator=standalone); evaluator={config.evaluator} reports "
            "once per epoch. Leave reports_per_epoch at 1."
        )


def report_steps(config: SearchConfig) -> int:
    """The validation reports of a full trial: the steps pruners and the curve count."""
    return config.epochs * config.reports_per_epoch


def evaluator_settings(config: SearchConfig) -> Any:
    """The settings group of ``config.evaluator`` (its ``Settings`` instance)."""
    from evaluators import get_evaluator_class
    from nas.core.settings import NoSettings

    group = get_evaluator_class(config.evaluator).settings_group
    return NoSettings() if group is None else getattr(config, group)


def compose_search(overrides: Sequence[str]) -> SearchConfig:
    """The full config of ``nas search``: the schema's defaults, the chosen space's preset
    (``<space>.yaml`` in ``$NAS_PRESET_PATH`` or ``studies/``), the ``preset`` asked for,
    the space's named settings (``model.preset``), then ``overrides``."""
    if any(arg.strip() == "study=" for arg in overrides):  # YAML reads it as null
        raise ConfigError(
            "study= is empty: give the study a name, or leave study= out for the default "
            "<space>-<dataset>."
        )
    requested = parse_overrides(overrides)
    space = str(_chosen("space", [requested]))
    from search_spaces import get_space_class

    # A plug-in named by module:Class finds its preset under its registered name.
    layers = [p for p in (_preset(get_space_class(space).name),) if p is not None]
    extra = _chosen("preset", [*layers, requested])
    if extra is not None:
        found = _preset(str(extra))
        if found is None:
            raise ConfigError(
                f"No preset '{extra}' in $NAS_PRESET_PATH or studies/; give a name found "
                "there or a path ending in .yaml."
            )
        layers.append(found)
    settings_preset = _settings_preset(get_space_class(space), [*layers, requested])
    if settings_preset is not None:
        layers.append(settings_preset)
    evaluator = str(_chosen("evaluator", [*layers, requested]))
    strategy = str(_chosen("strategy", [*layers, requested]))
    config = _merge(search_schema(space, evaluator, strategy), layers, requested)
    validate_search(config)
    return config


def _settings_preset(space_class: Any, layers: Sequence[DictConfig]) -> DictConfig | None:
    """The space's named settings that ``model.preset`` asks for, as a layer under the
    user's own settings (an unknown name is left to the settings' own check)."""
    name = None
    for layer in layers:
        model = layer.get("model")
        if isinstance(model, DictConfig) and "preset" in model:
            name = model.get("preset")
    values = space_class.setting_presets.get(name) if isinstance(name, str) else None
    return OmegaConf.create({"model": dict(values)}) if values else None


def compose_named(overrides: Sequence[str], base: type[NamedConfigT]) -> NamedConfigT:
    """The config of ``nas named`` (``base`` ``NamedConfig``) or of ``nas export named=``
    (``NamedExportConfig``): the space's settings group typed by its ``Settings``, with
    its named settings (``model.preset``) under the user's own."""
    from search_spaces import get_space_class

    requested = parse_overrides(overrides)
    space_class = get_space_class(str(requested.get("space", base.space)))
    schema = dataclasses.make_dataclass(
        base.__name__,
        [("model", space_class.Settings, field(default_factory=space_class.Settings))],
        bases=(base,),
    )
    preset = _settings_preset(space_class, [requested])
    config: NamedConfigT = _merge(schema, [preset] if preset is not None else [], requested)
    for key in ("in_channels", "num_classes", "image_size"):
        check_number(key, getattr(config, key), integer=True, low=1)
    return config


def _chosen(key: str, layers: Sequence[DictConfig]) -> Any:
    """The value of a top-level ``key`` after ``layers`` (the schema's default if unset)."""
    value = getattr(SearchConfig(), key)
    for layer in layers:
        value = layer.get(key, value)
    return value


def compose_recorded(recorded: Mapping[str, Any], overrides: Sequence[str]) -> SearchConfig:
    """The config a study was created with (read back from the store), plus ``overrides``.

    The stored dict is untrusted: it goes through the same typed schema and checks as
    the command line, and interpolations (``${...}``, which could read the environment)
    are refused.
    """
    if _has_interpolation(recorded):
        raise ConfigError("The study's stored config contains '${...}'; it was tampered with.")
    try:
        stored = OmegaConf.create(dict(recorded))
        requested = parse_overrides(overrides)
        schema = search_schema(
            *(str(_chosen(key, [stored, requested])) for key in ("space", "evaluator", "strategy"))
        )
        config = _merge(schema, [stored], requested)
    except (OmegaConfBaseException, ConfigError) as error:
        raise ConfigError(f"The study's stored config does not load: {error}") from None
    validate_search(config)
    return config


def _has_interpolation(node: Any) -> bool:
    if isinstance(node, str):
        return "${" in node
    if isinstance(node, Mapping):
        return any(_has_interpolation(k) or _has_interpolation(v) for k, v in node.items())
    if isinstance(node, (list, tuple)):
        return any(_has_interpolation(v) for v in node)
    return False


def validate_search(config: SearchConfig) -> None:
    """Range and choice checks the type system cannot express."""
    check_choice("dataset", config.dataset, DATASETS)
    check_choice("pruner", config.pruner, PRUNERS)
    if not _DEVICE_PATTERN.match(config.device):
        raise ConfigError(
            f"Bad value for 'device': '{config.device}'. Allowed: auto, cpu, cuda, cuda:N."
            + close_match_hint(config.device, ["auto", "cpu", "cuda"])
        )
    if config.study is not None and not str(config.study).strip():
        raise ConfigError(
            "study= is empty: give the study a name, or leave study= out for "
            f"{config.space}-{config.dataset}."
        )
    _check_objectives(config)
    _check_strategy_fits(config)
    _check_reports_fit(config)
    for key, limit in vars(config.constraints).items():
        check_optional_number(f"constraints.{key}", limit, low=0.0, low_open=True)
    for key in (
        "trials",
        "workers",
        "epochs",
        "reports_per_epoch",
        "heartbeat_interval",
        "latency_threads",
    ):
        check_number(key, getattr(config, key), integer=True, low=1)
    check_number("threads", config.threads, integer=True, low=0)
    check_choice("backend", config.backend, BACKENDS)
    check_choice("ray_scheduler", config.ray_scheduler, RAY_SCHEDULERS)
    check_number("ray_trial_cpus", config.ray_trial_cpus, low=0.0, low_open=True)
    check_number("ray_trial_gpus", config.ray_trial_gpus, low=0.0)
    if config.grace_period <= config.heartbeat_interval:
        raise ConfigError(
            f"'grace_period' ({config.grace_period}) must exceed 'heartbeat_interval' "
            f"({config.heartbeat_interval}), or live workers would count as dead."
        )
    check_optional_number("timeout", config.timeout, low=0.0, low_open=True)
    check_optional_number("image_size", config.image_size, integer=True, low=1)
    lcpfn = config.lcpfn
    check_number("lcpfn.threshold", lcpfn.threshold, low=0, low_open=True, high=1, high_open=True)
    check_number("lcpfn.min_epochs", lcpfn.min_epochs, integer=True, low=1)
    check_number("lcpfn.rank", lcpfn.rank, integer=True, low=1)
    check_number("lcpfn.startup_trials", lcpfn.startup_trials, integer=True, low=0)
    check_number("seed", config.seed, integer=True, low=0)
    if config.study is not None and not config.study.strip():
        raise ConfigError("'study' must not be empty; leave it out to get <space>-<dataset>.")


def _check_objectives(config: SearchConfig) -> None:
    objectives = config.objectives
    if not objectives or not _is_accuracy(objectives[0]):
        raise ConfigError(
            f"'objectives' must start with accuracy, but got {objectives}. "
            "Example: objectives=[accuracy,flops]."
        )
    for objective in objectives:
        if not _is_accuracy(objective):
            check_choice("objectives", objective, OBJECTIVES)
    if len(set(objectives)) != len(objectives):
        raise ConfigError(f"'objectives' lists a metric twice: {objectives}.")
    if config.pruner == "lcpfn" and any(_is_accuracy(o) for o in objectives[1:]):
        raise ConfigError(
            "pruner=lcpfn stops a trial against cheaper ones, so the objectives after the "
            f"first must be costs (flops, params, latency), got {objectives}; use pruner=none."
        )


def _is_accuracy(objective: str) -> bool:
    return objective == "accuracy" or bool(_HOST_ACCURACY.match(objective))


def _check_strategy_fits(config: SearchConfig) -> None:
    from nas.strategies import STRATEGIES

    strategy = STRATEGIES.get(config.strategy)
    multi = len(config.objectives) > 1
    if multi and not strategy.multi_objective:
        raise ConfigError(
            f"strategy={config.strategy} optimises one objective (under constraints.*): use "
            "objectives=[accuracy], or strategy=nsga2 for a Pareto front."
        )
    if not multi and not strategy.single_objective:
        raise ConfigError(
            f"strategy={config.strategy} needs several objectives, e.g. "
            "objectives=[accuracy,flops]."
        )


def study_name(config: SearchConfig) -> str:
    """``study``, or ``<space>-<dataset>`` with the space's registered name (also for a
    ``module:Class`` reference)."""
    if config.study:
        return config.study
    from search_spaces import get_space_class

    return f"{get_space_class(config.space).name}-{config.dataset}"


def to_container(config: Any) -> dict[str, Any]:
    """A plain JSON-safe dict of a config object."""
    container = OmegaConf.to_container(OmegaConf.structured(config), resolve=True)
    assert isinstance(container, dict)
    return {str(k): v for k, v in container.items()}
