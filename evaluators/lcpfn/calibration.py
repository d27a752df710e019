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
from typing import Any

import numpy as np
import torch
import torch.nn.functional as F

from nas.core.errors import ConfigError

# Where log k may bend, as shares of the run observed; five knots fit the out-of-fold
# curves as well as one per epoch of 20 did, with a quarter of the parameters.
DEFAULT_KNOTS = (0.05, 0.25, 0.5, 0.75, 0.95)
# A stretch beyond 10x either way is no calibration but a broken network or card.
_MAX_LOG_STRETCH = math.log(10.0)
# CDF values are kept this far from 0 and 1 so that their probit stays finite.
_EDGE = 1e-12


@dataclass(frozen=True)
class SpreadCalibration:
    """``k(r) = exp(log_stretch interpolated at r over shares)``, flat outside the knots.

    Attributes:
        shares: Knots in (0, 1], increasing: observed epochs / predicted epoch.
        log_stretch: ``log k`` at each knot; 0 everywhere is the identity.
    """

    shares: tuple[float, ...]
    log_stretch: tuple[float, ...]

    def __post_init__(self) -> None:
        if not self.shares or len(self.shares) != len(self.log_stretch):
            raise ConfigError(
                "A spread calibration needs as many log_stretch values as shares, and at "
                f"least one; got {len(self.shares)} shares and {len(self.log_stretch)} values."
            )
        if not all(_is_number(s) and 0.0 < s <= 1.0 for s in self.shares) or any(
            a >= b for a, b in zip(self.shares, self.shares[1:], strict=False)
        ):
            raise ConfigError(
                f"Calibration shares must increase within (0, 1], but got {list(self.shares)}."
            )
        if not all(_is_number(v) and abs(v) <= _MAX_LOG_STRETCH for v in self.log_stretch):
            raise ConfigError(
                f"Calibration log_stretch values must be numbers within +-log(10), but got "
                f"{list(self.log_stretch)}."
            )

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
            if not isinstance(value, list) or not all(_is_number(v) for v in value):
                raise ConfigError(f"{where}: calibration.{key} must be a list of numbers.")
        try:
            return cls(tuple(lists["shares"]), tuple(lists["log_stretch"]))  # type: ignore[arg-type]
        except ConfigError as error:
            raise ConfigError(f"{where}: {error}") from None


def stretch_logits(logits: torch.Tensor, stretch: torch.Tensor) -> torch.Tensor:
    """Log bucket masses after ``R(p) = Phi(k Phi^-1(p))`` with ``k = stretch`` (...)."""
    cdf = torch.softmax(logits.to(torch.float64), dim=-1).cumsum(dim=-1)[..., :-1]
    probit = torch.special.ndtri(cdf.clamp(_EDGE, 1.0 - _EDGE))
    mapped = torch.special.ndtr(probit * stretch.to(probit.device).unsqueeze(-1))
    edges = F.pad(F.pad(mapped, (1, 0), value=0.0), (0, 1), value=1.0)
    masses = torch.diff(edges, dim=-1).clamp_min(torch.finfo(torch.float64).tiny)
    return masses.log().to(logits.dtype)


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
    """
    from scipy.optimize import minimize

    if not logits.shape[0] == finals.shape[0] == shares.shape[0] > 0:
        raise ValueError("logits, finals and shares need one row per prediction, and some.")
    borders = borders.to(torch.float64)
    index = (torch.searchsorted(borders, finals.to(torch.float64), right=True) - 1).clamp(
        0, borders.numel() - 2
    )
    cdf = torch.softmax(logits.to(torch.float64), dim=-1).cumsum(dim=-1)
    upper = cdf.gather(-1, index[:, None])[:, 0]
    lower = torch.where(index > 0, cdf.gather(-1, (index - 1).clamp_min(0)[:, None])[:, 0], 0.0)
    # Only the bucket of each final value enters its likelihood: the mass R gives it.
    low_z, high_z = (torch.special.ndtri(c.clamp(_EDGE, 1.0 - _EDGE)) for c in (lower, upper))
    log_width = (borders[index + 1] - borders[index]).log()
    knot_tensor = torch.tensor(tuple(knots), dtype=torch.float64)
    share64 = shares.to(torch.float64)

    def loss_and_grad(theta: np.ndarray) -> tuple[float, np.ndarray]:
        values = torch.tensor(theta, dtype=torch.float64, requires_grad=True)
        k = torch.exp(_interpolate(share64, knot_tensor, values))
        mass = torch.special.ndtr(high_z * k) - torch.special.ndtr(low_z * k)
        mass = mass.clamp_min(torch.finfo(torch.float64).tiny)
        loss = -(mass.log() - log_width).mean()
        loss.backward()
        assert values.grad is not None
        return float(loss.detach()), values.grad.numpy()

    bound = _MAX_LOG_STRETCH
    result = minimize(
        loss_and_grad,
        np.zeros(len(knots)),
        jac=True,
        method="L-BFGS-B",
        bounds=[(-bound, bound)] * len(knots),
    )
    return SpreadCalibration(tuple(float(s) for s in knots), tuple(float(v) for v in result.x))


def _interpolate(x: torch.Tensor, knots: torch.Tensor, values: torch.Tensor) -> torch.Tensor:
    """Piecewise-linear ``values`` over ``knots`` at ``x``, constant beyond the ends."""
    if knots.numel() == 1:
        return values[0].expand_as(x)
    x = x.clamp(knots[0], knots[-1])
    left = (torch.searchsorted(knots, x.contiguous(), right=True) - 1).clamp(0, knots.numel() - 2)
    weight = (x - knots[left]) / (knots[left + 1] - knots[left])
    return values[left] * (1.0 - weight) + values[left + 1] * weight


def _is_number(value: Any) -> bool:
    return isinstance(value, (int, float)) and not isinstance(value, bool) and math.isfinite(value)
