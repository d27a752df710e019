"""Extrapolate partial learning curves with a trained LC-PFN, in the metric's own units.

Adriaensen et al., "Efficient Bayesian Learning Curve Extrapolation using Prior-Data
Fitted Networks", NeurIPS 2023. The prior's curves are accuracies-like values in [0, 1]
that increase; ``CurveScale`` maps a metric into that range and back, and
``CurvePredictor`` turns a batch of partial curves of any lengths into one padded
few forward passes whose ``Prediction`` answers means, quantiles and probabilities.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Literal

import numpy as np
import torch

from evaluators.lcpfn.bar_distribution import BarDistribution
from evaluators.lcpfn.model import LCPFN, run_grid_scale
from nas.core.errors import ConfigError
from nas.core.validation import check_number

ScaleKind = Literal["accuracy", "error", "loss"]
_KINDS = ("accuracy", "error", "loss")


@dataclass(frozen=True, kw_only=True)
class CurveScale:
    """A monotone map from a metric ``v`` to the prior's unit range ``u``, where higher is better.

    * ``accuracy``: ``u = v``; values in [0, 1], higher is better.
    * ``error``: ``u = 1 - v``; values in [0, 1] (e.g. an error rate), lower is better.
    * ``loss``: ``u = clip(1 - v / upper, 0, 1)``; a loss >= 0, lower is better, and
      ``upper`` is the loss that counts as worthless (u = 0), e.g. the loss of a
      uniform guess, ``log(num_classes)``. Inverse: ``v = upper * (1 - u)``. Losses
      above ``upper`` are clipped to u = 0, so choose ``upper`` at or above the worst
      loss a curve can start from.

    Every map is affine on its domain, so the mean transforms exactly; for ``error``
    and ``loss`` the order reverses, so a lower quantile level in metric units is an
    upper one in unit range (``Prediction`` handles that).

    Attributes:
        kind: ``"accuracy"``, ``"error"`` or ``"loss"``.
        upper: The loss mapped to 0; required for ``"loss"``, forbidden otherwise.
    """

    kind: ScaleKind = "accuracy"
    upper: float | None = None

    def __post_init__(self) -> None:
        if self.kind not in _KINDS:
            raise ConfigError(f"kind must be one of {_KINDS}, but got kind={self.kind!r}.")
        if self.kind == "loss":
            if self.upper is None:
                raise ConfigError(
                    "The loss scale needs upper, the loss that counts as worthless, e.g. "
                    "CurveScale.loss(upper=math.log(num_classes))."
                )
            check_number("upper", self.upper, low=0.0, low_open=True)
        elif self.upper is not None:
            raise ConfigError(f"upper applies to the loss scale only, not kind={self.kind!r}.")

    @classmethod
    def accuracy(cls) -> CurveScale:
        """Values in [0, 1], higher is better; the identity."""
        return cls(kind="accuracy")

    @classmethod
    def error(cls) -> CurveScale:
        """Values in [0, 1], lower is better; ``u = 1 - v``."""
        return cls(kind="error")

    @classmethod
    def loss(cls, upper: float) -> CurveScale:
        """Losses >= 0, lower is better; ``u = clip(1 - v / upper, 0, 1)``."""
        return cls(kind="loss", upper=upper)

    @property
    def higher_is_better(self) -> bool:
        """Whether a larger metric value is a better one."""
        return self.kind == "accuracy"

    def to_unit(self, values: np.ndarray | Sequence[float] | float) -> np.ndarray:
        """Metric values -> unit range, clipped to [0, 1]."""
        v = np.asarray(values, dtype=np.float64)
        if self.kind == "accuracy":
            u = v
        elif self.kind == "error":
            u = 1.0 - v
        else:
            assert self.upper is not None  # checked in __post_init__
            u = 1.0 - v / self.upper
        return np.clip(u, 0.0, 1.0)

    def from_unit(self, values: np.ndarray | Sequence[float] | float) -> np.ndarray:
        """Unit range -> metric values; the inverse of :meth:`to_unit` on its domain."""
        u = np.asarray(values, dtype=np.float64)
        if self.kind == "accuracy":
            return u
        if self.kind == "error":
            return 1.0 - u
        assert self.upper is not None
        return self.upper * (1.0 - u)

    def check(self, values: np.ndarray, where: str) -> None:
        """Raise ``ConfigError`` unless ``values`` lie in the scale's domain."""
        if not np.isfinite(values).all():
            raise ConfigError(f"{where} must hold finite numbers, but got {values.tolist()!r}.")
        low, high = (0.0, None) if self.kind == "loss" else (0.0, 1.0)
        if values.min() < low or (high is not None and values.max() > high):
            bound = ">= 0" if high is None else "in [0, 1]"
            raise ConfigError(
                f"{where} must be {bound} for the {self.kind} scale, but range over "
                f"[{values.min():g}, {values.max():g}]."
            )


