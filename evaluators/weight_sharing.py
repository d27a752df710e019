"""``evaluator=supernet``: children scored with weights inherited from one trained supernet.

Preparation trains the study's supernet once (``train_supernet``; resumed from its
checkpoint, or reused when finished) and publishes the checkpoint after every epoch, so
that workers elsewhere wait for the finished one instead of training their own. Each
trial then extracts a child, recalibrates its BN statistics on training batches and
scores it on the validation split, with no retraining.
"""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING, Any, ClassVar

from evaluators.base import Evaluator, TrialSession
from evaluators.costs import deployment_costs
from evaluators.registry import register_evaluator
from evaluators.shared_training import prepare_shared
from evaluators.supernet import (
    SupernetEpochReport,
    SupernetSettings,
    inherited_accuracy,
    train_supernet,
)
from search_spaces.base import WeightSharingSpace, check_supernet

if TYPE_CHECKING:
    from torch import nn

SUMMARY_ATTR = "nas.supernet"  # the supernet's per-epoch training reports


@register_evaluator
class SupernetEvaluator(Evaluator[SupernetSettings]):
    """Weight sharing (BigNAS): one supernet trained, children inherit its weights."""

    name: ClassVar[str] = "supernet"
    settings_group: ClassVar[str] = "supernet"
    Settings: ClassVar[type[SupernetSettings]] = SupernetSettings
    space_type: ClassVar[type[Any]] = WeightSharingSpace
    data_parallel: ClassVar[bool] = True
    summary_attr: ClassVar[str] = SUMMARY_ATTR

    supernet: nn.Module

    def prepare(self) -> None:
        """Train (or resume, or reuse) the study's supernet; a worker waits for the one
        the study's trainer publishes. With ``context.parallel`` every data-parallel
        process trains and the main one publishes."""
        context = self.context

        def train(checkpoint: Path, publish: bool, finished: bool) -> tuple[list[Any], int]:
            reports = self._train(checkpoint, publish=publish, require_finished=finished)
            return reports, len(reports)

        reports = prepare_shared(context, "supernet", self.settings.epochs, train)
        # The supernet's training curve, for `nas show`.
        curve = [{k: float(v) for k, v in vars(r).items() if k != "resumed"} for r in reports]
        context.set_study_attr(SUMMARY_ATTR, curve)

    def _train(
        self, checkpoint: Path, *, publish: bool, require_finished: bool = False
    ) -> list[SupernetEpochReport]:
        context, settings = self.context, self.settings
        space = context.space
        assert isinstance(space, WeightSharingSpace)
        import torch

        # The initial weights belong to the seed, whatever ran before in this process.
        torch.manual_seed(context.seed)
        self.supernet = space.supernet(context.data.spec).to(context.device)
        main = context.parallel is None or context.parallel.is_main
        reporter = context.reporter
        if main:
            reporter.phase_started("supernet", settings.epochs)

        def on_epoch(report: SupernetEpochReport) -> None:
            if report.resumed:  # replayed from the checkpoint: already shown in an earlier run
                return
            reporter.phase_epoch(
                report.epoch,
                report.epochs,
                f"loss {report.loss:.4f}, val accuracy biggest {report.biggest_accuracy:.4f} "
                f"smallest {report.smallest_accuracy:.4f}",
            )
            if publish:
                context.files.publish(checkpoint, report.epoch)

        reports = train_supernet(
            space,
            self.supernet,
            context.data,
            settings,
            device=context.device,
            seed=context.seed,
            checkpoint=checkpoint,
            on_epoch=on_epoch,
            on_step=reporter.phase_step,
            parallel=context.parallel,
            resume_only=require_finished,
        )
        if main:
            biggest = reports[-1].biggest_accuracy if reports else float("nan")
            reporter.phase_finished(f"biggest child val accuracy {biggest:.4f}")
        self.supernet.eval()
        return reports

    def evaluate(self, arch: Any, trial: TrialSession) -> dict[str, float]:
        context = self.context
        child = check_supernet(self.supernet).extract(arch)
        costs = deployment_costs(context, child)
        trial.record_costs(costs)
        accuracy = inherited_accuracy(
            child,
            context.data,
            device=context.device,
            batches=self.settings.calibration_batches,
            batch_size=self.settings.batch_size,
        )
        trial.show(1, 1, accuracy)
        trial.keep_weights(child)
        return {"accuracy": accuracy, **costs}

    @classmethod
    def summarize(cls, recorded: Any) -> str | None:
        if not isinstance(recorded, list) or not recorded or not isinstance(recorded[-1], dict):
            return None
        last = recorded[-1]
        try:
            epochs, biggest = int(last["epoch"]), float(last["biggest_accuracy"])
            smallest = float(last["smallest_accuracy"])
        except (KeyError, TypeError, ValueError):  # stored values are untrusted
            return None
        return (
            f"supernet: {epochs} epochs; validation accuracy of the biggest child "
            f"{biggest:.4f}, smallest {smallest:.4f}"
        )
