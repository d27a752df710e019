"""CurvePredictor: shapes, units, directions, batching and input checks."""

from __future__ import annotations

import math
from typing import Any

import numpy as np
import pytest
import torch

from evaluators.lcpfn import LCPFN, CurvePredictor, CurveScale, LCPFNConfig
from nas.core.errors import ConfigError

TINY = LCPFNConfig(emsize=32, layers=2, heads=2, hidden=64, buckets=50, length=20)
CURVES = [[0.2], [0.3, 0.4, 0.45], [0.1, 0.2, 0.3, 0.35, 0.4, 0.42, 0.44]]


@pytest.fixture(scope="module")
def model() -> LCPFN:
    torch.manual_seed(0)
    return LCPFN(TINY).eval()


@pytest.fixture
def predictor(model: LCPFN) -> CurvePredictor:
    return CurvePredictor(model)


def test_shapes_for_mixed_lengths(predictor: CurvePredictor) -> None:
    one = predictor.predict(CURVES, at_epoch=20)
    many = predictor.predict(CURVES, at_epoch=[10, 15, 20])

    assert one.logits.shape == (3, 1, TINY.buckets)
    assert one.mean().shape == one.quantile(0.5).shape == one.prob_better(0.5).shape == (3,)
    assert many.epochs == (10, 15, 20)
    assert many.mean().shape == many.quantile(0.9).shape == many.prob_greater(0.5).shape == (3, 3)
    torch.testing.assert_close(many.logits[:, 2], one.logits[:, 0], rtol=0, atol=1e-5)


def test_accuracy_mean_quantiles_and_probabilities(predictor: CurvePredictor) -> None:
    prediction = predictor.predict(CURVES, at_epoch=[8, 20])
    mean = prediction.mean()
    assert ((mean >= 0) & (mean <= 1)).all()
    levels = [0.0, 0.05, 0.25, 0.5, 0.75, 0.95, 1.0]
    quantiles = np.stack([prediction.quantile(q) for q in levels])  # (levels, B, Q)
    assert (np.diff(quantiles, axis=0) >= -1e-7).all()
    assert np.allclose(prediction.prob_better(0.0), 1.0, atol=1e-6)
    assert np.allclose(prediction.prob_better(1.0), 0.0, atol=1e-6)
    np.testing.assert_allclose(prediction.prob_better(0.4), prediction.prob_greater(0.4))


def test_loss_scale_round_trips_and_reverses_direction(model: LCPFN) -> None:
    scale = CurveScale.loss(upper=math.log(10))
    losses = np.array([0.0, 0.5, 1.0, 2.0, math.log(10)])
    unit = scale.to_unit(losses)
    assert (np.diff(unit) < 0).all() and unit[0] == 1.0 and unit[-1] == 0.0
    np.testing.assert_allclose(scale.from_unit(unit), losses, atol=1e-12)
    assert scale.to_unit(5.0) == 0.0  # above upper: clipped to worthless
    error = CurveScale.error()
    np.testing.assert_allclose(error.from_unit(error.to_unit([0.1, 0.7])), [0.1, 0.7])

    accuracy = CurvePredictor(model).predict([[0.5, 0.6]], at_epoch=20)
    losses_curve = [[scale.from_unit(0.5).item(), scale.from_unit(0.6).item()]]
    loss = CurvePredictor(model, scale=scale).predict(losses_curve, at_epoch=20)
    torch.testing.assert_close(loss.logits, accuracy.logits)
    np.testing.assert_allclose(loss.mean(), scale.from_unit(accuracy.mean()), atol=1e-6)
    # Lower is better: the low quantile of the loss is the high quantile of the accuracy.
    np.testing.assert_allclose(
        loss.quantile(0.1), scale.from_unit(accuracy.quantile(0.9)), atol=1e-6
    )
    assert loss.quantile(0.1) <= loss.quantile(0.9)
    threshold = scale.from_unit(0.55).item()
    np.testing.assert_allclose(loss.prob_better(threshold), accuracy.prob_better(0.55), atol=1e-6)
    np.testing.assert_allclose(
        loss.prob_greater(threshold), 1.0 - loss.prob_better(threshold), atol=1e-6
    )
    np.testing.assert_allclose(loss.prob_better(100.0), 1.0, atol=1e-6)  # above upper
    np.testing.assert_allclose(loss.prob_better(0.0), 0.0, atol=1e-6)


