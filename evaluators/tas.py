"""``evaluator=tas``: prune a network by transformable architecture search, then train the
pruned network by distillation from the unpruned one.

Dong & Yang, "Network Pruning via Transformable Architecture Search" (NeurIPS 2019).
Preparation trains the unpruned network (the teacher) once per study, checkpointed,
published and resumed like a supernet, or reads it from ``tas.teacher``. Each trial
then:

1. takes a FLOPs target: ``tas.flops_ratio``, or one the study's strategy suggests
   between ``tas.ratio_low`` and ``tas.ratio_high`` (so that a multi-objective study
   gives an accuracy-vs-FLOPs front);
2. finds the pruned architecture meeting it (``tas.method``): the TAS search
   (:mod:`evaluators.tas_search`, resumed exactly from its own checkpoint), or one of
   the baselines at the same target: ``uniform`` (every layer at one fraction of its
   width, trained from scratch) or ``l1`` (the same widths, inheriting the teacher's
   largest-L1 filters);
3. trains it for the study's ``epochs``, learning from the teacher with
   ``(1 - a) * CE + a * T^2 * KL`` (a = ``distill_alpha``, T = ``temperature``; plain
   cross-entropy with ``distill=false``), reporting validation accuracy every epoch.
"""

from __future__ import annotations

import math
from collections.abc import Callable
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any, ClassVar

import torch
import torch.nn.functional as F
from torch import nn

from evaluators.base import Evaluator, TrialSession
from evaluators.costs import deployment_costs
from evaluators.registry import register_evaluator
from evaluators.shared_training import prepare_shared
from evaluators.standalone import EpochReport, TrainSettings, train_standalone
from evaluators.tas_search import SearchEpoch, SearchSettings, search_architecture
from nas.core.errors import ConfigError, NasError
from nas.core.validation import check_bool, check_choice, check_number
from search_spaces.base import DifferentiableSpace, SearchSpace, load_weights

if TYPE_CHECKING:
    from nas.data import DatasetSplits

METHODS = ("tas", "uniform", "l1")
SUMMARY_ATTR = "nas.teacher"  # the teacher's validation curve
_RATIO_STEP = 0.05


@dataclass(frozen=True, kw_only=True)
class TASSettings:
    """The ``tas.*`` settings group: the target, the search, the teacher, distillation.

    Attributes:
        flops_ratio: The pruned network's multiply-adds as a fraction of the unpruned
            one's; unset, each trial's strategy suggests one in [ratio_low, ratio_high].
        ratio_low: Lowest target a strategy may suggest.
        ratio_high: Highest target a strategy may suggest.
        method: ``tas`` (the search), ``uniform`` or ``l1`` (baselines at the target).
        search_epochs: Epochs of a TAS search (on the two halves of the training set).
        batch_size: Examples per step, in the search and in training.
        lr: Peak SGD learning rate (Nesterov, cosine to 0) of the search's weights, the
            teacher and the pruned network.
        momentum: SGD momentum.
        weight_decay: SGD weight decay.
        arch_lr: Adam learning rate of the architecture distributions.
        arch_weight_decay: Their weight decay.
        tau_max: Gumbel temperature at the search's first epoch.
        tau_min: And at its last (cosine in between).
        flops_weight: Weight of the FLOPs loss.
        flops_tolerance: The FLOPs loss is 0 while the most likely architecture is
            within this fraction of the unpruned network's FLOPs below the target.
        teacher_epochs: Epochs of the teacher's training.
        teacher: A file of the trained unpruned network's weights (safetensors, or a
            state dict saved by torch) instead of training it.
        distill: Whether the pruned network learns from the teacher.
        distill_alpha: Weight of the distillation term.
        temperature: Softmax temperature of distillation.
    """

    flops_ratio: float | None = None
    ratio_low: float = 0.3
    ratio_high: float = 0.8
    method: str = "tas"
    search_epochs: int = 10
    batch_size: int = 64
    lr: float = 0.1
    momentum: float = 0.9
    weight_decay: float = 5e-4
    arch_lr: float = 0.001
    arch_weight_decay: float = 0.001
    tau_max: float = 10.0
    tau_min: float = 0.1
    flops_weight: float = 2.0
    flops_tolerance: float = 0.05
    teacher_epochs: int = 20
    teacher: str = ""
    distill: bool = True
    distill_alpha: float = 0.9
    temperature: float = 4.0

    def __post_init__(self) -> None:
        if self.flops_ratio is not None:
            check_number("flops_ratio", self.flops_ratio, low=0.0, low_open=True, high=1.0)
        for name in ("ratio_low", "ratio_high", "flops_tolerance"):
            check_number(name, getattr(self, name), low=0.0, low_open=True, high=1.0)
        if self.ratio_low > self.ratio_high:
            raise ConfigError(
                f"tas.ratio_low={self.ratio_low:g} is above tas.ratio_high={self.ratio_high:g}; "
                "swap them."
            )
        check_choice("method", self.method, METHODS)
        for name in ("search_epochs", "batch_size", "teacher_epochs"):
            check_number(name, getattr(self, name), integer=True, low=1)
        for name in ("lr", "arch_lr", "tau_max", "tau_min", "temperature"):
            check_number(name, getattr(self, name), low=0.0, low_open=True)
        for name in ("weight_decay", "arch_weight_decay", "flops_weight"):
            check_number(name, getattr(self, name), low=0.0)
        check_number("momentum", self.momentum, low=0.0, high=1.0, high_open=True)
        check_number("distill_alpha", self.distill_alpha, low=0.0, high=1.0)
        check_bool("distill", self.distill)
        if not isinstance(self.teacher, str):
            raise ConfigError("tas.teacher must be a file path (or empty to train the teacher).")

    def search(self) -> SearchSettings:
        fields = set(SearchSettings.__dataclass_fields__) - {"epochs"}
        return SearchSettings(epochs=self.search_epochs, **{k: getattr(self, k) for k in fields})

    def training(self) -> TrainSettings:
        return TrainSettings(
            batch_size=self.batch_size,
            lr=self.lr,
            momentum=self.momentum,
            weight_decay=self.weight_decay,
        )


