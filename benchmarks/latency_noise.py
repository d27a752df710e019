"""How much the latency objective varies from one measurement to the next.

Measures one network's latency (``nas.metrics.measure_latency``, the function trials use:
median of 10 timed passes after 3 warm-up passes) ``--measurements`` times with a fixed
thread count (``latency_threads``, default 1) and with torch's default thread count, and
prints the median, the spread (max / min) and the ratio of the two settings' medians.
Run it on a quiet machine and again beside a busy job: the figures in the README were
measured both ways.

    python benchmarks/latency_noise.py [--measurements 12] [--threads 1]
"""

from __future__ import annotations

import argparse
import os
import statistics
from typing import Any

from _table import Column, print_table


def measurements(threads: int | None, count: int) -> list[float]:
    import torch

    from nas.core.dataspec import DataSpec
    from nas.metrics import measure_latency
    from search_spaces import create_space

    space = create_space("nasnet", cells_per_stage=2, init_channels=16)
    spec = DataSpec(3, 10, 32)
    torch.manual_seed(0)
    model = space.build(space.named_architectures()["nasnet-a"], spec).eval()
    device = torch.device("cpu")
    return [
        measure_latency(model, spec.input_shape(1), device=device, threads=threads)
        for _ in range(count)
    ]


def main(argv: list[str] | None = None) -> list[dict[str, Any]]:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--measurements", type=int, default=12)
    parser.add_argument("--threads", type=int, default=1, help="the fixed thread count")
    args = parser.parse_args(argv)
    import torch

    default_threads = torch.get_num_threads()
    rows = []
    for label, threads in ((f"fixed: {args.threads}", args.threads), ("torch default", None)):
        times = measurements(threads, args.measurements)
        rows.append(
            {
                "setting": label,
                "threads": threads or default_threads,
                "median": statistics.median(times),
                "min": min(times),
                "max": max(times),
                "spread": max(times) / min(times),
            }
        )
    load = os.getloadavg()[0]
    print_table(
        f"NASNet-A N=2 C=16, 32 px, one image: {args.measurements} measurements per setting "
        f"on {os.cpu_count()} cores, load average {load:.2f}",
        [
            Column("setting", "setting", "<16"),
            Column("threads", "threads", ">7d"),
            Column("median ms", "median", ">10.1f"),
            Column("min ms", "min", ">8.1f"),
            Column("max ms", "max", ">8.1f"),
            Column("max/min", "spread", ">8.2f"),
        ],
        rows,
    )
    print(f"default / fixed median: {rows[1]['median'] / rows[0]['median']:.2f}x")
    return rows


if __name__ == "__main__":
    main()
