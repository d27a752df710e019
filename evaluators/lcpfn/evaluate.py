"""Held-out scores of an LC-PFN: how well it predicts the final value of prior curves.

The same numbers go into the shipped model's card (``nas lcpfn train``), the quality
benchmark (``benchmarks/lcpfn_quality.py``) and the calibration test: each held-out
curve is cut after ``cutoff`` epochs and the network's predictive distribution of its
last epoch is scored against the curve's own (noisy) last value.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import asdict, dataclass

import numpy as np
import torch

from evaluators.lcpfn.model import LCPFN
from evaluators.lcpfn.prior import sample_curves
from nas.core.validation import check_number

# Curves for scoring come from their own stream, never one that training draws from
# (training seeds numpy with [seed, 0] and [seed, 1]).
HELD_OUT_SEED = 2023_10_31
CUTOFFS = (10, 20, 40, 80)
# Curves per forward pass: bounds the attention's memory at about 100 MB.
_CHUNK = 1000


def held_out_curves(count: int, *, length: int = 100, seed: int = HELD_OUT_SEED) -> np.ndarray:
    """``count`` noisy prior curves of ``length`` epochs that no training run has seen."""
    noisy, _ = sample_curves(count, length=length, generator=np.random.default_rng([seed, 7]))
    return noisy


@dataclass(frozen=True)
class CutoffScores:
    """Scores of the final-epoch prediction from the first ``cutoff`` epochs.

    Attributes:
        cutoff: Observed epochs.
        curves: Curves scored.
        log_likelihood: Mean log density of the true final value (higher is better).
        mse: Mean squared error of the predictive mean.
        coverage90: Share of final values inside the central 90% interval (ideal 0.90).
    """

    cutoff: int
    curves: int
    log_likelihood: float
    mse: float
    coverage90: float

    def as_dict(self) -> dict[str, float | int]:
        return asdict(self)


@torch.inference_mode()
def score_at_cutoffs(
    model: LCPFN, curves: np.ndarray, cutoffs: Sequence[int] = CUTOFFS
) -> list[CutoffScores]:
    """Score ``model`` on ``curves`` (shape (n, model.config.length)) at each cutoff."""
    length = model.config.length
    if curves.ndim != 2 or curves.shape[1] != length:
        raise ValueError(f"curves must have shape (n, {length}), not {curves.shape}.")
    model.eval()
    device = model.head.weight.device
    final = torch.from_numpy(np.ascontiguousarray(curves[:, -1])).to(device)  # (n,)
    results = []
    for cutoff in cutoffs:
        check_number("cutoff", cutoff, integer=True, low=1, high=length - 1)
        prefix = torch.from_numpy(np.ascontiguousarray(curves[:, :cutoff])).to(device)
        logits = torch.cat(
            [
                model.predict(part, [length])[:, 0]  # (chunk, buckets)
                for part in prefix.split(_CHUNK)
            ]
        )  # (n, buckets)
        dist = model.distribution
        low, high = dist.quantile(logits, 0.05), dist.quantile(logits, 0.95)
        results.append(
            CutoffScores(
                cutoff=cutoff,
                curves=len(curves),
                log_likelihood=float(dist.log_prob(logits, final).mean()),
                mse=float(((dist.mean(logits) - final) ** 2).mean()),
                coverage90=float(((final >= low) & (final <= high)).float().mean()),
            )
        )
    return results
