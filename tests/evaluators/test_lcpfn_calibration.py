"""Spread calibration: keeps the median, narrows or widens as fitted, recovers a known
miscalibration, is applied per observed share in predictions, and refuses bad values."""

from __future__ import annotations

import math

import pytest
import torch

from evaluators.lcpfn import LCPFN, LCPFNConfig
from evaluators.lcpfn.bar_distribution import BarDistribution
from evaluators.lcpfn.calibration import SpreadCalibration, fit_spread_calibration, stretch_logits
from nas.core.errors import ConfigError

BORDERS = torch.linspace(0.0, 1.0, 401)
DIST = BarDistribution(BORDERS)


def _normal_logits(means: torch.Tensor, sigma: float) -> torch.Tensor:
    """Bar logits of normal densities with ``sigma`` around each mean, (n, 400)."""
    centers = (BORDERS[1:] + BORDERS[:-1]) / 2
    return -0.5 * ((centers[None, :] - means[:, None]) / sigma) ** 2


def _coverage(logits: torch.Tensor, finals: torch.Tensor) -> float:
    low, high = DIST.quantile(logits, 0.05), DIST.quantile(logits, 0.95)
    return float(((finals >= low) & (finals <= high)).float().mean())


def test_a_stretch_of_one_changes_nothing() -> None:
    logits = torch.randn(5, 400)
    calibrated = stretch_logits(logits, torch.ones(5))
    assert torch.allclose(torch.softmax(calibrated, -1), torch.softmax(logits, -1), atol=1e-6)


def test_a_stretch_keeps_the_median_and_scales_the_interval() -> None:
    logits = _normal_logits(torch.tensor([0.3, 0.6]), 0.05)
    width = DIST.quantile(logits, 0.95) - DIST.quantile(logits, 0.05)
    for k in (0.5, 2.0):
        calibrated = stretch_logits(logits, torch.full((2,), k))
        assert torch.allclose(DIST.quantile(calibrated, 0.5), DIST.quantile(logits, 0.5), atol=1e-3)
        new_width = DIST.quantile(calibrated, 0.95) - DIST.quantile(calibrated, 0.05)
        # For a normal CDF the probit stretch divides the standard deviation by k.
        assert torch.allclose(new_width, width / k, rtol=0.02)


def test_fitting_recovers_a_known_overdispersion_per_share() -> None:
    generator = torch.Generator().manual_seed(0)
    n = 4000
    means = 0.3 + 0.4 * torch.rand(n, generator=generator)
    shares = torch.where(torch.arange(n) % 2 == 0, 0.1, 0.9).to(torch.float64)
    # Early predictions are twice too narrow, late ones twice too wide.
    true_sigma = torch.where(shares < 0.5, 0.08, 0.02)
    finals = means + true_sigma * torch.randn(n, generator=generator)
    logits = _normal_logits(means, 0.04)
    assert _coverage(logits[shares < 0.5], finals[shares < 0.5]) < 0.7
    assert _coverage(logits[shares > 0.5], finals[shares > 0.5]) > 0.99

    fitted = fit_spread_calibration(logits, finals, shares, BORDERS, knots=(0.1, 0.9))
    assert [math.exp(v) for v in fitted.log_stretch] == pytest.approx([0.5, 2.0], rel=0.08)
    calibrated = fitted.apply(logits, shares)
    for part in (shares < 0.5, shares > 0.5):
        assert 0.87 <= _coverage(calibrated[part], finals[part]) <= 0.93


def test_a_strong_widening_widens_the_normal_without_piling_mass_at_the_ends() -> None:
    # Clamping a CDF that rounds to 0 or 1 used to pile mass into the end buckets.
    logits = _normal_logits(torch.tensor([0.6]), 0.01)
    width = DIST.quantile(logits, 0.95) - DIST.quantile(logits, 0.05)
    for k in (0.1, 0.3):
        calibrated = stretch_logits(logits, torch.tensor([k]))
        probs = torch.softmax(calibrated, -1)[0]
        assert float(probs[0]) < 1e-8 and float(probs[-1]) < 1e-8
        assert float(DIST.mean(calibrated)) == pytest.approx(0.6, abs=1e-4)
        new_width = DIST.quantile(calibrated, 0.95) - DIST.quantile(calibrated, 0.05)
        assert float(new_width) == pytest.approx(float(width) / k, rel=0.03)


def test_the_stretch_is_linear_between_knots_and_flat_beyond() -> None:
    calibration = SpreadCalibration((0.25, 0.75), (0.0, math.log(3.0)))
    stretch = calibration.stretch(torch.tensor([0.1, 0.25, 0.5, 0.75, 1.0]))
    expected = [1.0, 1.0, math.sqrt(3.0), 3.0, 3.0]
    assert stretch.tolist() == pytest.approx(expected)


def test_predictions_are_calibrated_by_each_curve_s_observed_share() -> None:
    torch.manual_seed(0)
    model = LCPFN(
        LCPFNConfig(emsize=16, layers=1, heads=2, hidden=16, buckets=50, length=20)
    ).eval()
    curves = [torch.tensor([0.2, 0.5]), torch.tensor([0.2, 0.5, 0.6, 0.7, 0.75, 0.8, 0.82, 0.84])]
    raw = model.predict(curves, [10])
    model.calibration = SpreadCalibration((0.2, 0.8), (0.0, math.log(2.0)))
    calibrated = model.predict(curves, [10])
    # 2 of 10 epochs observed: k = 1; 8 of 10: k = 2.
    assert torch.allclose(calibrated[0], torch.log_softmax(raw[0], -1), atol=1e-5)
    expected = stretch_logits(raw[1], torch.tensor([2.0]))
    assert torch.allclose(calibrated[1], expected, atol=1e-5)
    # Queries per curve, shape (B, Q): 2 of 4 epochs observed, 2 of 10, 8 of 16, 8 of 10.
    per_curve = model.predict(curves, torch.tensor([[4, 10], [16, 10]]))
    model.calibration = None
    raw = model.predict(curves, torch.tensor([[4, 10], [16, 10]]))
    k = model_stretch = SpreadCalibration((0.2, 0.8), (0.0, math.log(2.0))).stretch(
        torch.tensor([[0.5, 0.2], [0.5, 0.8]])
    )
    assert torch.allclose(per_curve, stretch_logits(raw, k), atol=1e-5)
    assert model_stretch[:, 1].tolist() == pytest.approx([1.0, 2.0])


@pytest.mark.parametrize(
    ("shares", "values", "message"),
    [
        ((), (), "at least one"),
        ((0.1, 0.5), (0.0,), "as many log_stretch values as shares"),
        ((0.5, 0.5), (0.0, 0.0), "shares must increase"),
        ((0.0, 0.5), (0.0, 0.0), r"calibration.shares\[0\] must be a number > 0 and <= 1"),
        ((0.5,), (float("nan"),), r"calibration.log_stretch\[0\] must be a number"),
        ((0.5,), (3.0,), r"calibration.log_stretch\[0\] must be a number >= -2.30259"),
        ((0.5,), (10**400,), r"calibration.log_stretch\[0\] must be a number"),
        ((0.5,), ("eval",), r"calibration.log_stretch\[0\] must be a number"),
    ],
)
def test_bad_calibrations_are_refused(
    shares: tuple[float, ...], values: tuple[float, ...], message: str
) -> None:
    with pytest.raises(ConfigError, match=message):
        SpreadCalibration(shares, values)
