"""The contract every evaluator implements: how an architecture gets its score.

An evaluator is prepared once per process before the first trial (for example: train
a weight-sharing supernet, or a teacher), then scores one architecture per trial. It
reports through the objects the platform hands it, so it knows nothing of Optuna, the
study store or the command line:

* :class:`EvaluationContext`: what the whole search shares (the space, seeds, the data
  and device, loaded only when the evaluator asks, progress, files shared with workers);
* :class:`TrialSession`: one trial (its seed; per-epoch reports through which a pruner
  may stop it; costs; weights to keep).

Its settings are one dataclass, ``Settings``, which is also the schema of its config
group (``settings_group``: ``train.*`` for stand-alone training, ``supernet.*`` for weight
sharing); every default lives there and the YAML presets only override it.
"""

from __future__ import annotations

import abc
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from functools import cached_property
from pathlib import Path
from typing import TYPE_CHECKING, Any, ClassVar, Generic, Protocol, TypeVar

from nas.core.settings import NoSettings

if TYPE_CHECKING:
    import torch
    from torch import nn

    from evaluators.distributed import DataParallelContext
    from nas.data import DatasetSplits
    from search_spaces.base import SearchSpace

SettingsT = TypeVar("SettingsT")


class PhaseReporter(Protocol):
    """Progress of a long preparation phase (training a supernet, a teacher, ...)."""

    def phase_started(self, name: str, total: int) -> None:
        """``name`` starts; it runs ``total`` epochs."""

    def phase_step(self, step: int, steps: int) -> None:
        """Step ``step`` of ``steps`` of the current epoch is done."""

    def phase_epoch(self, epoch: int, total: int, summary: str) -> None:
        """Epoch ``epoch`` of ``total`` is done; ``summary`` is one line of its results."""

    def phase_finished(self, summary: str) -> None:
        """The phase is over; ``summary`` says with what result."""


class SharedFiles(Protocol):
    """A study's files that every worker of the study reaches (the artifact store).

    A trainer writes its checkpoint at ``checkpoint_path(kind)`` and publishes it after
    every epoch; a worker elsewhere waits for the finished one and reads it.
    """

    @property
    def location(self) -> str:
        """Where the files are shared (a folder or ``s3://...``), for messages."""

    def checkpoint_path(self, kind: str) -> Path:
        """Where this process keeps the study's ``kind`` checkpoint (e.g. "supernet")."""

    def fetch_for_resume(self, path: Path) -> bool:
        """Copy the published file to ``path`` if ``path`` is missing; whether it did."""

    def publish(self, path: Path, epoch: int) -> None:
        """Publish ``path``, which now holds ``epoch`` epochs, replacing the last one."""

    def published_epochs(self) -> int | None:
        """Epochs the published file holds, or None when nothing is published."""

    def discard_published(self) -> None:
        """Forget the published file (it is unreadable): the next trainer starts anew."""

    def wait_for_finished(self, path: Path, epochs: int, what: str = "supernet") -> Path:
        """Wait until the published file holds ``epochs`` epochs; the local path to read
        it from (``path`` or a copy of the published one). ``what`` names the network
        in the waiting message."""


@dataclass
class EvaluationContext:
    """What an evaluator may use, shared by every trial of one process.

    ``device`` is resolved on first access and ``data`` is loaded only for evaluators
    with ``needs_data``: one that needs neither (a lookup table) costs no data loading
    and no torch import.
    """

    space: SearchSpace[Any]
    seed: int  # the study's base seed
    epochs: int  # epochs a trial trains, for evaluators that train per trial
    reporter: PhaseReporter
    files: SharedFiles
    load_data: Callable[[], DatasetSplits]
    resolve_device: Callable[[], torch.device]
    set_study_attr: Callable[[str, Any], None]
    echo: Callable[[str], None] = print
    trains: bool = True  # False: a worker; use what the study's trainer prepared
    latency_threads: int = 1  # CPU threads latency is timed with (deployment_costs)
    parallel: DataParallelContext | None = None  # data-parallel preparation (torchrun)
    # Validation reports per epoch; > 1 only for evaluators with reports_within_epochs.
    reports_per_epoch: int = 1

    @cached_property
    def data(self) -> DatasetSplits:
        return self.load_data()

    @cached_property
    def device(self) -> torch.device:
        return self.resolve_device()


