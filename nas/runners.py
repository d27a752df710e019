"""How one trial turns a sampled architecture into objectives.

Both runners share the bookkeeping (architecture, seed, costs, constraints, weights);
they differ in where the network and its accuracy come from:

* :class:`StandaloneRunner` builds the network and trains it from scratch, reporting
  every epoch so that a pruner may stop it;
* :class:`SupernetRunner` extracts the child from a trained supernet, recalibrates its
  BN statistics on training batches and scores it without training.
"""

from __future__ import annotations

import re
import tempfile
from collections.abc import Callable
from pathlib import Path
from typing import TYPE_CHECKING, Any

from nas.config import SearchConfig, to_container
from nas.progress import SearchReporter
from nas.strategies import derive_seed

if TYPE_CHECKING:
    import optuna
    import torch
    from torch import nn

    from evaluators import SupernetEpochReport
    from evaluators.distributed import DataParallelContext
    from nas.artifacts import Artifacts
    from nas.data import DatasetSplits
    from nas.early_stopping import CurveStopper
    from search_spaces.base import SearchSpace, WeightSharingSpace


class TrialRunner:
    """Runs one trial from sampling to objectives; holds the per-search context."""

    def __init__(
        self,
        config: SearchConfig,
        space: SearchSpace[Any],
        data: DatasetSplits,
        device: torch.device,
        artifacts: Artifacts,
        reporter: SearchReporter,
    ) -> None:
        self.config = config
        self.space = space
        self.data = data
        self.device = device
        self.artifacts = artifacts
        self.reporter = reporter

    def trial_seed(self, trial: optuna.Trial) -> int:
        stored = trial.user_attrs.get("seed")  # set when retrying an interrupted trial
        if type(stored) is int and 0 <= stored < 2**32:
            return stored
        return derive_seed(self.config.seed, trial.number)

    def run(self, trial: optuna.Trial) -> list[float]:
        seed = self.trial_seed(trial)
        arch = self.space.sample(trial)
        self.space.validate(arch)
        described = self.space.describe(arch)
        trial.set_user_attr("arch", self.space.encode(arch))
        trial.set_user_attr("arch_str", described)
        trial.set_user_attr("seed", seed)
        self.reporter.trial_started(trial.number, described, self.config.epochs)

        model = self.prepare(arch, seed)
        costs = self.record_costs(trial, model)
        accuracy = self.score(trial, model, seed, costs)
        if self.config.keep_weights:
            self.save_weights(trial, model)
        values = {"accuracy": accuracy, **costs}
        return [values[name] for name in self.config.objectives]

    def prepare(self, arch: Any, seed: int) -> nn.Module:
        """The network whose costs are measured and which ``score`` evaluates."""
        raise NotImplementedError

    def score(
        self, trial: optuna.Trial, model: nn.Module, seed: int, costs: dict[str, float]
    ) -> float:
        """Validation accuracy (fraction) of ``model``, whose ``costs`` are measured."""
        raise NotImplementedError

    def record_costs(self, trial: optuna.Trial, model: nn.Module) -> dict[str, float]:
        """Parameters, FLOPs and latency of the deployable network, plus budget excesses."""
        from nas.metrics import count_flops, measure_latency

        # Training-only parts (auxiliary heads) are not deployed, so not counted.
        exported = self.space.export_state_dict(model)
        params = sum(p.numel() for name, p in model.named_parameters() if name in exported)
        shape = self.data.spec.input_shape(1)
        costs = {
            "params": float(params),
            "flops": float(count_flops(model, shape)),
            "latency": measure_latency(model, shape, device=self.device),
        }
        trial.set_user_attr("params", params)
        trial.set_user_attr("flops", int(costs["flops"]))
        trial.set_user_attr("latency_ms", costs["latency"])
        limits = self.config.constraints
        budgets = [
            (costs["flops"], limits.max_flops),
            (costs["params"], limits.max_params),
            (costs["latency"], limits.max_latency_ms),
        ]
        excess = [value - limit for value, limit in budgets if limit is not None]
        if excess:
            trial.set_user_attr("constraint", excess)
        return costs

    def save_weights(self, trial: optuna.Trial, model: nn.Module) -> None:
        """Store the trained (or inherited and recalibrated) weights as an Optuna artifact."""
        from safetensors.torch import save_file

        tensors = {k: v.detach().cpu().contiguous() for k, v in model.state_dict().items()}
        with tempfile.TemporaryDirectory() as tmp:
            path = Path(tmp) / f"trial-{trial.number}.safetensors"
            save_file(tensors, str(path))
            artifact_id = self.artifacts.upload(trial, path)
        trial.set_user_attr("weights", artifact_id)


