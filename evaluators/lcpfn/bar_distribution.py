"""The Riemann ("bar") distribution that LC-PFN predicts for each future epoch.

Adriaensen et al., "Efficient Bayesian Learning Curve Extrapolation using Prior-Data
Fitted Networks", NeurIPS 2023, after Müller et al., "Transformers Can Do Bayesian
Inference", ICLR 2022. The support is cut into ``K`` buckets; the network outputs one
logit per bucket, and the density is uniform inside each bucket, so its value there is
the bucket's softmax mass divided by its width. Training minimises ``-log_prob``.
"""

from __future__ import annotations

import torch
from torch import nn

from nas.core.errors import ConfigError
from nas.core.validation import check_number


def fit_borders(values: torch.Tensor, buckets: int, *, uniform_share: float = 1e-3) -> torch.Tensor:
    """Borders on [0, 1] that give every bucket the same mass under ``values``.

    The interior borders are the empirical quantiles of ``values``. Values that repeat
    exactly (noisy curves clipped to 0 or 1) would make several quantiles coincide and
    leave buckets of zero width, hence infinite density; blending a ``uniform_share`` of
    equal-width borders in keeps every width at least ``uniform_share / buckets``.

    Args:
        values: Samples of curve values in [0, 1], any shape; a random subset of a large
            prior sample is enough, as the sort costs memory proportional to its size.
        buckets: Number of buckets ``K``.
        uniform_share: Weight of the equal-width borders in the blend, in (0, 1].

    Returns:
        Strictly increasing float32 borders of shape (K + 1,), the first exactly 0 and
        the last exactly 1.
    """
    check_number("buckets", buckets, integer=True, low=1)
    check_number("uniform_share", uniform_share, low=0.0, low_open=True, high=1.0)
    flat = values.detach().reshape(-1).to(torch.float64)
    if flat.numel() == 0 or not torch.isfinite(flat).all():
        raise ConfigError("values must be a non-empty tensor of finite numbers.")
    if flat.min() < 0 or flat.max() > 1:
        raise ConfigError(
            f"values must lie in [0, 1], but range over [{flat.min():g}, {flat.max():g}]."
        )
    # torch.quantile refuses inputs above 2**24 elements; a sort has no such limit.
    ordered = torch.sort(flat).values
    levels = torch.linspace(0.0, 1.0, buckets + 1, dtype=torch.float64)
    position = levels * (ordered.numel() - 1)
    low = position.floor().long()
    high = position.ceil().long()
    quantiles = ordered[low] + (position - low) * (ordered[high] - ordered[low])
    quantiles[0], quantiles[-1] = 0.0, 1.0
    borders = (1.0 - uniform_share) * quantiles + uniform_share * levels
    # The blend keeps 0 and 1 up to rounding; pin them exactly.
    borders[0], borders[-1] = 0.0, 1.0
    return borders.to(torch.float32)