class DistillationLoss:
    """``(1 - alpha) * CE(student, y) + alpha * T^2 * KL(teacher_T || student_T)``
    (Hinton et al., 2015), the teacher's logits computed without gradients."""

    def __init__(self, teacher: nn.Module, alpha: float, temperature: float) -> None:
        self.teacher, self.alpha, self.temperature = teacher.eval(), alpha, temperature

    def __call__(
        self, logits: torch.Tensor, inputs: torch.Tensor, targets: torch.Tensor
    ) -> torch.Tensor:
        with torch.no_grad():
            teacher = self.teacher(inputs)
        t = self.temperature
        soft = F.kl_div(
            F.log_softmax(logits / t, dim=1), F.softmax(teacher / t, dim=1), reduction="batchmean"
        )
        hard = F.cross_entropy(logits, targets)
        return (1 - self.alpha) * hard + self.alpha * t * t * soft


def uniform_target(space: DifferentiableSpace[Any], data: DatasetSplits, ratio: float) -> Any:
    """The widest uniformly scaled network (every layer at one tenth-fraction, full
    depth) within ``ratio`` of the unpruned network's multiply-adds (else the narrowest)."""
    uniform = getattr(space, "uniform", None)
    macs = getattr(space, "macs", None)
    if not callable(uniform) or not callable(macs):
        raise NasError(f"Space '{space.name}' has no uniform width scaling (tas.method=tas).")
    full = macs(space.largest(), data.spec)
    fitting = [t for t in range(3, 11) if macs(uniform(t), data.spec) <= ratio * full]
    return uniform(max(fitting) if fitting else 3)


def find_architecture(
    space: DifferentiableSpace[Any],
    data: DatasetSplits,
    settings: TASSettings,
    *,
    flops_ratio: float,
    device: torch.device,
    seed: int,
    checkpoint: Path,
    on_epoch: Callable[[SearchEpoch], None] | None = None,
    on_step: Callable[[int, int], None] | None = None,
) -> tuple[Any, list[SearchEpoch]]:
    """The pruned architecture ``settings.method`` finds at ``flops_ratio`` of the
    unpruned network's multiply-adds, and the search's epochs (none for a baseline)."""
    if settings.method != "tas":
        return uniform_target(space, data, flops_ratio), []
    return search_architecture(
        space,
        data,
        settings.search(),
        flops_ratio=flops_ratio,
        device=device,
        seed=seed,
        checkpoint=checkpoint,
        on_epoch=on_epoch,
        on_step=on_step,
    )