class StandaloneRunner(TrialRunner):
    """Train every sampled network from scratch for ``config.epochs``."""

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        from evaluators import TrainSettings

        super().__init__(*args, **kwargs)
        self.settings = TrainSettings(epochs=self.config.epochs, **to_container(self.config.train))
        # Optuna's report()/prune only exist for single-objective studies; with costs
        # as objectives, pruner=lcpfn stops trials here, against the Pareto front.
        self.prunable = len(self.config.objectives) == 1
        self.pareto_stopper: CurveStopper | None = None
        if not self.prunable and self.config.pruner == "lcpfn":
            from nas.strategies import create_curve_stopper

            self.pareto_stopper = create_curve_stopper(self.config)

    def prepare(self, arch: Any, seed: int) -> nn.Module:
        import torch

        torch.manual_seed(seed)  # the initial weights belong to the trial's seed
        return self.space.build(arch, self.data.spec)

    def score(
        self, trial: optuna.Trial, model: nn.Module, seed: int, costs: dict[str, float]
    ) -> float:
        import optuna

        from evaluators import EpochReport, train_standalone

        curve: list[float] = []
        own_costs = [costs[name] for name in self.config.objectives[1:]]

        def on_epoch(report: EpochReport) -> None:
            curve.append(report.val_accuracy)
            trial.set_user_attr("curve", curve)
            self.reporter.epoch(trial.number, report.epoch, report.epochs, report.val_accuracy)
            if self.prunable:
                trial.report(report.val_accuracy, report.epoch)
                if trial.should_prune():
                    raise optuna.TrialPruned(f"pruned after epoch {report.epoch}")
            elif self.pareto_stopper is not None and self._dominated(trial, curve, own_costs):
                raise optuna.TrialPruned(f"stopped after epoch {report.epoch}: dominated")

        train_standalone(
            model,
            self.data,
            self.settings,
            device=self.device,
            seed=seed,
            on_epoch=on_epoch,
            on_step=lambda step, steps: self.reporter.step(trial.number, step, steps),
        )
        return curve[-1]

    def _dominated(self, trial: optuna.Trial, curve: list[float], costs: list[float]) -> bool:
        """Whether cheaper-or-equal finished trials will most likely beat this one's accuracy."""
        from nas.early_stopping import finished_front, pareto_target

        assert self.pareto_stopper is not None
        front = finished_front(trial.study, range(1, len(self.config.objectives)))
        if len(front) < self.config.lcpfn.startup_trials:
            return False
        target = pareto_target(costs, front)
        return self.pareto_stopper.should_stop(curve, self.config.epochs, target)


class SupernetRunner(TrialRunner):
    """Score children of a trained supernet with inherited weights (no retraining)."""

    def __init__(self, *args: Any, supernet: nn.Module, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self.supernet = supernet

    def prepare(self, arch: Any, seed: int) -> nn.Module:
        return self.supernet.extract(arch)  # type: ignore[operator]

    def score(
        self, trial: optuna.Trial, model: nn.Module, seed: int, costs: dict[str, float]
    ) -> float:
        from evaluators import inherited_accuracy

        accuracy = inherited_accuracy(
            model,
            self.data,
            device=self.device,
            batches=self.config.supernet.calibration_batches,
            batch_size=self.config.supernet.batch_size,
        )
        self.reporter.epoch(trial.number, 1, 1, accuracy)
        return accuracy


def supernet_checkpoint_path(artifact_dir: Path, study_name: str) -> Path:
    """Where a study's supernet checkpoint lives (one file per study)."""
    safe = re.sub(r"[^A-Za-z0-9_.-]", "_", study_name)
    return artifact_dir / "supernets" / f"{safe}.ckpt"


def train_or_resume_supernet(
    config: SearchConfig,
    space: WeightSharingSpace[Any],
    data: DatasetSplits,
    device: torch.device,
    checkpoint: Path,
    reporter: SearchReporter,
    parallel: DataParallelContext | None = None,
    *,
    on_trained_epoch: Callable[[int], None] | None = None,
    require_finished: bool = False,
) -> tuple[nn.Module, list[SupernetEpochReport]]:
    """The study's supernet: trained now, resumed from its checkpoint, or reused when done;
    with its training reports for every epoch (those of earlier runs included).

    ``parallel``: train it together with the other data-parallel processes (torchrun);
    only the main one reports progress and calls ``on_trained_epoch(epoch)``, which
    follows each checkpoint this call writes (to publish it). ``require_finished`` (a
    worker's copy of a supernet trained elsewhere) refuses a checkpoint that holds fewer
    epochs than the settings instead of training on.
    """
    from evaluators import SupernetSettings, train_supernet

    settings = SupernetSettings(**to_container(config.supernet))
    supernet = space.supernet(data.spec).to(device)
    main = parallel is None or parallel.is_main
    if main:
        reporter.supernet_started(settings.epochs)

    def on_epoch(report: SupernetEpochReport) -> None:
        if report.resumed:  # replayed from the checkpoint: already shown in an earlier run
            return
        reporter.supernet_epoch(
            report.epoch,
            report.epochs,
            report.loss,
            report.biggest_accuracy,
            report.smallest_accuracy,
        )
        if on_trained_epoch is not None:
            on_trained_epoch(report.epoch)

    reports = train_supernet(
        space,
        supernet,
        data,
        settings,
        device=device,
        seed=config.seed,
        checkpoint=checkpoint,
        on_epoch=on_epoch,
        on_step=reporter.supernet_step,
        parallel=parallel,
        resume_only=require_finished,
    )
    if main:
        reporter.supernet_finished(reports[-1].biggest_accuracy if reports else float("nan"))
    supernet.eval()
    return supernet, reports
