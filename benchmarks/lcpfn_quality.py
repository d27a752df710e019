"""LC-PFN prediction quality vs simple baselines and MCMC, on held-out prior or real curves.

Prior curves (the default):

``--curves`` noisy curves from the LC-PFN prior, from a stream no training run draws
from (``evaluators.lcpfn.evaluate.held_out_curves``), are cut after 10, 20, 40 and 80
of their 100 epochs; each method predicts the distribution of the (noisy) value at
epoch 100, scored by the mean log-likelihood (LL, higher is better) of the true value,
the MSE of the predicted mean, and the share of true values inside the central 90%
interval. Methods:

* ``lcpfn``: the shipped network (``evaluators/lcpfn/pretrained``), one batched call
  per cut-off.
* ``last``: the last observed value; a Gaussian around it whose sigma is the RMSE of
  that prediction on ``--calibration`` other prior curves (per cut-off).
* ``pow3``: a least-squares fit of ``c - a * x**-alpha`` to the observed prefix (exact
  linear least squares in (c, a) on a grid of 400 alphas in [1e-3, 1e2]); Gaussian
  sigma calibrated like ``last``.
* ``mcmc``: Bayesian inference over the prior's own model (weighted pow3 + ilog2 +
  Janoschek, the same parameter priors and validity rule, Gaussian noise with
  log sigma ~ N(-4, 1)) with emcee (``--walkers`` walkers, ``--steps`` steps, the
  first half burn-in), on the first ``--mcmc-curves`` curves only; its predictive
  distribution is scored as a Gaussian with the samples' mean and standard deviation.

Seconds are wall time per curve, on the CPU with ``--threads`` torch threads; the
ratio column is each method's time per curve over LC-PFN's.

Real curves (``--real``): the held-out half of the recorded corpus
(``benchmarks/data/real_curves.json.gz``, ``benchmarks/record_corpus.py``) is cut after
10%, 25%, 50% and 75% of its epochs and the value of its last epoch is predicted by
each ``--weights`` network (default: the shipped one; one with a spread calibration
in its card also as trained, without it), ``last`` and ``pow3`` (their
Gaussian sigma calibrated on the corpus's tuning half, never on the held-out one).
Besides LL, MSE and coverage: ``bias`` (mean predicted minus true), ``width`` (mean
width of the 90% interval) and ``spearman``, the rank correlation of the predicted with
the true final values, which is what pruning against other trials depends on (of the
predicted mean; ``sp.median`` of the predicted median, the same for last and pow3).

    python benchmarks/lcpfn_quality.py [--curves 10000] [--mcmc-curves 40]
    python benchmarks/lcpfn_quality.py --real [--corpus PATH] [--weights A.safetensors ...]
        [--every-cut]
"""

from __future__ import annotations

import argparse
import math
import time
from pathlib import Path
from typing import Any, ClassVar

import numpy as np
from _table import Column, print_table

LENGTH = 100
CUTOFFS = (10, 20, 40, 80)
DEFAULT_CORPUS = Path(__file__).parent / "data" / "real_curves.json.gz"
ALPHAS = np.logspace(-3, 2, 400)