class BarDistribution(nn.Module):
    """A piecewise-uniform distribution over buckets given by ``borders``.

    The borders are a buffer, so ``.to(device)`` moves them with the model. Every method
    takes ``logits`` of shape (..., K); values ``y`` / ``q`` broadcast against the leading
    shape (...), and the result has the broadcast shape.

    Args:
        borders: Strictly increasing bucket edges, shape (K + 1,).
    """

    borders: torch.Tensor

    def __init__(self, borders: torch.Tensor) -> None:
        super().__init__()
        if borders.dim() != 1 or borders.numel() < 2:
            raise ConfigError(
                f"borders must be 1-D with at least 2 edges, but got shape {tuple(borders.shape)}."
            )
        if not torch.isfinite(borders).all() or not (borders[1:] > borders[:-1]).all():
            raise ConfigError(
                "borders must be finite and strictly increasing; fit them with fit_borders()."
            )
        self.register_buffer("borders", borders.detach().clone())

    @property
    def num_buckets(self) -> int:
        """The number of buckets ``K``, i.e. the logits the network must output."""
        return self.borders.numel() - 1

    def _edges(self, like: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        borders = self.borders.to(dtype=like.dtype, device=like.device)
        return borders, borders[1:] - borders[:-1]

    def _check(self, logits: torch.Tensor) -> None:
        if logits.shape[-1] != self.num_buckets:
            raise ConfigError(
                f"logits must end in {self.num_buckets} buckets, but got shape "
                f"{tuple(logits.shape)}."
            )

    def _align(
        self, logits: torch.Tensor, y: float | torch.Tensor
    ) -> tuple[torch.Tensor, torch.Tensor]:
        # Broadcasting lets one curve's logits be scored at many values (a grid) or many
        # curves at one value (an incumbent) without the caller copying either.
        y = torch.as_tensor(y, dtype=logits.dtype, device=logits.device)
        shape = torch.broadcast_shapes(logits.shape[:-1], y.shape)
        return logits.expand(*shape, logits.shape[-1]), y.expand(shape)

    def _bucket(self, borders: torch.Tensor, y: torch.Tensor) -> torch.Tensor:
        # right=True puts a value on an interior border into the bucket above it; the
        # clamp gives the upper end of the support to the last bucket.
        index = torch.searchsorted(borders, y.contiguous(), right=True) - 1
        return index.clamp(0, self.num_buckets - 1)

    def log_prob(self, logits: torch.Tensor, y: float | torch.Tensor) -> torch.Tensor:
        """Log density at ``y``; ``-inf`` outside the borders. Training minimises its negative."""
        self._check(logits)
        borders, widths = self._edges(logits)
        logits, y = self._align(logits, y)
        index = self._bucket(borders, y)
        log_mass = torch.log_softmax(logits, dim=-1).gather(-1, index.unsqueeze(-1)).squeeze(-1)
        density = log_mass - widths[index].log()
        outside = (y < borders[0]) | (y > borders[-1])
        return density.masked_fill(outside, float("-inf"))

    def mean(self, logits: torch.Tensor) -> torch.Tensor:
        """Expected value: each bucket's mass times its midpoint."""
        self._check(logits)
        borders, _ = self._edges(logits)
        centers = (borders[1:] + borders[:-1]) / 2
        return torch.softmax(logits, dim=-1) @ centers

    def cdf(self, logits: torch.Tensor, y: float | torch.Tensor) -> torch.Tensor:
        """``P(Y <= y)``: 0 below the first border, 1 above the last."""
        self._check(logits)
        borders, widths = self._edges(logits)
        logits, y = self._align(logits, y)
        probs = torch.softmax(logits, dim=-1)
        index = self._bucket(borders, y)
        below = (probs.cumsum(dim=-1) - probs).gather(-1, index.unsqueeze(-1)).squeeze(-1)
        inside = ((y - borders[index]) / widths[index]).clamp(0.0, 1.0)
        mass = probs.gather(-1, index.unsqueeze(-1)).squeeze(-1)
        return (below + mass * inside).clamp(0.0, 1.0)

    def prob_greater(self, logits: torch.Tensor, threshold: float | torch.Tensor) -> torch.Tensor:
        """``P(Y > threshold)``, e.g. the chance a curve beats the incumbent."""
        return 1.0 - self.cdf(logits, threshold)

    def quantile(self, logits: torch.Tensor, q: float | torch.Tensor) -> torch.Tensor:
        """Inverse of :meth:`cdf`: the value below which a share ``q`` of the mass lies.

        Args:
            logits: Shape (..., K).
            q: Levels in [0, 1], a number or a tensor broadcastable with (...).
        """
        self._check(logits)
        borders, widths = self._edges(logits)
        logits, q = self._align(logits, q)
        if ((q < 0) | (q > 1)).any():
            raise ConfigError(f"q must lie in [0, 1], but got q={q.unique().tolist()!r}.")
        probs = torch.softmax(logits, dim=-1)
        cumulative = probs.cumsum(dim=-1)
        # The first bucket whose cumulative mass reaches q holds the quantile; rounding
        # can leave the total a hair below 1, hence the clamp.
        index = torch.searchsorted(cumulative, q.unsqueeze(-1).contiguous()).squeeze(-1)
        index = index.clamp(0, self.num_buckets - 1)
        mass = probs.gather(-1, index.unsqueeze(-1)).squeeze(-1)
        below = cumulative.gather(-1, index.unsqueeze(-1)).squeeze(-1) - mass
        inside = ((q - below) / mass.clamp_min(torch.finfo(mass.dtype).tiny)).clamp(0.0, 1.0)
        return borders[index] + widths[index] * inside