def test_batch_equals_one_by_one(predictor: CurvePredictor) -> None:
    batch = predictor.predict(CURVES, at_epoch=[12, 20])
    for index, curve in enumerate(CURVES):
        alone = predictor.predict([curve], at_epoch=[12, 20])
        torch.testing.assert_close(batch.logits[index], alone.logits[0], rtol=1e-5, atol=1e-5)
        np.testing.assert_allclose(batch.mean()[index], alone.mean()[0], atol=1e-6)


@pytest.mark.parametrize(
    ("curves", "at_epoch", "match"),
    [
        ([], 20, "non-empty"),
        ([[0.1], []], 20, "1 to 19"),
        ([[0.1] * 20], 20, "1 to 19"),
        ([[0.1, 0.2, 0.3]], 3, "after every curve"),
        ([[0.1]], 21, "at most"),
        ([[0.1]], [], "at least one"),
        ([[0.1]], 5.0, "integer"),
        ([[0.1] * 5], {"at_epoch": 5, "run_epochs": 5}, "1 to 4"),
        ([[0.1]], {"at_epoch": 6, "run_epochs": 5}, "at most the run's 5"),
        ([[0.1]], {"at_epoch": 5, "run_epochs": 21}, "run_epochs must be"),
        ([[0.1, float("nan")]], 20, "finite"),
        ([[0.1, 1.5]], 20, r"in \[0, 1\]"),
    ],
)
def test_bad_inputs_raise_config_error(
    predictor: CurvePredictor, curves: Any, at_epoch: Any, match: str
) -> None:
    keywords = at_epoch if isinstance(at_epoch, dict) else {"at_epoch": at_epoch}
    with pytest.raises(ConfigError, match=match):
        predictor.predict(curves, **keywords)


def test_a_shorter_run_is_stretched_over_the_whole_grid(model: LCPFN) -> None:
    # A run of 5 epochs: its epoch e sits where epoch 4e of a 20-epoch prior curve does,
    # and its last epoch is the grid's last.
    curve = [0.3, 0.5, 0.6]
    stretched = CurvePredictor(model).predict([curve], at_epoch=5, run_epochs=5)
    epochs = torch.tensor([[4.0, 8.0, 12.0, 20.0]])
    observed = torch.tensor([[True, True, True, False]])
    with torch.no_grad():
        direct = model(epochs, torch.tensor([[*curve, 0.0]]), observed)[:, -1:]
    torch.testing.assert_close(stretched.logits, direct)
    # A run as long as the network is not moved.
    whole = CurvePredictor(model).predict([curve], at_epoch=20, run_epochs=20).logits
    torch.testing.assert_close(whole, CurvePredictor(model).predict([curve], at_epoch=20).logits)


def test_bad_scales_and_levels(predictor: CurvePredictor) -> None:
    with pytest.raises(ConfigError, match="upper"):
        CurveScale(kind="loss")
    with pytest.raises(ConfigError, match="upper"):
        CurveScale(kind="accuracy", upper=1.0)
    with pytest.raises(ConfigError, match="kind"):
        CurveScale(kind="auc")  # type: ignore[arg-type]
    with pytest.raises(ConfigError, match="upper"):
        CurveScale.loss(upper=0.0)
    prediction = predictor.predict(CURVES, at_epoch=20)
    with pytest.raises(ConfigError, match="q must"):
        prediction.quantile(1.5)
    with pytest.raises(ConfigError, match="threshold"):
        prediction.prob_better(float("nan"))
    with pytest.raises(ConfigError, match=">= 0"):
        CurvePredictor(predictor.model, scale=CurveScale.loss(upper=2.0)).predict([[-0.1]], 20)


def test_length_sorted_chunks_keep_the_callers_order(model: LCPFN) -> None:
    # Lengths out of order, so sorting into chunks must be undone in the result.
    curves = [[0.1 * (i % 5) + 0.01 * j for j in range(1 + (7 * i) % 13)] for i in range(11)]
    whole = CurvePredictor(model, chunk_size=64).predict(curves, at_epoch=[15, 20])
    chunked = CurvePredictor(model, chunk_size=3).predict(curves, at_epoch=[15, 20])
    one_by_one = [CurvePredictor(model).predict([c], at_epoch=[15, 20]) for c in curves]

    torch.testing.assert_close(chunked.logits, whole.logits, rtol=0, atol=1e-5)
    for row, single in enumerate(one_by_one):
        torch.testing.assert_close(whole.logits[row], single.logits[0], rtol=0, atol=1e-5)


def test_chunk_size_must_be_positive(model: LCPFN) -> None:
    with pytest.raises(ConfigError, match="chunk_size"):
        CurvePredictor(model, chunk_size=0)
