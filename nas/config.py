"""Study configuration: YAML presets in ``studies/`` composed with ``key=value`` overrides.

Composition order (later wins): the typed schema below -> ``studies/defaults.yaml`` ->
``studies/<space>.yaml`` -> command-line overrides. OmegaConf parses and type-checks the
overrides; this module turns its exceptions into one-line :class:`ConfigError` messages
that name the key, the allowed values and a close match.
"""

from __future__ import annotations

import dataclasses
import importlib.resources
import re
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any, TypeVar

from omegaconf import DictConfig, OmegaConf
from omegaconf.errors import ConfigKeyError, OmegaConfBaseException, ValidationError

from nas.errors import ConfigError, close_match_hint, unknown_choice

STRATEGIES = ("tpe", "random", "nsga2", "coarse_to_fine")
BACKENDS = ("local", "ray")
RAY_SCHEDULERS = ("fifo", "asha")
PRUNERS = ("none", "median", "hyperband", "successive_halving", "lcpfn")
OBJECTIVES = ("accuracy", "flops", "params", "latency")
EVALUATORS = ("standalone", "supernet")
DATASETS = ("digits", "cifar10", "folder")
OPTIMIZERS = ("sgd", "adamw")
_DEVICE_PATTERN = re.compile(r"^(auto|cpu|cuda|cuda:\d+)$")


@dataclass
class TrainConfig:
    batch_size: int = 64
    optimizer: str = "sgd"
    lr: float = 0.05
    momentum: float = 0.9
    weight_decay: float = 3e-4
    grad_clip: float = 5.0  # max gradient norm; 0 disables clipping
    label_smoothing: float = 0.0


@dataclass
class SupernetConfig:
    """Single-stage weight-sharing training (BigNAS); see evaluators/supernet.py."""

    epochs: int = 30
    batch_size: int = 64
    lr: float = 0.05  # peak, after warm-up
    momentum: float = 0.9
    weight_decay: float = 3e-5  # biggest child only
    warmup_epochs: int = 1
    lr_decay: float = 0.97  # per epoch after warm-up
    final_lr_fraction: float = 0.05  # constant ending: lr never below lr * this
    random_children: int = 2  # sandwich: biggest + smallest + this many random children
    label_smoothing: float = 0.1
    grad_clip: float = 1.0
    dropout: float = 0.1  # biggest child only
    drop_connect: float = 0.1  # biggest child only
    calibration_batches: int = 8  # BN recalibration of each child before it is scored


@dataclass
class ConstraintsConfig:
    """Budgets a child must meet to count (constrained search); null = no limit."""

    max_flops: float | None = None
    max_params: float | None = None
    max_latency_ms: float | None = None


@dataclass
class LCPFNPrunerConfig:
    """``pruner=lcpfn``: stop a trial once P(it ends better than the target) < threshold."""

    threshold: float = 0.15
    min_epochs: int = 2  # observed epochs before any decision
    rank: int = 1  # single objective: target the rank-th best finished trial
    startup_trials: int = 3  # complete trials before anything is stopped
    weights: str | None = None  # a network from `nas lcpfn train`; default: the shipped one


@dataclass
class SearchConfig:
    """Everything ``nas search`` needs; see studies/defaults.yaml for what each key means."""

    space: str = "nasnet"
    study: str | None = None
    storage: str | None = None
    artifacts: str | None = None
    trials: int = 10
    timeout: float | None = None
    dataset: str = "digits"
    data_dir: str | None = None
    image_size: int | None = None
    epochs: int = 3
    seed: int = 0
    device: str = "auto"
    strategy: str = "tpe"
    pruner: str = "median"
    objectives: list[str] = field(default_factory=lambda: ["accuracy"])
    keep_weights: bool = True
    workers: int = 1  # local worker processes sharing the study (one per GPU when there are GPUs)
    backend: str = "local"  # local (worker processes) | ray (Ray Tune trials)
    ray_address: str | None = None  # an existing Ray cluster; default: start a local one
    ray_scheduler: str = "fifo"  # fifo | asha (Ray's early stopping)
    ray_trial_cpus: float = 1.0
    ray_trial_gpus: float = 0.0
    heartbeat_interval: int = 10  # seconds between a running trial's signs of life
    grace_period: int = 60  # seconds of silence before a trial's worker counts as dead
    evaluator: str = "standalone"
    coarse_trials: int | None = None  # coarse_to_fine: skeleton trials before fine mutation
    train: TrainConfig = field(default_factory=TrainConfig)
    supernet: SupernetConfig = field(default_factory=SupernetConfig)
    constraints: ConstraintsConfig = field(default_factory=ConstraintsConfig)
    lcpfn: LCPFNPrunerConfig = field(default_factory=LCPFNPrunerConfig)
    model: dict[str, Any] = field(default_factory=dict)


