"""LC-PFN: Bayesian learning-curve extrapolation with a prior-data fitted network.

Adriaensen et al., "Efficient Bayesian Learning Curve Extrapolation using Prior-Data
Fitted Networks", NeurIPS 2023. ``sample_curves`` draws training curves from the
paper's prior; ``BarDistribution`` is the network's output distribution over the
value of a later epoch, with borders from ``fit_borders``.
"""

from __future__ import annotations

from evaluators.lcpfn.bar_distribution import BarDistribution, fit_borders
from evaluators.lcpfn.prior import ilog2, janoschek, pow3, sample_curves

__all__ = [
    "BarDistribution",
    "fit_borders",
    "ilog2",
    "janoschek",
    "pow3",
    "sample_curves",
]
