"""LC-PFN prediction speed: many partial curves extrapolated in one ``CurvePredictor`` call.

``--curves`` noisy curves from the LC-PFN prior (``sample_curves``, seed 0, 100 epochs),
each cut at an epoch drawn uniformly from [1, 99] (seed 1), are predicted at the final
epoch 100 in ONE call of ``CurvePredictor.predict``, on the CPU with ``--threads`` torch
threads. Each model is timed twice in the same run: ``sorted chunks`` is the default
(curves sorted by length, ``DEFAULT_CHUNK_SIZE`` per pass, each padded to its own longest) and
``one padded pass`` pads every curve to the longest one (``chunk_size`` = all curves),
the plain alternative; ``x`` is its time over the chunked one. ``seconds`` is the median
of ``--repeats`` calls after one warm-up call; each call includes the input checks,
padding and the mean of the prediction. ``small`` is the shipped network, its spread
calibration included (about 0.05 s of 1,000 curves: 0.92 vs 0.87 s as trained); ``paper``
is the paper's size with untrained weights (the speed does not depend on them).
Target: 1,000 curves in < 1 s.

    python benchmarks/lcpfn_speed.py [--curves 1000] [--repeats 5] [--sizes small paper]
"""

from __future__ import annotations

import argparse
import statistics
import time
from typing import Any

from _table import Column, print_table

TARGET_CURVES = 1000
TARGET_S = 1.0  # for TARGET_CURVES curves; scaled linearly for other counts
LENGTH = 100  # epochs per curve, as in the paper's prior


def _parse(argv: list[str] | None) -> argparse.Namespace:
    from nas.lcpfn_command import SIZES

    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--curves", type=int, default=1000, help="partial curves per call")
    parser.add_argument("--repeats", type=int, default=5, help="timed calls (median)")
    parser.add_argument(
        "--sizes", nargs="+", choices=sorted(SIZES), default=["small", "paper"], help="models"
    )
    parser.add_argument("--threads", type=int, default=2, help="torch threads")
    args = parser.parse_args(argv)
    for name in ("curves", "repeats", "threads"):
        if getattr(args, name) < 1:
            parser.error(f"--{name} must be >= 1, but got {getattr(args, name)}.")
    return args


def _partial_curves(count: int) -> list[list[float]]:
    import numpy as np

    from evaluators.lcpfn import sample_curves

    noisy, _ = sample_curves(count, length=LENGTH, generator=np.random.default_rng(0))
    cuts = np.random.default_rng(1).integers(1, LENGTH, size=count)  # uniform in [1, 99]
    return [row[:cut].tolist() for row, cut in zip(noisy, cuts, strict=True)]


def _model(size: str) -> Any:
    import torch

    from evaluators.lcpfn import LCPFN, LCPFNConfig, load_lcpfn
    from nas.lcpfn_command import SIZES

    if size == "small":
        return load_lcpfn()  # the shipped network
    torch.manual_seed(0)
    return LCPFN(LCPFNConfig(**SIZES[size], length=LENGTH))


def _rows(size: str, curves: list[list[float]], args: argparse.Namespace) -> list[dict[str, Any]]:
    from evaluators.lcpfn import CurvePredictor
    from evaluators.lcpfn.predict import DEFAULT_CHUNK_SIZE

    model = _model(size)
    rows = []
    for mode, chunk in (("sorted chunks", DEFAULT_CHUNK_SIZE), ("one padded pass", len(curves))):
        predictor = CurvePredictor(model, device="cpu", chunk_size=chunk)

        def call(predictor: CurvePredictor = predictor) -> None:
            predictor.predict(curves, at_epoch=LENGTH).mean()

        call()  # warm-up
        times = []
        for _ in range(args.repeats):
            started = time.perf_counter()
            call()
            times.append(time.perf_counter() - started)
        seconds = statistics.median(times)
        target = TARGET_S * len(curves) / TARGET_CURVES
        rows.append(
            {
                "size": size,
                "mode": mode,
                "params": sum(p.numel() for p in model.parameters()),
                "curves": len(curves),
                "seconds": seconds,
                "curves_per_s": len(curves) / seconds,
                "target_s": target,
                "passed": seconds < target,
            }
        )
    rows[1]["ratio"] = rows[1]["seconds"] / rows[0]["seconds"]
    rows[0]["ratio"] = 1.0
    return rows


def _print_table(rows: list[dict[str, Any]], header_line: str) -> None:
    print_table(
        header_line,
        [
            Column("size", "size", "<6"),
            Column("mode", "mode", "<16"),
            Column("params", "params", ">11,"),
            Column("curves", "curves", ">7"),
            Column("seconds", "seconds", ">9.3f"),
            Column("curves/s", "curves_per_s", ">10.1f"),
            Column("x", "ratio", ">6.2f"),
            Column("target s", "target_s", ">9.3f"),
            Column("result", lambda row: "PASS" if row["passed"] else "FAIL", ">6"),
        ],
        rows,
    )


def main(argv: list[str] | None = None) -> list[dict[str, Any]]:
    """Run the benchmark, print its table and return its rows."""
    import torch

    args = _parse(argv)
    torch.set_num_threads(args.threads)
    curves = _partial_curves(args.curves)
    rows = [row for size in args.sizes for row in _rows(size, curves, args)]
    longest = max(len(curve) for curve in curves)
    _print_table(
        rows,
        f"lcpfn speed: {args.curves} prior curves cut in [1, {LENGTH - 1}] (longest {longest}), "
        f"predicted at epoch {LENGTH} in one call, median of "
        f"{args.repeats} after 1 warm-up, {torch.get_num_threads()} torch threads, cpu; "
        f"target {TARGET_CURVES:,} curves in < {TARGET_S:g} s",
    )
    return rows


if __name__ == "__main__":
    main()
