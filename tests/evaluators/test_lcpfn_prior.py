"""LC-PFN prior and bar distribution: constraints, formulas, and distribution identities."""

from __future__ import annotations

import math

import numpy as np
import pytest
import torch

from evaluators.lcpfn import (
    BarDistribution,
    fit_borders,
    ilog2,
    janoschek,
    pow3,
    sample_curves,
)
from nas.core.errors import ConfigError


@pytest.fixture(scope="module")
def curves() -> tuple[np.ndarray, np.ndarray]:
    return sample_curves(2000, length=50, generator=np.random.default_rng(0))


def test_samples_have_the_right_shape_and_obey_the_rejection_rule(
    curves: tuple[np.ndarray, np.ndarray],
) -> None:
    noisy, clean = curves
    assert noisy.shape == clean.shape == (2000, 50)
    for y in (noisy, clean):
        assert np.isfinite(y).all()
        assert y.min() >= 0.0 and y.max() <= 1.0
    assert (clean[:, -1] > clean[:, 0]).all()
    # Noise is there, and small: the median sigma is e^-4.
    residual = np.abs(noisy - clean)
    assert residual.max() > 0
    assert 0.005 < float(np.median(residual)) < 0.05


@pytest.mark.parametrize("normalize_weights", [True, False])
def test_same_seed_reproduces_and_another_seed_differs(normalize_weights: bool) -> None:
    def draw(seed: int) -> tuple[np.ndarray, np.ndarray]:
        return sample_curves(
            300, generator=np.random.default_rng(seed), normalize_weights=normalize_weights
        )

    a, b, c = draw(1), draw(1), draw(2)
    np.testing.assert_array_equal(a[0], b[0])
    np.testing.assert_array_equal(a[1], b[1])
    assert not np.allclose(a[1], c[1])
    assert a[1].shape == (300, 100)


def test_more_curves_than_one_round_holds() -> None:
    noisy, clean = sample_curves(30_000, length=5, generator=np.random.default_rng(3))
    assert noisy.shape == (30_000, 5)
    assert (clean[:, -1] > clean[:, 0]).all()


@pytest.mark.parametrize(("n", "length"), [(0, 10), (5, 1), (2.5, 10)])
def test_bad_arguments_are_config_errors(n: float, length: int) -> None:
    with pytest.raises(ConfigError):
        sample_curves(n, length=length, generator=np.random.default_rng())  # type: ignore[arg-type]


def test_families_match_their_formulas() -> None:
    x = np.array([1.0, 4.0, 1e12])
    # pow3 at x = 1 is c - a; at x = 4 with alpha = 0.5 it is c - a/2; its limit is c.
    np.testing.assert_allclose(pow3(x, c=0.9, a=0.4, alpha=0.5), [0.5, 0.7, 0.9], atol=1e-6)
    # ilog2 at x = e - 1 is c - a.
    np.testing.assert_allclose(ilog2(np.array([math.e - 1]), c=0.8, a=0.3), [0.5])
    np.testing.assert_allclose(ilog2(np.array([3.0]), c=0.8, a=0.3), [0.8 - 0.3 / math.log(4)])
    # Janoschek at x = 1 with k = ln 2 is halfway from beta to a; its limit is a.
    y = janoschek(np.array([1.0, 4.0, 1e12]), a=0.9, beta=0.1, k=math.log(2), delta=0.5)
    np.testing.assert_allclose(y, [0.5, 0.9 - 0.8 * 0.25, 0.9], atol=1e-9)


def _uniform(k: int) -> BarDistribution:
    return BarDistribution(torch.linspace(0.0, 1.0, k + 1, dtype=torch.float64))


def test_uniform_logits_give_the_uniform_distribution() -> None:
    bar = _uniform(10)
    logits = torch.zeros(3, 10, dtype=torch.float64)
    torch.testing.assert_close(bar.mean(logits), torch.full((3,), 0.5, dtype=torch.float64))
    torch.testing.assert_close(
        bar.quantile(logits, 0.5), torch.full((3,), 0.5, dtype=torch.float64)
    )
    y = torch.tensor([0.0, 0.25, 1.0], dtype=torch.float64)
    torch.testing.assert_close(bar.cdf(logits, y), y)
    torch.testing.assert_close(bar.log_prob(logits, y), torch.zeros(3, dtype=torch.float64))


