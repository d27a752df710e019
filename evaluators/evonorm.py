"""EvoNorm's evaluation: a candidate layer in several host networks, screened first.

Liu et al. ("Evolving Normalization-Activation Layers", NeurIPS 2020) score a layer by
the accuracies of several architectures that use it (a Pareto front across them), and
reject most candidates cheaply before that. Here, in the order they cost:

1. ``invalid`` (the space refuses the graph: its output ignores x, it aggregates a
   constant) and ``non-finite`` (NaN or infinite outputs, in training or inference mode,
   on a batch of the data; a training loss that becomes NaN later counts too);
2. ``stability``: the gradient norm over the first ``stability_steps`` training steps of
   the first host (without clipping) must stay finite and below ``max_grad_norm``;
3. ``quality``: after ``quality_epochs`` of the first host's training, the validation
   accuracy must reach ``min_accuracy`` (the training then goes on: nothing is wasted).

A candidate that passes is trained on every host in ``hosts`` for the study's ``epochs``
with the same recipe; its metrics are ``accuracy@<host>`` for each, and ``accuracy``,
their mean. A refused one is a rejected trial whose reason names the protocol (``nas
show`` counts them by protocol). ``screen=false`` skips 2 and 3.
"""

from __future__ import annotations

import math
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any, ClassVar

import torch
from torch import nn
from torch.utils.data import DataLoader

from evaluators.base import Evaluator, TrialSession
from evaluators.costs import deployed_size
from evaluators.registry import register_evaluator
from evaluators.standalone import EpochReport, TrainingDiverged, TrainSettings, train_standalone
from nas.core.errors import CandidateRejected, ConfigError
from nas.core.validation import check_bool, check_number

if TYPE_CHECKING:
    from nas.data import DatasetSplits

HOSTS = ("resnet", "mobilenet")


@dataclass(frozen=True, kw_only=True)
class EvoNormEvalSettings:
    """The ``evonorm.*`` settings group: the hosts, their training, the screening.

    Attributes:
        hosts: The networks each candidate layer is trained in (``resnet``,
            ``mobilenet``); the first one is also the one screened and the one whose
            curve a trial reports.
        batch_size, lr, momentum, weight_decay, grad_clip: The hosts' SGD recipe (Nesterov
            momentum, cosine schedule to 0; see ``train.*`` of stand-alone training).
        screen: Whether the stability and quality protocols run.
        stability_steps: Training steps whose gradient norm the stability test watches.
        max_grad_norm: The largest gradient norm (all parameters, before clipping) a
            stable layer shows in those steps.
        quality_epochs: Epochs of the first host after which the quality test looks.
        min_accuracy: The validation accuracy a layer must reach by then.
    """

    hosts: list[str] = field(default_factory=lambda: list(HOSTS))
    batch_size: int = 64
    lr: float = 0.05
    momentum: float = 0.9
    weight_decay: float = 3e-4
    grad_clip: float = 5.0
    screen: bool = True
    stability_steps: int = 5
    max_grad_norm: float = 100.0
    quality_epochs: int = 1
    min_accuracy: float = 0.3

    def __post_init__(self) -> None:
        hosts = list(self.hosts)
        if not hosts or any(h not in HOSTS for h in hosts) or len(set(hosts)) != len(hosts):
            raise ConfigError(
                f"'hosts' must list distinct networks among {', '.join(HOSTS)}, got {hosts}.",
                key="hosts",
            )
        check_number("batch_size", self.batch_size, integer=True, low=1)
        check_number("lr", self.lr, low=0.0, low_open=True)
        check_number("momentum", self.momentum, low=0.0, high=1.0, high_open=True)
        for name in ("weight_decay", "grad_clip"):
            check_number(name, getattr(self, name), low=0.0)
        check_bool("screen", self.screen)
        check_number("stability_steps", self.stability_steps, integer=True, low=1)
        check_number("max_grad_norm", self.max_grad_norm, low=0.0, low_open=True)
        check_number("quality_epochs", self.quality_epochs, integer=True, low=1)
        check_number("min_accuracy", self.min_accuracy, low=0.0, high=1.0)

    def training(self) -> TrainSettings:
        return TrainSettings(
            batch_size=self.batch_size,
            lr=self.lr,
            momentum=self.momentum,
            weight_decay=self.weight_decay,
            grad_clip=self.grad_clip,
        )


def check_finite_outputs(model: nn.Module, inputs: torch.Tensor) -> None:
    """``CandidateRejected`` (non-finite) unless ``model`` gives finite outputs on
    ``inputs`` in training and in inference mode; its weights and statistics are kept."""
    state = {k: v.clone() for k, v in model.state_dict().items()}
    try:
        with torch.no_grad():
            for training in (True, False):
                outputs = model.train(training)(inputs)
                if not bool(torch.isfinite(outputs).all()):
                    mode = "training" if training else "inference"
                    raise CandidateRejected(
                        f"non-finite: the network's outputs are NaN or infinite in {mode} mode",
                        protocol="non-finite",
                    )
    finally:
        model.load_state_dict(state)
        model.train()


