"""Torch CPU threads for the default models: one thread against one per core, on an idle
machine and on one that other jobs keep busy.

Each row times a short real search of a space's default study (``nas search
space=NAME`` with the overrides of ``WORKLOADS``, a fresh SQLite store each time) as a
subprocess, with ``threads=1`` and with ``threads=0`` (torch's default: one thread per
core), median of ``--repeats`` runs. "loaded" starts one busy process per core first
(pure-Python loops, as other users' jobs would be) and stops them after. Printed: wall
seconds, CPU seconds the search used, and all-cores / one-thread wall time (above 1:
one thread is faster). ``threads=`` of ``nas search`` defaults to what this shows.

    python benchmarks/threads.py [--spaces bignas,nasnet,...] [--repeats 1] [--loads idle,loaded]
"""

from __future__ import annotations

import argparse
import multiprocessing
import os
import resource
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterator, Sequence
from contextlib import contextmanager, nullcontext
from typing import Any

from _table import Column, print_table

from nas.device import cpu_cores

# Short searches of each space's default study: the models and data of `nas search
# space=NAME`, fewer epochs and trials.
WORKLOADS: dict[str, list[str]] = {
    "bignas": ["space=bignas", "supernet.epochs=2", "trials=2"],
    "nasnet": ["space=nasnet", "epochs=2", "trials=2"],
    "vit_resnas": ["space=vit_resnas", "supernet.epochs=1", "trials=2"],
    "tas": ["space=tas", "tas.teacher_epochs=1", "tas.search_epochs=1", "epochs=1", "trials=1"],
    "evonorm": ["space=evonorm", "epochs=1", "trials=2", "baselines=[]"],
}
LOADS = ("idle", "loaded")


def _spin() -> None:
    while True:
        pass


@contextmanager
def busy_cores(count: int) -> Iterator[None]:
    """``count`` processes that each keep a core busy, for the duration."""
    spinners = [multiprocessing.Process(target=_spin, daemon=True) for _ in range(count)]
    for spinner in spinners:
        spinner.start()
    try:
        yield
    finally:
        for spinner in spinners:
            spinner.terminate()
        for spinner in spinners:
            spinner.join()


def time_search(overrides: Sequence[str], threads: int) -> tuple[float, float]:
    """(wall seconds, CPU seconds) of one search in a fresh folder and store."""
    with tempfile.TemporaryDirectory() as folder:
        command = [sys.executable, "-m", "nas", "search", *overrides, f"threads={threads}"]
        env = {key: value for key, value in os.environ.items() if key != "OMP_NUM_THREADS"}
        before = resource.getrusage(resource.RUSAGE_CHILDREN)
        started = time.perf_counter()
        result = subprocess.run(command, cwd=folder, env=env, capture_output=True, text=True)
        wall = time.perf_counter() - started
        after = resource.getrusage(resource.RUSAGE_CHILDREN)
    if result.returncode != 0:
        raise RuntimeError(f"{' '.join(command)} exited {result.returncode}:\n{result.stderr}")
    cpu = (after.ru_utime - before.ru_utime) + (after.ru_stime - before.ru_stime)
    return wall, cpu


def measure(space: str, load: str, repeats: int, cores: int) -> dict[str, Any]:
    times: dict[int, list[tuple[float, float]]] = {1: [], 0: []}
    with busy_cores(cores) if load == "loaded" else nullcontext():
        for _ in range(repeats):
            for threads in times:  # alternate, so a drift in load hits both alike
                times[threads].append(time_search(WORKLOADS[space], threads))
    one = statistics.median(wall for wall, _ in times[1])
    every = statistics.median(wall for wall, _ in times[0])
    return {
        "space": space,
        "load": load,
        "one_s": one,
        "one_cpu_s": statistics.median(cpu for _, cpu in times[1]),
        "all_s": every,
        "all_cpu_s": statistics.median(cpu for _, cpu in times[0]),
        "ratio": every / one,
    }


def main(argv: Sequence[str] | None = None) -> list[dict[str, Any]]:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--spaces", default=",".join(WORKLOADS))
    parser.add_argument("--loads", default=",".join(LOADS))
    parser.add_argument("--repeats", type=int, default=1)
    args = parser.parse_args(argv)
    spaces = [name for name in args.spaces.split(",") if name]
    loads = [name for name in args.loads.split(",") if name]
    for name in spaces:
        if name not in WORKLOADS:
            parser.error(f"unknown space {name!r}; choose from {', '.join(WORKLOADS)}")
    for name in loads:
        if name not in LOADS:
            parser.error(f"unknown load {name!r}; choose from {', '.join(LOADS)}")
    cores = cpu_cores()
    rows = [measure(space, load, args.repeats, cores) for space in spaces for load in loads]
    columns = [
        Column("space", "space", "<11"),
        Column("load", "load", "<7"),
        Column("1 thread s", "one_s", ">10.1f"),
        Column("cpu s", "one_cpu_s", ">7.1f"),
        Column(f"{cores} threads s", "all_s", ">11.1f"),
        Column("cpu s", "all_cpu_s", ">7.1f"),
        Column("all/1", "ratio", ">6.2f"),
    ]
    print_table(
        f"nas search wall seconds (median of {args.repeats}), threads=1 vs threads=0 "
        f"({cores} cores; loaded: {cores} busy processes)",
        columns,
        rows,
    )
    return rows


if __name__ == "__main__":
    main()