class TrialSession(Protocol):
    """One trial, as its evaluator sees it."""

    @property
    def number(self) -> int:
        """The trial's number in the study."""

    @property
    def seed(self) -> int:
        """The trial's own seed (recorded; a retry gets the same one)."""

    def report(self, epoch: int, epochs: int, accuracy: float) -> None:
        """Validation accuracy after ``epoch`` of ``epochs``, recorded in the trial's curve;
        raises (``optuna.TrialPruned``) when the trial should stop, which the evaluator
        lets propagate."""

    def show(self, epoch: int, epochs: int, accuracy: float) -> None:
        """Display an accuracy without recording it or asking a pruner (one-shot scores)."""

    def step(self, step: int, steps: int) -> None:
        """Progress within the current epoch."""

    def record_costs(self, costs: Mapping[str, float]) -> None:
        """Costs (``params``, ``flops``, ``latency``) known before training, so that budgets
        and early stopping against cheaper trials can use them."""

    def record(self, name: str, value: Any) -> None:
        """Store a JSON-safe value with the trial under ``name`` (an evaluator's own
        results: a search's curve, the target it met); written at once."""

    def keep_weights(self, model: nn.Module) -> None:
        """Store the trained weights for export (a no-op with ``keep_weights=false``)."""


class Evaluator(abc.ABC, Generic[SettingsT]):
    """How an architecture gets its score; subclass and ``@register_evaluator``.

    Subclasses set ``name``, ``settings_group`` and ``Settings`` (a dataclass whose
    fields all have defaults; ``nas.core.settings.NoSettings`` for none). ``prepare`` runs
    once per process before any trial; ``evaluate`` once per trial, on the architecture
    the strategy sampled or, with ``derives_architecture``, on the one ``derive`` found.

    Contract:
        * ``evaluate`` returns ``accuracy`` (a fraction, higher is better) and the costs
          it knows (``params``, ``flops``, ``latency`` in ms); the study's objectives
          are read from these.
        * It raises ``nas.core.errors.CandidateRejected`` for an architecture it refuses
          by design (recorded with its reason, never counted as a failure), and lets
          whatever ``TrialSession.report`` raises propagate.
        * ``identity(settings, epochs=...)`` holds every setting that changes results: a
          study cannot be resumed with other values.
    """

    name: ClassVar[str]
    settings_group: ClassVar[str | None] = None  # the config group holding ``Settings``
    Settings: ClassVar[type[Any]] = NoSettings
    # The kind of space it needs (``WeightSharingSpace`` for weight inheritance).
    space_type: ClassVar[type[Any] | None] = None
    # Whether it reads the study's data set (loaded before the store is touched).
    needs_data: ClassVar[bool] = True
    # Whether ``prepare`` can run data-parallel under torchrun.
    data_parallel: ClassVar[bool] = False
    # Whether the evaluator derives each trial's architecture itself (a search by
    # gradient) instead of scoring the one the strategy sampled; see ``derive``.
    derives_architecture: ClassVar[bool] = False
    # Where ``prepare`` records its results on the study (``nas show`` prints them).
    summary_attr: ClassVar[str | None] = None
    # Whether it honours ``context.reports_per_epoch`` > 1 (validation within epochs).
    reports_within_epochs: ClassVar[bool] = False

    def __init__(self, settings: SettingsT, context: EvaluationContext) -> None:
        self.settings = settings
        self.context = context

    @classmethod
    def identity(cls, settings: Any, *, epochs: int) -> dict[str, Any]:
        """Settings that define what a study's results mean (part of the study's identity):
        by default the whole settings group. ``epochs`` is the study's ``epochs``."""
        from dataclasses import asdict, is_dataclass

        if cls.settings_group is None or not is_dataclass(settings):
            return {}
        return {cls.settings_group: asdict(settings)}  # type: ignore[arg-type]

    def prepare(self) -> None:
        """Work done once before the first trial (train a supernet, a teacher...)."""

    def derive(self, trial: TrialSession, suggest: Any) -> Any:
        """The trial's architecture, found by the evaluator's own search (for example by
        learning a ``DifferentiableSpace``'s architecture parameters, in this trial or
        once per study in ``prepare``); only with ``derives_architecture``.

        ``suggest`` is the Optuna trial, for settings a strategy may tune per trial
        (``suggest.suggest_float("flops_ratio", ...)``); the result is validated and
        stored as the trial's architecture, then scored by ``evaluate``.
        """
        raise NotImplementedError(f"{type(self).__name__} declares no derive().")

    @abc.abstractmethod
    def evaluate(self, arch: Any, trial: TrialSession) -> Mapping[str, float]:
        """Score ``arch``: ``accuracy`` and the costs this evaluator knows."""

    @classmethod
    def summarize(cls, recorded: Any) -> str | None:
        """One line on what ``prepare`` recorded under ``summary_attr`` (untrusted), or None."""
        return None