def _random_case(seed: int) -> tuple[BarDistribution, torch.Tensor]:
    gen = torch.Generator().manual_seed(seed)
    inner = torch.sort(torch.rand(19, generator=gen, dtype=torch.float64)).values
    borders = torch.cat(
        [torch.zeros(1, dtype=torch.float64), inner, torch.ones(1, dtype=torch.float64)]
    )
    logits = 3 * torch.randn(4, 20, generator=gen, dtype=torch.float64)
    return BarDistribution(borders), logits


def test_cdf_and_quantile_are_inverses() -> None:
    bar, logits = _random_case(0)
    for level in (0.01, 0.3, 0.5, 0.99):
        expected = torch.full((4,), level, dtype=torch.float64)
        torch.testing.assert_close(bar.cdf(logits, bar.quantile(logits, level)), expected)
    y = torch.tensor([0.05, 0.4, 0.6, 0.95], dtype=torch.float64)
    torch.testing.assert_close(bar.quantile(logits, bar.cdf(logits, y)), y)


def test_log_prob_integrates_to_one_and_matches_the_cdf() -> None:
    bar, logits = _random_case(1)
    n = 200_000
    grid = (torch.arange(n, dtype=torch.float64) + 0.5) / n  # midpoints of a fine grid
    density = bar.log_prob(logits.unsqueeze(1), grid.expand(4, n)).exp()
    torch.testing.assert_close(
        density.mean(dim=1), torch.ones(4, dtype=torch.float64), atol=2e-3, rtol=0
    )
    # The integral up to 0.5 is the cdf there.
    half = density[:, : n // 2].sum(dim=1) / n
    torch.testing.assert_close(
        half, bar.cdf(logits, torch.tensor(0.5, dtype=torch.float64)), atol=2e-3, rtol=0
    )
    assert torch.isinf(bar.log_prob(logits, torch.tensor(1.5, dtype=torch.float64))).all()


def test_prob_greater_is_one_minus_cdf() -> None:
    bar, logits = _random_case(2)
    t = torch.tensor([0.0, 0.2, 0.7, 1.0], dtype=torch.float64)
    torch.testing.assert_close(bar.prob_greater(logits, t), 1 - bar.cdf(logits, t))
    torch.testing.assert_close(
        bar.prob_greater(logits, t)[[0, 3]], torch.tensor([1.0, 0.0], dtype=torch.float64)
    )


def test_fitted_borders_give_equal_mass_per_bucket(curves: tuple[np.ndarray, np.ndarray]) -> None:
    values = torch.from_numpy(curves[0])
    borders = fit_borders(values, 50)
    assert borders.shape == (51,)
    assert borders[0] == 0.0 and borders[-1] == 1.0
    assert (borders[1:] > borders[:-1]).all()
    counts = torch.bincount(
        torch.bucketize(values.reshape(-1), borders[1:-1], right=True), minlength=50
    )
    share = counts.double() / values.numel()
    # Clipped noise piles values onto exactly 0 and 1; the buckets there absorb the ties.
    assert (share[1:-1] - 1 / 50).abs().max() < 0.005


def test_fit_borders_survives_ties_and_rejects_bad_input() -> None:
    borders = fit_borders(torch.zeros(1000), 10)
    assert (borders[1:] > borders[:-1]).all() and borders[0] == 0 and borders[-1] == 1
    with pytest.raises(ConfigError):
        fit_borders(torch.tensor([0.5, 1.5]), 4)
    with pytest.raises(ConfigError):
        BarDistribution(torch.tensor([0.0, 0.5, 0.5, 1.0]))
    with pytest.raises(ConfigError):
        _uniform(4).mean(torch.zeros(5))