@dataclass
class StoreConfig:
    """Keys of the commands that only read the store (``studies``)."""

    storage: str | None = None


@dataclass
class ShowConfig:
    study: str | None = None
    storage: str | None = None
    top: int = 10  # rows for single-objective studies


@dataclass
class ExportConfig:
    study: str | None = None
    storage: str | None = None
    artifacts: str | None = None
    trial: str = "best"  # "best" or a trial number
    out: str = "net.py"


ConfigT = TypeVar("ConfigT")


def _preset(name: str) -> DictConfig | None:
    resource = importlib.resources.files("studies").joinpath(f"{name}.yaml")
    if not resource.is_file():
        return None
    loaded = OmegaConf.create(resource.read_text(encoding="utf-8"))
    assert isinstance(loaded, DictConfig)
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
    try:
        return OmegaConf.from_dotlist(list(args))
    except OmegaConfBaseException as error:
        raise ConfigError(f"Could not parse overrides {list(args)}: {error.msg}") from None


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
    base = OmegaConf.structured(schema)
    layers = [p for p in (_preset(name) for name in presets) if p is not None]
    try:
        merged = OmegaConf.merge(base, *layers, parse_overrides(overrides))
    except OmegaConfBaseException as error:
        raise _explain(error, base) from None
    return OmegaConf.to_object(merged)  # type: ignore[return-value]


def compose_search(overrides: Sequence[str]) -> SearchConfig:
    """The full config of ``nas search``: defaults, the chosen space's preset, overrides."""
    requested = parse_overrides(overrides)
    defaults = _preset("defaults")
    space = requested.get("space", defaults.get("space") if defaults is not None else "nasnet")
    from search_spaces import list_spaces

    if space not in list_spaces():
        raise unknown_choice("search space", space, list_spaces())
    config = compose(SearchConfig, overrides, presets=("defaults", str(space)))
    validate_search(config)
    return config


def compose_recorded(recorded: Mapping[str, Any], overrides: Sequence[str]) -> SearchConfig:
    """The config a study was created with (read back from the store), plus ``overrides``.

    The stored dict is untrusted: it goes through the same typed schema and checks as
    the command line, and interpolations (``${...}``, which could read the environment)
    are refused.
    """
    if _has_interpolation(recorded):
        raise ConfigError("The study's stored config contains '${...}'; it was tampered with.")
    base = OmegaConf.structured(SearchConfig)
    try:
        merged = OmegaConf.merge(base, OmegaConf.create(dict(recorded)), parse_overrides(overrides))
    except OmegaConfBaseException as error:
        raise ConfigError(
            f"The study's stored config does not load: {_explain(error, base)}"
        ) from None
    config = OmegaConf.to_object(merged)
    assert isinstance(config, SearchConfig)
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


def _check_choice(key: str, value: str, allowed: Sequence[str]) -> None:
    if value not in allowed:
        error = unknown_choice(key, value, allowed)
        raise ConfigError(f"Bad value for '{key}': {error}")


def _check_positive(key: str, value: float | None, *, allow_none: bool = False) -> None:
    if value is None and allow_none:
        return
    if value is None or value <= 0:
        raise ConfigError(f"'{key}' must be > 0, but got {key}={value}.")


