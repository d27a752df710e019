"""LC-PFN: Bayesian learning-curve extrapolation with a prior-data fitted network.

Adriaensen et al., "Efficient Bayesian Learning Curve Extrapolation using Prior-Data
Fitted Networks", NeurIPS 2023. ``sample_curves`` draws training curves from the
paper's prior; ``BarDistribution`` is the network's output distribution over the
value of a later epoch, with borders from ``fit_borders``. ``LCPFN`` is the network,
trained on the prior by ``train_lcpfn``; ``CurvePredictor`` extrapolates partial
curves with it in the metric's own units (``CurveScale``). ``SpreadCalibration`` maps a
fine-tuned network's predictive CDF so that its intervals hold on curves it was not
trained on (``fit_spread_calibration``).
"""

from __future__ import annotations

from evaluators.lcpfn.bar_distribution import BarDistribution, fit_borders
from evaluators.lcpfn.calibration import SpreadCalibration, fit_spread_calibration
from evaluators.lcpfn.model import LCPFN, LCPFNConfig
from evaluators.lcpfn.predict import CurvePredictor, CurveScale, Prediction
from evaluators.lcpfn.pretrained import load_lcpfn, pretrained_path
from evaluators.lcpfn.prior import ilog2, janoschek, pow3, sample_curves
from evaluators.lcpfn.train import LCPFNTrainSettings, lcpfn_learning_rate, train_lcpfn

__all__ = [
    "LCPFN",
    "BarDistribution",
    "CurvePredictor",
    "CurveScale",
    "LCPFNConfig",
    "LCPFNTrainSettings",
    "Prediction",
    "SpreadCalibration",
    "fit_borders",
    "fit_spread_calibration",
    "ilog2",
    "janoschek",
    "lcpfn_learning_rate",
    "load_lcpfn",
    "pow3",
    "pretrained_path",
    "sample_curves",
    "train_lcpfn",
]
