"""EvoNorm's evaluator: each rejection protocol refuses its candidate (with the protocol
named) before the full evaluation; a candidate that passes is scored on every host."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any, cast

import pytest
import torch

from evaluators.base import EvaluationContext
from evaluators.evonorm import EvoNormEvalSettings, EvoNormEvaluator
from nas.core.errors import CandidateRejected, ConfigError
from nas.data import load_dataset
from search_spaces.evonorm.graph import padded
from search_spaces.evonorm.space import EvoNormSpace

X, ZERO, GAMMA, BETA, V = range(5)
SPACE = EvoNormSpace(groups=8)
NAMED = SPACE.named_architectures()
# log of a BN: finite outputs, exploding gradients where the normalized value nears 0.
LOG_BN = padded(
    [
        ("batch_mean", (X,)),
        ("neg", (5,)),
        ("add", (X, 6)),
        ("batch_std", (X,)),
        ("div", (7, 8)),
        ("mul", (9, GAMMA)),
        ("add", (10, BETA)),
        ("log", (11,)),
    ],
    10,
)
EXPLODING = padded([("exp", (X,)), ("exp", (5,)), ("exp", (6,)), ("mul", (7, 6))], 10)


pytestmark = pytest.mark.usefixtures("one_torch_thread")


@dataclass
class Session:
    """A TrialSession that records what the evaluator tells it."""

    number: int = 0
    seed: int = 0
    reports: list[tuple[int, float]] = field(default_factory=list)
    records: dict[str, Any] = field(default_factory=dict)
    kept: list[torch.nn.Module] = field(default_factory=list)

    def report(self, epoch: int, epochs: int, accuracy: float) -> None:
        self.reports.append((epoch, accuracy))

    def show(self, epoch: int, epochs: int, accuracy: float) -> None:
        pass

    def step(self, step: int, steps: int) -> None:
        pass

    def record_costs(self, costs: Mapping[str, float]) -> None:
        self.records["costs"] = dict(costs)

    def record(self, name: str, value: Any) -> None:
        self.records[name] = value

    def keep_weights(self, model: torch.nn.Module) -> None:
        self.kept.append(model)


def evaluator(epochs: int = 1, **settings: Any) -> EvoNormEvaluator:
    data = load_dataset("digits")
    context = EvaluationContext(
        space=SPACE,
        seed=0,
        epochs=epochs,
        reporter=cast(Any, None),
        files=cast(Any, None),
        load_data=lambda: data,
        resolve_device=lambda: torch.device("cpu"),
        set_study_attr=lambda name, value: None,
    )
    return EvoNormEvaluator(EvoNormEvalSettings(**settings), context)


def rejection(arch: Any, **settings: Any) -> tuple[CandidateRejected, Session]:
    session = Session()
    with pytest.raises(CandidateRejected) as caught:
        evaluator(**settings).evaluate(arch, session)
    return caught.value, session


def test_non_finite_outputs_are_rejected_before_any_training() -> None:
    error, session = rejection(EXPLODING)
    assert error.protocol == "non-finite" and "NaN or infinite" in str(error)
    assert session.reports == []


def test_exploding_gradients_are_rejected_in_a_few_steps() -> None:
    error, session = rejection(LOG_BN)
    assert error.protocol == "stability"
    assert "above evonorm.max_grad_norm=100" in str(error)
    assert session.reports == []  # refused before the first epoch


def test_a_layer_that_learns_too_little_is_rejected_after_the_short_run() -> None:
    error, session = rejection(NAMED["bn-relu"], epochs=3, min_accuracy=0.999)
    assert error.protocol == "quality" and "after 1 epoch(s)" in str(error)
    assert len(session.reports) == 1  # one epoch of three, one host of two


def test_without_screening_the_unstable_layer_is_not_refused_for_stability() -> None:
    session = Session()
    try:
        evaluator(screen=False, hosts=["resnet"]).evaluate(LOG_BN, session)
    except CandidateRejected as error:
        assert error.protocol == "non-finite"  # it may still diverge while training
    else:
        assert len(session.reports) == 1


def test_a_layer_that_passes_is_scored_on_every_host() -> None:
    session = Session()
    metrics = evaluator().evaluate(NAMED["evonorm-s0"], session)
    assert set(metrics) == {"accuracy", "accuracy@resnet", "accuracy@mobilenet"}
    assert metrics["accuracy@resnet"] > 0.5 and metrics["accuracy@mobilenet"] > 0.3
    mean = (metrics["accuracy@resnet"] + metrics["accuracy@mobilenet"]) / 2
    assert metrics["accuracy"] == pytest.approx(mean)
    curves = session.records["host_curves"]
    assert curves["resnet"] == [metrics["accuracy@resnet"]]
    assert session.reports == [(1, metrics["accuracy@resnet"])]  # the first host's curve
    assert session.records["costs"]["params"] > 0
    assert len(session.kept) == 1  # the network `nas export` builds (model.host=resnet)


def test_bad_settings_name_the_key() -> None:
    with pytest.raises(ConfigError, match="hosts"):
        EvoNormEvalSettings(hosts=["resnet", "vgg"])
    with pytest.raises(ConfigError, match="min_accuracy"):
        EvoNormEvalSettings(min_accuracy=2.0)