def validate_search(config: SearchConfig) -> None:
    """Range and choice checks the type system cannot express."""
    _check_choice("dataset", config.dataset, DATASETS)
    _check_choice("strategy", config.strategy, STRATEGIES)
    _check_choice("pruner", config.pruner, PRUNERS)
    _check_choice("evaluator", config.evaluator, EVALUATORS)
    _check_choice("train.optimizer", config.train.optimizer, OPTIMIZERS)
    if not _DEVICE_PATTERN.match(config.device):
        raise ConfigError(
            f"Bad value for 'device': '{config.device}'. Allowed: auto, cpu, cuda, cuda:N."
            + close_match_hint(config.device, ["auto", "cpu", "cuda"])
        )
    if not config.objectives or config.objectives[0] != "accuracy":
        raise ConfigError(
            f"'objectives' must start with accuracy, but got {config.objectives}. "
            "Example: objectives=[accuracy,flops]."
        )
    for objective in config.objectives:
        _check_choice("objectives", objective, OBJECTIVES)
    if len(set(config.objectives)) != len(config.objectives):
        raise ConfigError(f"'objectives' lists a metric twice: {config.objectives}.")
    if config.strategy == "nsga2" and len(config.objectives) == 1:
        raise ConfigError(
            "strategy=nsga2 needs several objectives, e.g. objectives=[accuracy,flops]; "
            "use strategy=tpe for accuracy alone."
        )
    if config.strategy == "coarse_to_fine" and len(config.objectives) > 1:
        raise ConfigError(
            "strategy=coarse_to_fine picks the most accurate child (under constraints.*): "
            "use objectives=[accuracy], or strategy=nsga2 for a Pareto front."
        )
    for key, limit in vars(config.constraints).items():
        _check_positive(f"constraints.{key}", limit, allow_none=True)
    _check_positive("coarse_trials", config.coarse_trials, allow_none=True)
    _check_positive("trials", config.trials)
    _check_positive("workers", config.workers)
    _check_choice("backend", config.backend, BACKENDS)
    _check_choice("ray_scheduler", config.ray_scheduler, RAY_SCHEDULERS)
    _check_positive("ray_trial_cpus", config.ray_trial_cpus)
    if config.ray_trial_gpus < 0:
        raise ConfigError(f"'ray_trial_gpus' must be >= 0, but got {config.ray_trial_gpus}.")
    _check_positive("heartbeat_interval", config.heartbeat_interval)
    if config.grace_period <= config.heartbeat_interval:
        raise ConfigError(
            f"'grace_period' ({config.grace_period}) must exceed 'heartbeat_interval' "
            f"({config.heartbeat_interval}), or live workers would count as dead."
        )
    _check_positive("epochs", config.epochs)
    _check_positive("timeout", config.timeout, allow_none=True)
    _check_positive("image_size", config.image_size, allow_none=True)
    lcpfn = config.lcpfn
    if not 0 < lcpfn.threshold < 1:
        raise ConfigError(f"'lcpfn.threshold' must be in (0, 1), but got {lcpfn.threshold}.")
    _check_positive("lcpfn.min_epochs", lcpfn.min_epochs)
    _check_positive("lcpfn.rank", lcpfn.rank)
    if lcpfn.startup_trials < 0:
        raise ConfigError(f"'lcpfn.startup_trials' must be >= 0, but got {lcpfn.startup_trials}.")
    if config.seed < 0:
        raise ConfigError(f"'seed' must be >= 0, but got seed={config.seed}.")
    if config.study is not None and not config.study.strip():
        raise ConfigError("'study' must not be empty; leave it out to get <space>-<dataset>.")


def study_name(config: SearchConfig) -> str:
    return config.study or f"{config.space}-{config.dataset}"


def to_container(config: Any) -> dict[str, Any]:
    """A plain JSON-safe dict of a config object."""
    container = OmegaConf.to_container(OmegaConf.structured(config), resolve=True)
    assert isinstance(container, dict)
    return {str(k): v for k, v in container.items()}
