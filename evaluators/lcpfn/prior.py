"""The learning-curve prior of LC-PFN, sampled in batches.

Adriaensen, Rakotoarison, Müller and Hutter, "Efficient Bayesian Learning Curve
Extrapolation using Prior-Data Fitted Networks", NeurIPS 2023
(https://arxiv.org/abs/2310.20447). The prior follows the authors' public code
(github.com/automl/lcpfn, ``curves.py`` / ``domhan_prior.py``, the "peaked" priors),
re-implemented here so that a whole batch of curves is drawn with array operations:

* A clean curve over epochs ``x = 1..length`` is ``w1*pow3 + w2*ilog2 + w3*janoschek``,
  each family with its own parameters, the weights drawn U(0, 1).
* Curves that leave [0, 1] anywhere, contain NaN, or do not improve (last value <= first
  value) are rejected; this is exactly the authors' rule.
* Each kept curve gets i.i.d. Gaussian noise whose standard deviation ``sigma`` has
  ``log(sigma) ~ N(-4, 1)``, one ``sigma`` per curve (the authors' code draws the standard
  deviation this way; their comment notes the paper's text words it as a variance).

By default the mixture weights are the raw U(0, 1) draws, as in the authors' code
(``normalize_weights=True`` divides them by their sum instead). One deliberate
difference from the authors' code: noisy values are clipped to [0, 1] (the authors leave
them unclipped) so that every target lies inside the bar distribution's support.
"""

from __future__ import annotations

import math

import numpy as np

from nas.core.validation import check_number

# Candidates drawn per round at most: bounds the temporary arrays to a few hundred MB
# at length 100 while keeping each numpy call large enough to amortise its overhead.
_MAX_CANDIDATES = 1 << 16
# A conservative guess of the fraction of candidates kept, used only to size the first
# round; later rounds use the rate measured so far.
_INITIAL_ACCEPTANCE = 0.2


def pow3(x: np.ndarray, c: np.ndarray, a: np.ndarray, alpha: np.ndarray) -> np.ndarray:
    """Power law ``c - a * x**(-alpha)``; ``c`` is the asymptote."""
    return c - a * x ** (-alpha)


def ilog2(x: np.ndarray, c: np.ndarray, a: np.ndarray) -> np.ndarray:
    """Inverse logarithm ``c - a / log(x + 1)``; ``c`` is the asymptote."""
    return c - a / np.log(x + 1)


def janoschek(
    x: np.ndarray, a: np.ndarray, beta: np.ndarray, k: np.ndarray, delta: np.ndarray
) -> np.ndarray:
    """Janoschek growth ``a - (a - beta) * exp(-k * x**delta)``; ``a`` is the asymptote."""
    return a - (a - beta) * np.exp(-k * x**delta)