def gradient_norms(
    model: nn.Module, data: DatasetSplits, settings: EvoNormEvalSettings, seed: int
) -> list[float]:
    """Total gradient norms (before any clipping) of the first ``stability_steps`` SGD
    steps of ``model`` on the training data; the last one is non-finite or above
    ``max_grad_norm`` where the run stopped early. ``model`` is trained in place: pass
    a copy."""
    loader = DataLoader(
        data.train,
        batch_size=settings.batch_size,
        shuffle=True,
        generator=torch.Generator().manual_seed(seed),
    )
    optimizer = torch.optim.SGD(model.parameters(), lr=settings.lr, momentum=settings.momentum)
    device = next(model.parameters()).device
    norms: list[float] = []
    model.train()
    for step, (inputs, targets) in enumerate(loader):
        if step == settings.stability_steps:
            break
        loss = nn.functional.cross_entropy(model(inputs.to(device)), targets.to(device))
        optimizer.zero_grad(set_to_none=True)
        loss.backward()
        grads = [p.grad for p in model.parameters() if p.grad is not None]
        norm = float(torch.linalg.vector_norm(torch.stack([g.norm() for g in grads])))
        norms.append(norm)
        if not math.isfinite(norm) or norm > settings.max_grad_norm:
            break
        optimizer.step()
    return norms


@register_evaluator
class EvoNormEvaluator(Evaluator[EvoNormEvalSettings]):
    """Screen a candidate layer by the rejection protocols, then train it in every host
    network (``evonorm.*``); needs ``space=evonorm`` (a space with ``build_host``)."""

    name: ClassVar[str] = "evonorm"
    settings_group: ClassVar[str] = "evonorm"
    Settings: ClassVar[type[EvoNormEvalSettings]] = EvoNormEvalSettings

    def __init__(self, settings: EvoNormEvalSettings, context: Any) -> None:
        super().__init__(settings, context)
        build_host = getattr(context.space, "build_host", None)
        if not callable(build_host):
            raise ConfigError(
                f"evaluator=evonorm trains a layer in host networks, which space="
                f"{context.space.name} does not build; use space=evonorm."
            )
        self._build_host: Callable[..., nn.Module] = build_host

    def evaluate(self, arch: Any, trial: TrialSession) -> dict[str, float]:
        context, settings = self.context, self.settings
        data, device = context.data, context.device
        first = self._host(arch, settings.hosts[0], trial.seed)
        deployed_host = getattr(context.space.settings, "host", settings.hosts[0])
        trial.record_costs(deployed_size(context.space, first, data.spec))
        inputs = next(iter(DataLoader(data.train, batch_size=settings.batch_size)))[0]
        check_finite_outputs(first, inputs.to(device))
        if settings.screen:
            self._check_stability(arch, trial.seed)
        accuracies: dict[str, float] = {}
        curves: dict[str, list[float]] = {}
        for position, host in enumerate(settings.hosts):
            model = first if position == 0 else self._host(arch, host, trial.seed)
            curves[host] = self._train(model, trial, screened=position == 0)
            accuracies[f"accuracy@{host}"] = curves[host][-1]
            if host == deployed_host:
                trial.keep_weights(model)
        trial.record("host_curves", curves)
        mean = sum(accuracies.values()) / len(accuracies)
        return {"accuracy": mean, **accuracies}

    def _host(self, arch: Any, host: str, seed: int) -> nn.Module:
        torch.manual_seed(seed)  # every host starts from the trial's seed
        model: nn.Module = self._build_host(arch, self.context.data.spec, host)
        return model.to(self.context.device)

    def _check_stability(self, arch: Any, seed: int) -> None:
        probe = self._host(arch, self.settings.hosts[0], seed)
        norms = gradient_norms(probe, self.context.data, self.settings, seed)
        worst = norms[-1] if norms else 0.0
        if not math.isfinite(worst) or worst > self.settings.max_grad_norm:
            raise CandidateRejected(
                f"stability: gradient norm {worst:.3g} at step {len(norms)}, above "
                f"evonorm.max_grad_norm={self.settings.max_grad_norm:g}",
                protocol="stability",
            )

    def _train(self, model: nn.Module, trial: TrialSession, *, screened: bool) -> list[float]:
        """Train one host; the first reports its curve (and is the quality test's)."""
        settings = self.settings

        def on_epoch(report: EpochReport) -> None:
            if not screened:
                trial.show(report.epoch, report.epochs, report.val_accuracy)
                return
            trial.report(report.epoch, report.epochs, report.val_accuracy)
            if (
                settings.screen
                and report.epoch == settings.quality_epochs
                and report.val_accuracy < settings.min_accuracy
            ):
                raise CandidateRejected(
                    f"quality: accuracy {report.val_accuracy:.3f} after {report.epoch} "
                    f"epoch(s), below evonorm.min_accuracy={settings.min_accuracy:g}",
                    protocol="quality",
                )

        try:
            return train_standalone(
                model,
                self.context.data,
                settings.training(),
                epochs=self.context.epochs,
                device=self.context.device,
                seed=trial.seed,
                on_epoch=on_epoch,
                on_step=trial.step,
            )
        except TrainingDiverged as error:
            raise CandidateRejected(f"non-finite: {error}", protocol="non-finite") from None