def train_pruned(
    space: SearchSpace[Any],
    arch: Any,
    data: DatasetSplits,
    settings: TASSettings,
    teacher: nn.Module,
    *,
    epochs: int,
    device: torch.device,
    seed: int,
    on_built: Callable[[nn.Module], None] | None = None,
    on_epoch: Callable[[EpochReport], None] | None = None,
    on_step: Callable[[int, int], None] | None = None,
) -> tuple[nn.Module, list[float]]:
    """Train ``arch``'s network (from scratch, or from the teacher's largest-L1 filters
    with ``method=l1``) for ``epochs``, by distillation from ``teacher`` unless
    ``distill`` is off; (the network, its validation curve)."""
    torch.manual_seed(seed)  # the initial weights belong to the seed
    weights = None
    if settings.method == "l1":
        pruned = getattr(space, "l1_pruned_state", None)
        if not callable(pruned):
            raise NasError(f"Space '{space.name}' has no L1 filter pruning (tas.method=tas).")
        weights = pruned(teacher.state_dict(), arch, data.spec)
    student = space.build(arch, data.spec, weights)
    if on_built is not None:
        on_built(student)
    loss = (
        DistillationLoss(teacher, settings.distill_alpha, settings.temperature)
        if settings.distill
        else None
    )
    curve = train_standalone(
        student,
        data,
        settings.training(),
        epochs=epochs,
        device=device,
        seed=seed,
        on_epoch=on_epoch,
        on_step=on_step,
        loss_fn=loss,
    )
    return student, curve