def _clean_candidates(
    m: int, length: int, generator: np.random.Generator, *, normalize_weights: bool
) -> np.ndarray:
    """Draw ``m`` clean candidate curves, shape (m, length), before rejection."""
    log_x = np.log(np.arange(1, length + 1, dtype=np.float64))  # (L,)
    ilog_x = 1.0 / np.log(np.arange(2, length + 2, dtype=np.float64))  # 1/log(x+1), (L,)

    def col(values: np.ndarray) -> np.ndarray:
        return values[:, None]  # (m, 1): one parameter per curve, broadcast over epochs

    weights = generator.uniform(0.0, 1.0, size=(m, 3))
    if normalize_weights:
        # Normalised weights keep the mixture a convex combination, so a mixture of
        # families that stay within [0, 1] stays within [0, 1] too.
        weights /= weights.sum(axis=1, keepdims=True)

    # pow3 ("peaked" prior): a ~ U(-0.6, 0.6) sets the gap to the asymptote (negative a
    # gives a decreasing component, which the mixture may still absorb); c ~ U(0, 1.25)
    # lets the asymptote overshoot 1 so that curves near 1 are not rare;
    # alpha ~ LogNormal(0, 2) covers both very slow and near-instant convergence.
    c3 = generator.uniform(0.0, 1.25, size=m)
    a3 = generator.uniform(-0.6, 0.6, size=m)
    alpha = generator.lognormal(0.0, 2.0, size=m)
    # ilog2: c ~ U(0, 1) is the asymptote, a ~ U(-0.5, 0.5) the gap to it.
    c2 = generator.uniform(0.0, 1.0, size=m)
    a2 = generator.uniform(-0.5, 0.5, size=m)
    # Janoschek: a ~ U(0, 1) the asymptote, beta ~ U(0, 2) the value at x = 0,
    # k ~ LogNormal(-2, 1) the rate, delta ~ LogNormal(0, 0.5) the shape (sigmoidal for
    # delta > 1).
    a_j = generator.uniform(0.0, 1.0, size=m)
    beta = generator.uniform(0.0, 2.0, size=m)
    k = generator.lognormal(-2.0, 1.0, size=m)
    delta = generator.lognormal(0.0, 0.5, size=m)

    # x**p is written exp(p * log x) so that each family costs one (m, L) exp.
    y = col(weights[:, 0]) * (col(c3) - col(a3) * np.exp(-col(alpha) * log_x))
    y += col(weights[:, 1]) * (col(c2) - col(a2) * ilog_x)
    y += col(weights[:, 2]) * (
        col(a_j) - col(a_j - beta) * np.exp(-col(k) * np.exp(col(delta) * log_x))
    )
    return y


def _valid(y: np.ndarray) -> np.ndarray:
    """The authors' rejection rule: inside [0, 1], no NaN, last value above the first."""
    # NaN compares False everywhere, so it fails the range test without its own check.
    in_range = ((y >= 0.0) & (y <= 1.0)).all(axis=1)
    return in_range & (y[:, -1] > y[:, 0])


def sample_curves(
    n: int,
    *,
    length: int = 100,
    generator: np.random.Generator,
    normalize_weights: bool = False,
) -> tuple[np.ndarray, np.ndarray]:
    """Draw ``n`` learning curves from the LC-PFN prior.

    Candidates are drawn in rounds, the invalid ones dropped, until ``n`` are kept; the
    result depends only on ``n``, ``length``, ``normalize_weights`` and the generator's
    state.

    Args:
        n: Number of curves.
        length: Epochs per curve; the curves are evaluated at ``x = 1..length``.
        generator: Source of all randomness.
        normalize_weights: Divide the three mixture weights by their sum; the default
            ``False`` is the unnormalised mixture of the authors' public code.

    Returns:
        ``(noisy, clean)``, both float32 of shape (n, length) with values in [0, 1].
        ``noisy`` is ``clean`` plus per-curve Gaussian noise, clipped to [0, 1].
    """
    check_number("n", n, integer=True, low=1)
    # Two epochs at least: the improvement test compares the first and the last.
    check_number("length", length, integer=True, low=2)

    clean = np.empty((n, length), dtype=np.float32)
    kept = drawn = 0
    while kept < n:
        rate = kept / drawn if kept else _INITIAL_ACCEPTANCE
        # 10% slack over the expected need, so the last round rarely falls short.
        m = min(_MAX_CANDIDATES, math.ceil(1.1 * (n - kept) / rate) + 16)
        y = _clean_candidates(m, length, generator, normalize_weights=normalize_weights)
        good = y[_valid(y)][: n - kept]
        clean[kept : kept + len(good)] = good
        kept += len(good)
        drawn += m

    # log(sigma) ~ N(-4, 1): the median sigma is e^-4 ~ 0.018, one sigma per curve.
    sigma = generator.lognormal(-4.0, 1.0, size=(n, 1)).astype(np.float32)
    noise = generator.standard_normal(size=(n, length), dtype=np.float32)
    # Clipping (not rejection) keeps the noise prior unchanged for curves far from the
    # edges; the bar distribution's support is [0, 1], so no target may leave it.
    noisy = np.clip(clean + sigma * noise, 0.0, 1.0)
    return noisy, clean