def _parse(argv: list[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--curves", type=int, default=10_000, help="held-out curves")
    parser.add_argument("--calibration", type=int, default=2000, help="curves for baseline sigma")
    parser.add_argument("--mcmc-curves", type=int, default=40, help="curves for MCMC")
    parser.add_argument("--walkers", type=int, default=64, help="emcee walkers")
    parser.add_argument("--steps", type=int, default=2000, help="emcee steps per curve")
    parser.add_argument("--threads", type=int, default=2, help="torch threads")
    parser.add_argument("--real", action="store_true", help="score the real-curve corpus")
    parser.add_argument("--corpus", type=Path, default=DEFAULT_CORPUS, help="with --real")
    parser.add_argument(
        "--every-cut", action="store_true", help="with --real: cut after every epoch, not 4"
    )
    parser.add_argument(
        "--weights", nargs="+", default=["shipped"], help="LC-PFNs to score with --real"
    )
    args = parser.parse_args(argv)
    for name in ("curves", "calibration", "walkers", "steps", "threads"):
        if getattr(args, name) < 1:
            parser.error(f"--{name} must be >= 1, but got {getattr(args, name)}.")
    if args.mcmc_curves < 0:
        parser.error(f"--mcmc-curves must be >= 0, but got {args.mcmc_curves}.")
    return args


def gaussian_ll(mean: np.ndarray, sigma: np.ndarray | float, y: np.ndarray) -> np.ndarray:
    sigma = np.maximum(sigma, 1e-6)
    return -0.5 * ((y - mean) / sigma) ** 2 - np.log(sigma) - 0.5 * math.log(2 * math.pi)


def last_value(prefix: np.ndarray) -> np.ndarray:
    return prefix[:, -1].astype(np.float64)


def pow3_fit(prefix: np.ndarray, target: int = LENGTH) -> np.ndarray:
    """Least-squares pow3 extrapolation to epoch ``target``, vectorised over curves."""
    n, cutoff = prefix.shape
    y = prefix.astype(np.float64)  # (n, T)
    x = np.arange(1, cutoff + 1, dtype=np.float64)
    best_sse = np.full(n, np.inf)
    best_pred = y[:, -1].copy()
    for alpha in ALPHAS:
        basis = x**-alpha  # (T,): y ~ c - a * basis
        b_mean, y_mean = basis.mean(), y.mean(axis=1)
        b_var = ((basis - b_mean) ** 2).sum()
        if b_var < 1e-12:  # a flat basis cannot tell c from a
            continue
        slope = ((basis - b_mean) * (y - y_mean[:, None])).sum(axis=1) / b_var  # = -a
        intercept = y_mean - slope * b_mean  # = c
        sse = ((intercept[:, None] + slope[:, None] * basis - y) ** 2).sum(axis=1)
        better = sse < best_sse
        best_sse[better] = sse[better]
        best_pred[better] = (intercept + slope * target**-alpha)[better]
    return np.clip(best_pred, 0.0, 1.0)


class PriorPosterior:
    """Log-posterior of the prior's parametric model for one observed prefix (emcee)."""

    # theta: w1 w2 w3 | c3 a3 log_alpha | c2 a2 | aj beta log_k log_delta | log_sigma
    DIM = 13
    LOW = np.array([0, 0, 0, 0.0, -0.6, -np.inf, 0.0, -0.5, 0.0, 0.0, -np.inf, -np.inf, -np.inf])
    HIGH = np.array([1, 1, 1, 1.25, 0.6, np.inf, 1.0, 0.5, 1.0, 2.0, np.inf, np.inf, np.inf])
    GAUSS: ClassVar = {5: (0.0, 2.0), 10: (-2.0, 1.0), 11: (0.0, 0.5), 12: (-4.0, 1.0)}  # logs

    def __init__(self, prefix: np.ndarray) -> None:
        self.y = prefix.astype(np.float64)
        self.log_x = np.log(np.arange(1, LENGTH + 1, dtype=np.float64))
        self.ilog_x = 1.0 / np.log(np.arange(2, LENGTH + 2, dtype=np.float64))

    def clean(self, theta: np.ndarray) -> np.ndarray:
        """Clean curves over all LENGTH epochs, shape (walkers, LENGTH)."""

        def col(i: int) -> np.ndarray:
            return theta[:, i : i + 1]

        y = col(0) * (col(3) - col(4) * np.exp(-np.exp(col(5)) * self.log_x))
        y += col(1) * (col(6) - col(7) * self.ilog_x)
        y += col(2) * (
            col(8)
            - (col(8) - col(9)) * np.exp(-np.exp(col(10)) * np.exp(np.exp(col(11)) * self.log_x))
        )
        return y

    def __call__(self, theta: np.ndarray) -> np.ndarray:
        theta = np.atleast_2d(theta)
        inside = ((theta >= self.LOW) & (theta <= self.HIGH)).all(axis=1)
        log_prior = np.zeros(len(theta))
        for i, (mu, sd) in self.GAUSS.items():
            log_prior += -0.5 * ((theta[:, i] - mu) / sd) ** 2
        with np.errstate(over="ignore", invalid="ignore"):
            curves = self.clean(theta)
        valid = ((curves >= 0) & (curves <= 1)).all(axis=1) & (curves[:, -1] > curves[:, 0])
        sigma = np.exp(theta[:, 12])[:, None]
        observed = curves[:, : self.y.size]
        log_lik = (-0.5 * ((self.y - observed) / sigma) ** 2 - np.log(sigma)).sum(axis=1)
        out = np.where(inside & valid & np.isfinite(log_lik), log_prior + log_lik, -np.inf)
        return out

    def initial(self, walkers: int, rng: np.random.Generator) -> np.ndarray:
        """Walkers drawn from the prior, kept only where the curve is valid."""
        starts: list[np.ndarray] = []
        while sum(len(s) for s in starts) < walkers:
            m = 4096
            theta = np.empty((m, self.DIM))
            theta[:, :3] = rng.uniform(0, 1, (m, 3))
            theta[:, 3] = rng.uniform(0, 1.25, m)
            theta[:, 4] = rng.uniform(-0.6, 0.6, m)
            theta[:, 6] = rng.uniform(0, 1, m)
            theta[:, 7] = rng.uniform(-0.5, 0.5, m)
            theta[:, 8] = rng.uniform(0, 1, m)
            theta[:, 9] = rng.uniform(0, 2, m)
            for i, (mu, sd) in self.GAUSS.items():
                theta[:, i] = rng.normal(mu, sd, m)
            keep = np.isfinite(self(theta))
            starts.append(theta[keep])
        return np.concatenate(starts)[:walkers]


def mcmc_predict(
    prefix: np.ndarray, walkers: int, steps: int, rng: np.random.Generator
) -> tuple[float, float]:
    """Mean and standard deviation of the posterior predictive at epoch LENGTH."""
    import emcee

    posterior = PriorPosterior(prefix)
    sampler = emcee.EnsembleSampler(walkers, posterior.DIM, posterior, vectorize=True)
    # emcee draws its moves from a legacy RandomState of its own: seed it from rng.
    sampler.random_state = np.random.RandomState(int(rng.integers(2**31))).get_state()
    sampler.run_mcmc(posterior.initial(walkers, rng), steps, progress=False)
    theta = sampler.get_chain(discard=steps // 2, thin=10, flat=True)
    with np.errstate(over="ignore", invalid="ignore"):
        final = posterior.clean(theta)[:, -1]
    noise = np.exp(theta[:, 12]) * rng.standard_normal(len(theta))
    samples = np.clip(final + noise, 0.0, 1.0)
    return float(samples.mean()), float(samples.std())


def _score(
    name: str,
    cutoff: int,
    mean: np.ndarray,
    ll: np.ndarray,
    low: np.ndarray,
    high: np.ndarray,
    truth: np.ndarray,
    seconds: float,
) -> dict[str, Any]:
    return {
        "method": name,
        "cutoff": cutoff,
        "curves": len(truth),
        "ll": float(ll.mean()),
        "mse": float(((mean - truth) ** 2).mean()),
        "coverage90": float(((truth >= low) & (truth <= high)).mean()),
        "s_per_curve": seconds / len(truth),
    }


def _gaussian_rows(
    name: str, predict: Any, curves: np.ndarray, calibration: np.ndarray, cutoff: int
) -> dict[str, Any]:
    sigma = math.sqrt(float(((predict(calibration[:, :cutoff]) - calibration[:, -1]) ** 2).mean()))
    started = time.perf_counter()
    mean = predict(curves[:, :cutoff])
    seconds = time.perf_counter() - started
    truth = curves[:, -1].astype(np.float64)
    z = 1.6448536269514722  # the 95% normal quantile
    return {"sigma": sigma} | _score(
        name,
        cutoff,
        mean,
        gaussian_ll(mean, sigma, truth),
        mean - z * sigma,
        mean + z * sigma,
        truth,
        seconds,
    )


def real_rows(args: argparse.Namespace) -> list[dict[str, Any]]:
    """Every method on the corpus's held-out half, at each cut point."""
    from evaluators.lcpfn import load_lcpfn
    from evaluators.lcpfn.corpus import load_curve_corpus
    from evaluators.lcpfn.evaluate import rank_correlation, score_at_cutoffs
    from nas.lcpfn_command import real_cutoffs

    held_out = load_curve_corpus(args.corpus, "held-out")
    tuning = load_curve_corpus(args.corpus, "tuning").curves
    curves, epochs = held_out.curves, held_out.epochs
    truth = curves[:, -1].astype(np.float64)
    rows: list[dict[str, Any]] = []
    # Each network is loaded once; a calibrated one is scored as trained too, to show
    # what its calibration changed.
    variants = []
    for weights in args.weights:
        model = load_lcpfn(None if weights == "shipped" else weights)
        name = "lcpfn" if weights == "shipped" else f"lcpfn {Path(weights).stem}"
        variants.append((name, model, model.calibration))
        if model.calibration is not None:
            variants.append((f"{name} as trained", model, None))
    cutoffs = range(1, epochs) if args.every_cut else real_cutoffs(epochs)
    for cutoff in cutoffs:
        for label, model, calibration in variants:
            model.calibration = calibration
            started = time.perf_counter()
            (scores,) = score_at_cutoffs(model, curves, [cutoff])
            seconds = time.perf_counter() - started
            rows.append(
                {
                    "method": label,
                    **scores.as_dict(),
                    "ll": scores.log_likelihood,
                    "s_per_curve": seconds / len(curves),
                }
            )
        for name, predict in (("last", last_value), ("pow3", lambda p: pow3_fit(p, epochs))):
            row = _gaussian_rows(name, predict, curves, tuning, cutoff)
            mean = predict(curves[:, :cutoff])
            spearman = rank_correlation(mean, truth)
            row |= {
                "bias": float((mean - truth).mean()),
                "width90": 2 * 1.6448536269514722 * row.pop("sigma"),
                "spearman": spearman,
                "spearman_median": spearman,  # a point prediction is its own median
            }
            rows.append(row)
    return rows


def main(argv: list[str] | None = None) -> list[dict[str, Any]]:
    import torch

    args = _parse(argv)
    torch.set_num_threads(args.threads)
    if args.real:
        rows = real_rows(args)
        _print_real_table(rows, args)
        return rows
    return prior_rows(args)


def prior_rows(args: argparse.Namespace) -> list[dict[str, Any]]:
    """Every method on held-out prior curves, at each cut-off (printed)."""
    from evaluators.lcpfn import load_lcpfn, sample_curves
    from evaluators.lcpfn.evaluate import held_out_curves, score_at_cutoffs

    curves = held_out_curves(args.curves, length=LENGTH)
    calibration, _ = sample_curves(
        args.calibration, length=LENGTH, generator=np.random.default_rng([99, 3])
    )
    model = load_lcpfn()
    # On its own prior the network is scored as trained: the card's spread calibration
    # is fitted for the platform's curves (the card scores prior curves with it too).
    model.calibration = None
    truth = curves[:, -1].astype(np.float64)
    rows: list[dict[str, Any]] = []
    for cutoff in CUTOFFS:
        started = time.perf_counter()
        (scores,) = score_at_cutoffs(model, curves, [cutoff])
        seconds = time.perf_counter() - started
        pfn_row = {
            "method": "lcpfn",
            "cutoff": cutoff,
            "curves": len(curves),
            "ll": scores.log_likelihood,
            "mse": scores.mse,
            "coverage90": scores.coverage90,
            "s_per_curve": seconds / len(curves),
        }
        rows.append(pfn_row)
        for name, predict in (("last", last_value), ("pow3", pow3_fit)):
            row = _gaussian_rows(name, predict, curves, calibration, cutoff)
            row.pop("sigma")
            rows.append(row)
        if args.mcmc_curves:
            subset = curves[: args.mcmc_curves]
            rng = np.random.default_rng([cutoff, 5])
            started = time.perf_counter()
            moments = np.array(
                [mcmc_predict(row[:cutoff], args.walkers, args.steps, rng) for row in subset]
            )
            seconds = time.perf_counter() - started
            mean, sd = moments[:, 0], moments[:, 1]
            sub_truth = truth[: args.mcmc_curves]
            z = 1.6448536269514722
            rows.append(
                _score(
                    "mcmc",
                    cutoff,
                    mean,
                    gaussian_ll(mean, sd, sub_truth),
                    mean - z * sd,
                    mean + z * sd,
                    sub_truth,
                    seconds,
                )
            )
            (sub,) = score_at_cutoffs(model, subset, [cutoff])
            rows.append(
                {
                    "method": "lcpfn (mcmc subset)",
                    "cutoff": cutoff,
                    "curves": len(subset),
                    "ll": sub.log_likelihood,
                    "mse": sub.mse,
                    "coverage90": sub.coverage90,
                    "s_per_curve": pfn_row["s_per_curve"],
                }
            )
    _print_table(rows, args)
    return rows


def _print_real_table(rows: list[dict[str, Any]], args: argparse.Namespace) -> None:
    import torch

    print_table(
        f"lcpfn quality on real curves: predict the last epoch of the held-out half of "
        f"{args.corpus.name} (baselines' sigma from its tuning half); "
        f"{torch.get_num_threads()} torch threads, cpu",
        [
            Column("method", "method", "<24"),
            Column("cutoff", "cutoff", ">6"),
            Column("curves", "curves", ">7"),
            Column("LL", "ll", ">8.3f"),
            Column("MSE", "mse", ">10.2e"),
            Column("bias", "bias", ">8.4f"),
            Column("cov90", "coverage90", ">6.3f"),
            Column("width", "width90", ">7.3f"),
            Column("spearman", "spearman", ">9.3f"),
            Column("sp.median", "spearman_median", ">10.3f"),
        ],
        rows,
    )


def _print_table(rows: list[dict[str, Any]], args: argparse.Namespace) -> None:
    import torch

    pfn_time = {r["cutoff"]: r["s_per_curve"] for r in rows if r["method"] == "lcpfn"}
    print_table(
        f"lcpfn quality: predict the value at epoch {LENGTH} of held-out prior curves; "
        f"MCMC: emcee {args.walkers} walkers x {args.steps} steps; "
        f"{torch.get_num_threads()} torch threads, cpu",
        [
            Column("method", "method", "<20"),
            Column("cutoff", "cutoff", ">6"),
            Column("curves", "curves", ">7"),
            Column("LL", "ll", ">8.3f"),
            Column("MSE", "mse", ">10.2e"),
            Column("cov90", "coverage90", ">6.3f"),
            Column("s/curve", "s_per_curve", ">10.2e"),
            Column("x lcpfn", lambda r: r["s_per_curve"] / pfn_time[r["cutoff"]], ">9.1f"),
        ],
        rows,
    )


if __name__ == "__main__":
    main()
