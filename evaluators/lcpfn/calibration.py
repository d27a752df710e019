"""Recalibrating an LC-PFN's predictive spread on curves it was not trained on.

Fine-tuned on real curves, the network's 90% intervals came out too narrow after a few
epochs and too wide near the end of a run (out-of-fold coverage 0.80-0.87 at 25-55% of
a run, 0.94-0.96 after 70%). Following the recalibration of regression models by
Kuleshov, Fenner and Ermon, "Accurate Uncertainties for Deep Learning Using Calibrated
Regression", ICML 2018, the predictive CDF ``F`` is composed with a map fitted on curves
the network did not see: here the one-parameter map ``R(p) = Phi(k * Phi^-1(p))`` per
observed share ``r`` of the run (observed epochs / predicted epoch), a temperature on the
probit of the CDF. ``k > 1`` narrows, ``k < 1`` widens, and ``R(1/2) = 1/2`` keeps the
median, so the ranking of curves by their predicted median does not move. ``log k`` is
linear between a few knots in ``r``, fitted by maximum likelihood.

Applied to a bar distribution the map gives a bar distribution again: each bucket's
new mass is ``R(F(right edge)) - R(F(left edge))``, so means, quantiles and
probabilities of calibrated logits need nothing new.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np
import torch
import torch.nn.functional as F

from nas.core.errors import ConfigError, NasError
from nas.core.validation import check_number

# Where log k may bend, as shares of the run observed; five knots fit the out-of-fold
# curves as well as one per epoch of 20 did, with a quarter of the parameters.
DEFAULT_KNOTS = (0.05, 0.25, 0.5, 0.75, 0.95)
# A stretch beyond 10x either way is no calibration but a broken network or card.
MAX_LOG_STRETCH = math.log(10.0)


@dataclass(frozen=True)
class SpreadCalibration:
    """``k(r) = exp(log_stretch interpolated at r over shares)``, flat outside the knots.

    Attributes:
        shares: Knots in (0, 1], increasing: observed epochs / predicted epoch.
        log_stretch: ``log k`` at each knot, within +-log(10); 0 everywhere is the identity.
    """

    shares: tuple[float, ...]
    log_stretch: tuple[float, ...]

    def __post_init__(self) -> None:
        if not self.shares or len(self.shares) != len(self.log_stretch):
            raise ConfigError(
                "A spread calibration needs as many log_stretch values as shares, and at "
                f"least one; got {len(self.shares)} shares and {len(self.log_stretch)} values."
            )
        for index, (share, value) in enumerate(zip(self.shares, self.log_stretch, strict=True)):
            check_number(f"calibration.shares[{index}]", share, low=0.0, low_open=True, high=1.0)
            bound = MAX_LOG_STRETCH
            check_number(f"calibration.log_stretch[{index}]", value, low=-bound, high=bound)
        if any(a >= b for a, b in zip(self.shares, self.shares[1:], strict=False)):
            raise ConfigError(f"Calibration shares must increase, but got {list(self.shares)}.")

    def stretch(self, share: torch.Tensor) -> torch.Tensor:
        """``k`` at each observed share (any shape), in float64."""
        knots = torch.tensor(self.shares, dtype=torch.float64, device=share.device)
        values = torch.tensor(self.log_stretch, dtype=torch.float64, device=share.device)
        return torch.exp(_interpolate(share.to(torch.float64), knots, values))

    def apply(self, logits: torch.Tensor, share: torch.Tensor) -> torch.Tensor:
        """Calibrated logits (log bucket masses) of ``logits`` (..., K) at ``share`` (...)."""
        return stretch_logits(logits, self.stretch(share))

    def as_card(self) -> dict[str, list[float]]:
        return {"shares": list(self.shares), "log_stretch": list(self.log_stretch)}

    @classmethod
    def from_card(cls, raw: object, where: str) -> SpreadCalibration:
        """The calibration stored in a card, checked as untrusted input."""
        if not isinstance(raw, dict):
            raise ConfigError(f"{where}: 'calibration' must be an object; rewrite the card.")
        lists = {key: raw.get(key) for key in ("shares", "log_stretch")}
        for key, value in lists.items():
            if not isinstance(value, list):
                raise ConfigError(f"{where}: calibration.{key} must be a list of numbers.")
        try:
            return cls(tuple(lists["shares"]), tuple(lists["log_stretch"]))  # type: ignore[arg-type]
        except ConfigError as error:
            raise ConfigError(f"{where}: {error}") from None


def stretch_logits(logits: torch.Tensor, stretch: torch.Tensor) -> torch.Tensor:
    """Log bucket masses after ``R(p) = Phi(k Phi^-1(p))`` with ``k = stretch`` (...)."""
    below, above = _masses_beside_borders(torch.softmax(logits.to(torch.float64), dim=-1))
    k = stretch.to(below.device, torch.float64).unsqueeze(-1)
    return _masses(*_mapped_edges(below, above, k)).log().to(logits.dtype)


def fit_spread_calibration(
    logits: torch.Tensor,
    finals: torch.Tensor,
    shares: torch.Tensor,
    borders: torch.Tensor,
    knots: Sequence[float] = DEFAULT_KNOTS,
) -> SpreadCalibration:
    """The calibration that maximises the log-likelihood of ``finals``.

    Args:
        logits: Uncalibrated predictions of curves the network was not trained on, (n, K).
        finals: The values they predict, (n,).
        shares: Observed share of the run of each prediction, (n,).
        borders: The network's bucket borders, (K + 1,).
        knots: Where ``log k`` may bend.

    Raises:
        NasError: The optimiser did not converge (e.g. a value that is not finite).
    """
    from scipy.optimize import minimize

    SpreadCalibration(tuple(knots), (0.0,) * len(knots))  # checks the knots
    if not logits.shape[0] == finals.shape[0] == shares.shape[0] > 0:
        raise ValueError("logits, finals and shares need one row per prediction, and some.")
    f64 = torch.float64  # on the CPU, whatever device the predictions were made on
    logits, finals, shares, borders = (t.to("cpu", f64) for t in (logits, finals, shares, borders))
    index = (torch.searchsorted(borders, finals, right=True) - 1).clamp(0, borders.numel() - 2)
    below, above = _masses_beside_borders(torch.softmax(logits, dim=-1))  # (n, K + 1) each
    # Only the bucket of each final value enters its likelihood: the mass R gives it.
    edges = torch.stack([index, index + 1], dim=-1)  # (n, 2)
    edge_below, edge_above = below.gather(-1, edges), above.gather(-1, edges)
    log_width = (borders[index + 1] - borders[index]).log()
    knot_tensor = torch.tensor(tuple(knots), dtype=f64)

    def loss_and_grad(theta: np.ndarray) -> tuple[float, np.ndarray]:
        values = torch.tensor(theta, dtype=f64, requires_grad=True)
        k = torch.exp(_interpolate(shares, knot_tensor, values)).unsqueeze(-1)
        mass = _masses(*_mapped_edges(edge_below, edge_above, k))[..., 0]
        loss = -(mass.log() - log_width).mean()
        loss.backward()
        assert values.grad is not None
        return float(loss.detach()), values.grad.numpy()

    bound = MAX_LOG_STRETCH
    result = minimize(
        loss_and_grad,
        np.zeros(len(knots)),
        jac=True,
        method="L-BFGS-B",
        bounds=[(-bound, bound)] * len(knots),
    )
    if not result.success:
        raise NasError(f"The spread calibration did not converge: {result.message}.")
    return SpreadCalibration(tuple(float(s) for s in knots), tuple(float(v) for v in result.x))


def _masses_beside_borders(probs: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """Mass below and above each of the K + 1 borders of bucket masses ``probs`` (..., K),
    each summed from its own end so that neither is 1 minus the other."""
    below = F.pad(probs.cumsum(dim=-1), (1, 0))
    above = F.pad(probs.flip(-1).cumsum(dim=-1).flip(-1), (0, 1))
    return below, above


def _mapped_edges(
    below: torch.Tensor, above: torch.Tensor, k: torch.Tensor
) -> tuple[torch.Tensor, torch.Tensor]:
    """``(R(F), 1 - R(F))`` at edges with mass ``below`` and ``above`` them.

    The probit comes from the smaller of the two masses, so that rounding of a CDF near
    1 does not invent a tail; edges with no mass on one side map exactly to 0 or 1.
    """
    lower_half = below <= above
    smaller = torch.minimum(below, above)  # the tail beyond the edge on its near side
    inside = smaller > 0
    # A finite probit everywhere (an infinite one has a NaN gradient); edges with no mass
    # beyond them keep none.
    z = torch.special.ndtri(torch.where(inside, smaller, 0.5))
    tail = torch.where(inside, torch.special.ndtr(k * z), 0.0)
    return torch.where(lower_half, tail, 1.0 - tail), torch.where(lower_half, 1.0 - tail, tail)


def _masses(cdf: torch.Tensor, survival: torch.Tensor) -> torch.Tensor:
    """Masses between consecutive mapped edges, each from the side that keeps it exact."""
    from_cdf = cdf[..., 1:] - cdf[..., :-1]
    from_survival = survival[..., :-1] - survival[..., 1:]
    mass = torch.where(cdf[..., 1:] <= 0.5, from_cdf, from_survival)
    return mass.clamp_min(torch.finfo(mass.dtype).tiny)


def _interpolate(x: torch.Tensor, knots: torch.Tensor, values: torch.Tensor) -> torch.Tensor:
    """Piecewise-linear ``values`` over ``knots`` at ``x``, constant beyond the ends."""
    if knots.numel() == 1:
        return values[0].expand_as(x)
    x = x.clamp(knots[0], knots[-1])
    left = (torch.searchsorted(knots, x.contiguous(), right=True) - 1).clamp(0, knots.numel() - 2)
    weight = (x - knots[left]) / (knots[left + 1] - knots[left])
    return values[left] * (1.0 - weight) + values[left + 1] * weight