@register_evaluator
class TASEvaluator(Evaluator[TASSettings]):
    """Network pruning by TAS: a search per trial, then distillation from the teacher."""

    name: ClassVar[str] = "tas"
    settings_group: ClassVar[str] = "tas"
    Settings: ClassVar[type[TASSettings]] = TASSettings
    space_type: ClassVar[type[Any]] = DifferentiableSpace
    derives_architecture: ClassVar[bool] = True
    summary_attr: ClassVar[str] = SUMMARY_ATTR

    teacher: nn.Module

    @classmethod
    def identity(cls, settings: TASSettings, *, epochs: int) -> dict[str, Any]:
        return {"epochs": epochs, "tas": asdict(settings)}

    # ------------------------------------------------------------------ the teacher
    def prepare(self) -> None:
        context, settings = self.context, self.settings
        space = context.space
        assert isinstance(space, DifferentiableSpace)
        torch.manual_seed(context.seed)  # the teacher's initial weights belong to the seed
        self.teacher = space.build(space.largest(), context.data.spec).to(context.device)
        if settings.teacher:
            load_weights(self.teacher, _read_weights(Path(settings.teacher)), what="the teacher")
            curve: list[float] = []
        else:
            curve = prepare_shared(context, "teacher", settings.teacher_epochs, self._train_teacher)
        self.teacher.eval()
        context.set_study_attr(SUMMARY_ATTR, curve)

    def _train_teacher(
        self, checkpoint: Path, publish: bool, finished: bool
    ) -> tuple[list[float], int]:
        context, epochs = self.context, self.settings.teacher_epochs
        reporter = context.reporter
        if not finished:
            reporter.phase_started("teacher", epochs)

        def on_epoch(report: Any) -> None:
            reporter.phase_epoch(report.epoch, epochs, f"val accuracy {report.val_accuracy:.4f}")
            if publish:
                context.files.publish(checkpoint, report.epoch)

        if finished and not checkpoint.exists():
            raise NasError(f"The teacher checkpoint {checkpoint} is missing.")
        curve = train_standalone(
            self.teacher,
            context.data,
            self.settings.training(),
            epochs=epochs,
            device=context.device,
            seed=context.seed,
            on_epoch=on_epoch,
            on_step=reporter.phase_step,
            checkpoint=checkpoint,
            fingerprint=_fingerprint(context.space, context.data),
        )
        if not finished:
            reporter.phase_finished(f"teacher val accuracy {curve[-1]:.4f}")
        return curve, len(curve)

    # ------------------------------------------------------------------ one trial
    def derive(self, trial: TrialSession, suggest: Any) -> Any:
        settings, context = self.settings, self.context
        ratio = settings.flops_ratio
        ratio = float(_suggest_ratio(settings, suggest) if ratio is None else ratio)
        if not 0 < ratio <= 1:  # replayed from storage: untrusted
            raise NasError(f"Trial {trial.number} has flops_ratio={ratio!r}; it must be in (0, 1].")
        trial.record("flops_ratio", ratio)
        space = context.space
        assert isinstance(space, DifferentiableSpace)
        name = context.files.checkpoint_path("tas-search")
        epochs = settings.search_epochs
        history: list[dict[str, float]] = []

        def on_epoch(report: SearchEpoch) -> None:
            history.append(asdict(report))
            trial.record("search", history)
            context.echo(
                f"  trial {trial.number} search epoch {report.epoch}/{epochs}: "
                f"MACs {report.derived_ratio:.3f} of the unpruned (target {ratio:.2f}), "
                f"tau {report.tau:.2f}"
            )

        arch, reports = find_architecture(
            space,
            context.data,
            settings,
            flops_ratio=ratio,
            device=context.device,
            seed=trial.seed,
            checkpoint=name.with_name(f"{name.stem}-seed{trial.seed}-ratio{ratio:.4f}.ckpt"),
            on_epoch=on_epoch,
            on_step=trial.step,
        )
        if len(reports) != len(history):  # some epochs were resumed from the checkpoint
            trial.record("search", [asdict(report) for report in reports])
        return arch

    def evaluate(self, arch: Any, trial: TrialSession) -> dict[str, float]:
        context = self.context
        costs: dict[str, float] = {}

        def on_built(student: nn.Module) -> None:
            costs.update(deployment_costs(context, student))
            trial.record_costs(costs)

        student, curve = train_pruned(
            context.space,
            arch,
            context.data,
            self.settings,
            self.teacher,
            epochs=context.epochs,
            device=context.device,
            seed=trial.seed,
            on_built=on_built,
            on_epoch=lambda report: trial.report(report.epoch, report.epochs, report.val_accuracy),
            on_step=trial.step,
        )
        trial.keep_weights(student)
        return {"accuracy": curve[-1], **costs}

    @classmethod
    def summarize(cls, recorded: Any) -> str | None:
        if not isinstance(recorded, list) or not recorded:
            return "teacher: read from tas.teacher" if recorded == [] else None
        last = recorded[-1]
        if not isinstance(last, (int, float)) or not math.isfinite(last):
            return None
        return f"teacher: {len(recorded)} epochs; validation accuracy {float(last):.4f}"


def _suggest_ratio(settings: TASSettings, suggest: Any) -> float:
    """The strategy's FLOPs target, in steps of 0.05 where the range allows."""
    low, high = settings.ratio_low, settings.ratio_high
    steps = (high - low) / _RATIO_STEP
    step = _RATIO_STEP if abs(steps - round(steps)) < 1e-9 else None
    return float(suggest.suggest_float("flops_ratio", low, high, step=step))


def _fingerprint(space: Any, data: DatasetSplits) -> dict[str, Any]:
    return {
        "space": space.name,
        "architecture": repr(space.encode(space.largest())),
        "data": data.name,
        "num_train": data.num_train,
        "num_val": data.num_val,
    }


def _read_weights(path: Path) -> dict[str, torch.Tensor]:
    """A state dict from a safetensors file or a torch file (tensors only, no pickle)."""
    if not path.is_file():
        raise ConfigError(f"tas.teacher={path} is not a file; give the teacher's weights file.")
    try:
        if path.suffix == ".safetensors":
            from safetensors.torch import load_file

            return load_file(str(path))
        loaded = torch.load(path, map_location="cpu", weights_only=True)
    except Exception as error:  # any unreadable file is the user's to fix
        raise ConfigError(f"tas.teacher={path} is not a readable weights file ({error}).") from None
    if not isinstance(loaded, dict) or not all(
        isinstance(v, torch.Tensor) for v in loaded.values()
    ):
        raise ConfigError(f"tas.teacher={path} does not hold a state dict of tensors.")
    return loaded
