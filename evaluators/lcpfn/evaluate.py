"""Held-out scores of an LC-PFN: how well it predicts the final value of a curve.

The same numbers go into the shipped model's card (``nas lcpfn train``), the quality
benchmark (``benchmarks/lcpfn_quality.py``) and the calibration test: each held-out
curve (fresh prior curves, or the held-out half of a recorded corpus) is cut after
``cutoff`` epochs and the network's predictive distribution of its last epoch is scored
against the curve's own (noisy) last value. A curve shorter than the network's length
is the first epochs of a run: its last epoch is the one predicted.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import asdict, dataclass

import numpy as np
import torch

from evaluators.lcpfn.model import LCPFN, run_grid_scale
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
        width90: Mean width of that interval.
        bias: Mean of predicted minus true final value.
        spearman: Rank correlation of the predicted mean with the true final value,
            what pruning by comparison with other trials depends on.
        spearman_median: The same for the predicted median, which the long lower tail
            of a curve that might still collapse does not drag down as it does the mean.
    """

    cutoff: int
    curves: int
    log_likelihood: float
    mse: float
    coverage90: float
    width90: float
    bias: float
    spearman: float
    spearman_median: float

    def as_dict(self) -> dict[str, float | int]:
        return asdict(self)


def rank_correlation(predicted: np.ndarray, truth: np.ndarray) -> float:
    """Spearman's rank correlation (ties get average ranks); 0.0 when one side is constant."""
    from scipy.stats import spearmanr

    if np.ptp(predicted) == 0 or np.ptp(truth) == 0:
        return 0.0
    return float(spearmanr(predicted, truth).statistic)


@torch.inference_mode()
def score_at_cutoffs(
    model: LCPFN, curves: np.ndarray, cutoffs: Sequence[int] = CUTOFFS
) -> list[CutoffScores]:
    """Score ``model`` on ``curves`` (shape (n, epochs), epochs <= model.config.length)
    at each cutoff: the value of the last epoch is predicted from the first ``cutoff``;
    curves shorter than the network are whole runs, stretched over its grid."""
    target = _check_curves(model, curves)
    device = model.head.weight.device
    final = torch.from_numpy(np.ascontiguousarray(curves[:, -1])).to(device)  # (n,)
    results = []
    for cutoff in cutoffs:
        check_number("cutoff", cutoff, integer=True, low=1, high=target - 1)
        logits = _final_logits(model, curves, cutoff)  # (n, buckets)
        dist = model.distribution
        low, high = dist.quantile(logits, 0.05), dist.quantile(logits, 0.95)
        mean, median = dist.mean(logits), dist.quantile(logits, 0.5)
        results.append(
            CutoffScores(
                cutoff=cutoff,
                curves=len(curves),
                log_likelihood=float(dist.log_prob(logits, final).mean()),
                mse=float(((mean - final) ** 2).mean()),
                coverage90=float(((final >= low) & (final <= high)).float().mean()),
                width90=float((high - low).mean()),
                bias=float((mean - final).mean()),
                spearman=rank_correlation(mean.cpu().numpy(), final.cpu().numpy()),
                spearman_median=rank_correlation(median.cpu().numpy(), final.cpu().numpy()),
            )
        )
    return results


@torch.inference_mode()
def predictions_at_every_cut(
    model: LCPFN, curves: np.ndarray
) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """The prediction of each curve's last epoch from each of its first 1 .. E-1 epochs.

    What a spread calibration is fitted on (``fit_spread_calibration``), so ``model``
    should not have seen ``curves`` and should be as trained (``load_lcpfn(path,
    calibrated=False)``). Returns ``(logits, finals, shares)`` with one row
    per curve and cut: logits (n (E-1), buckets) as ``model`` gives them, the true last
    values (n (E-1),) and the observed shares cut / E (n (E-1),).
    """
    target = _check_curves(model, curves)
    final = torch.from_numpy(np.ascontiguousarray(curves[:, -1])).to(torch.float64)
    logits, finals, shares = [], [], []
    for cut in range(1, target):
        logits.append(_final_logits(model, curves, cut).cpu())
        finals.append(final)
        shares.append(torch.full_like(final, cut / target))
    return torch.cat(logits), torch.cat(finals), torch.cat(shares)


def _check_curves(model: LCPFN, curves: np.ndarray) -> int:
    """The curves' length (the epoch predicted), checked; puts ``model`` in eval mode."""
    length = model.config.length
    if curves.ndim != 2 or not 2 <= curves.shape[1] <= length:
        raise ValueError(f"curves must have shape (n, 2..{length}), not {curves.shape}.")
    model.eval()
    return int(curves.shape[1])


def _final_logits(model: LCPFN, curves: np.ndarray, cut: int) -> torch.Tensor:
    """Logits (n, buckets) of each curve's last epoch from its first ``cut`` epochs; a
    run shorter than the network is stretched over its grid."""
    target = curves.shape[1]
    scale = run_grid_scale(target, model.config.length)
    prefix = torch.from_numpy(np.ascontiguousarray(curves[:, :cut])).to(model.head.weight.device)
    return torch.cat(
        [model.predict(part, [target], epoch_scale=scale)[:, 0] for part in prefix.split(_CHUNK)]
    )