@dataclass(frozen=True)
class Prediction:
    """The predicted distribution of each curve's value at the queried epochs.

    Results have shape (B,) for a single ``at_epoch`` and (B, Q) for a sequence of
    them, and are numpy float64 arrays in the metric's own units.

    Attributes:
        logits: Network output, shape (B, Q, buckets), over the unit range (log bucket
            masses when the network has a spread calibration).
        distribution: The bar distribution that reads ``logits``.
        scale: The metric's map to and from the unit range.
        epochs: The queried epochs, shape (Q,), counted from 1.
        single: True when one epoch was queried as an int (results drop the Q axis).
    """

    logits: torch.Tensor
    distribution: BarDistribution = field(repr=False)
    scale: CurveScale
    epochs: tuple[int, ...]
    single: bool = False

    def _out(self, unit: torch.Tensor, *, to_metric: bool = True) -> np.ndarray:
        array = unit.detach().cpu().to(torch.float64).numpy()
        if to_metric:
            array = self.scale.from_unit(array)
        return array[:, 0] if self.single else array

    def mean(self) -> np.ndarray:
        """Expected value."""
        return self._out(self.distribution.mean(self.logits))

    def quantile(self, q: float) -> np.ndarray:
        """The value below which a share ``q`` of the mass lies, in metric units.

        Increasing in ``q`` for every scale: for ``error`` and ``loss`` the map reverses
        order, so the metric's ``q``-quantile is the unit range's ``(1 - q)``-quantile.
        """
        check_number("q", q, low=0.0, high=1.0)
        level = q if self.scale.higher_is_better else 1.0 - q
        return self._out(self.distribution.quantile(self.logits, float(level)))

    def prob_greater(self, threshold: float) -> np.ndarray:
        """``P(V > threshold)`` for the metric value ``V``, whatever its direction."""
        check_number("threshold", threshold, low=-math.inf)
        unit = float(self.scale.to_unit(threshold))
        cdf = self.distribution.cdf(self.logits, unit)  # P(U <= u)
        # For a reversing scale V > t exactly when U < u; the density has no atoms.
        greater = 1.0 - cdf if self.scale.higher_is_better else cdf
        return self._out(greater, to_metric=False)

    def prob_better(self, threshold: float) -> np.ndarray:
        """Chance of beating ``threshold``: ``P(V > t)`` for accuracy, ``P(V < t)`` for
        error and loss. This is the quantity for early stopping against an incumbent.

        A threshold outside the scale's domain is clipped to it first (e.g. a loss
        above ``upper`` is beaten with probability 1).
        """
        check_number("threshold", threshold, low=-math.inf)
        unit = float(self.scale.to_unit(threshold))
        # Better in the metric is higher in the unit range for every scale.
        return self._out(1.0 - self.distribution.cdf(self.logits, unit), to_metric=False)


# Curves per forward pass: smaller chunks pad less, larger ones make fewer passes; 32-48
# was fastest for 1,000 curves of lengths 1-99 on one CPU thread (about 10% under 128).
DEFAULT_CHUNK_SIZE = 48


class CurvePredictor:
    """Predicts later epochs of partial curves in a few padded forward passes.

    Args:
        model: A trained LC-PFN; moved to ``device`` and put in eval mode.
        scale: How the curves' metric maps to the prior's [0, 1].
        device: Where to run the network.
        chunk_size: Curves per forward pass; a batch is sorted by length and cut into
            chunks of this many, each padded to its own longest curve.
    """

    def __init__(
        self,
        model: LCPFN,
        *,
        scale: CurveScale | None = None,
        device: torch.device | str = "cpu",
        chunk_size: int = DEFAULT_CHUNK_SIZE,
    ) -> None:
        check_number("chunk_size", chunk_size, integer=True, low=1)
        self.chunk_size = chunk_size
        self.device = torch.device(device)
        self.model = model.to(self.device).eval()
        self.scale = CurveScale.accuracy() if scale is None else scale

    def predict(
        self,
        curves: Sequence[Sequence[float]],
        at_epoch: int | Sequence[int],
        *,
        run_epochs: int | None = None,
    ) -> Prediction:
        """The distribution of each curve's value at ``at_epoch``.

        Args:
            curves: Observed values of epochs 1, 2, ... per curve, in metric units;
                each needs at least one value and fewer than ``run_epochs``.
            at_epoch: Epoch (counted from 1) or epochs to predict, the same for every
                curve; each must come after every curve's last observed epoch and be at
                most ``run_epochs``.
            run_epochs: Epochs of the runs the curves come from, 2 to
                ``model.config.length``; a shorter run is stretched over the network's
                grid (``run_grid_scale``). Default: ``model.config.length``.

        Raises:
            ConfigError: An empty batch or curve, a curve too long, a value that is not
                finite or outside the scale's domain, or an epoch out of range.
        """
        network_length = self.model.config.length
        if run_epochs is None:
            run_epochs = network_length
        check_number("run_epochs", run_epochs, integer=True, low=2, high=network_length)
        length = run_epochs
        if isinstance(curves, (str, bytes)) or not isinstance(curves, Sequence) or not curves:
            raise ConfigError("curves must be a non-empty list of curves (lists of values).")
        rows: list[np.ndarray] = []
        for index, curve in enumerate(curves):
            try:
                values = np.asarray(curve, dtype=np.float64).reshape(-1)
            except (TypeError, ValueError) as error:
                raise ConfigError(f"curves[{index}] must be a list of numbers: {error}.") from None
            if not 1 <= values.size < length:
                raise ConfigError(
                    f"Each curve needs 1 to {length - 1} observed epochs (runs of {length} "
                    f"epochs), but curves[{index}] has {values.size}."
                )
            self.scale.check(values, f"curves[{index}]")
            rows.append(self.scale.to_unit(values))
        single = not isinstance(at_epoch, Sequence)
        raw: Sequence[object] = at_epoch if isinstance(at_epoch, Sequence) else [at_epoch]
        longest = max(row.size for row in rows)
        if not raw:
            raise ConfigError("at_epoch must name at least one epoch.")
        epochs: list[int] = []
        for epoch in raw:
            if (
                not isinstance(epoch, (int, np.integer))
                or isinstance(epoch, bool)
                or not longest < int(epoch) <= length
            ):
                raise ConfigError(
                    f"at_epoch must be an integer after every curve's last observed epoch "
                    f"(the longest curve has {longest}) and at most the run's {length} "
                    f"epochs, but got at_epoch={epoch!r}."
                )
            epochs.append(int(epoch))
        scale = run_grid_scale(run_epochs, network_length)
        logits = self._logits(rows, torch.tensor(epochs, dtype=torch.float32), scale)
        return Prediction(logits, self.model.distribution, self.scale, tuple(epochs), single)

    def _logits(
        self, rows: list[np.ndarray], queries: torch.Tensor, epoch_scale: float
    ) -> torch.Tensor:
        """Logits (B, Q, buckets) in the order of ``rows``, from chunks of similar length.

        Padding every curve to the longest one wastes most of a batch whose lengths
        spread over [1, length): sorted chunks keep each pass about as long as its
        curves (3x faster for lengths uniform in [1, 99]).
        """
        order = np.argsort([row.size for row in rows], kind="stable")
        parts: list[torch.Tensor] = []
        for start in range(0, len(order), self.chunk_size):
            chunk = [rows[i] for i in order[start : start + self.chunk_size]]
            lengths = [row.size for row in chunk]
            padded = np.zeros((len(chunk), max(lengths)), dtype=np.float32)
            for index, row in enumerate(chunk):
                padded[index, : row.size] = row
            with torch.inference_mode():
                parts.append(
                    self.model.predict(
                        torch.from_numpy(padded),
                        queries,
                        lengths=torch.tensor(lengths),
                        epoch_scale=epoch_scale,
                    )
                )
        logits = torch.cat(parts)  # (B, Q, buckets), sorted by length
        inverse = torch.from_numpy(np.argsort(order)).to(logits.device)
        return logits[inverse]
