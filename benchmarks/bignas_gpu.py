"""The default BigNAS search on a GPU (1 worker, then 2 sharing it) against the CPU run.

Each run is the README's main job, ``nas search space=bignas``, in a fresh SQLite store
(so each trains its own supernet), with ``device=`` and ``workers=`` set:

* ``cpu``: device=cpu, one process (the baseline, on this machine's cores);
* ``cuda x1``: device=cuda, one process;
* ``cuda x2``: device=cuda workers=2: the supernet is trained once, then two worker
  processes share the GPU for the children.

Wall time is the whole command (start-up and data included); ``supernet s`` is the sum
of the supernet's per-epoch seconds stored in the study (training + validation), and
``children s`` the rest. GPU utilisation and memory are sampled through NVML
(``nvidia-smi`` when pynvml is missing) every 0.25 s while a run is going.

    python benchmarks/bignas_gpu.py [--runs cpu cuda1 cuda2] [--extra key=value ...]
"""

from __future__ import annotations

import argparse
import os
import shutil
import statistics
import subprocess
import sys
import tempfile
import threading
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

from _table import Column, print_table

RUNS: dict[str, list[str]] = {
    "cpu": ["device=cpu"],
    "cuda1": ["device=cuda"],
    "cuda2": ["device=cuda", "workers=2"],
}
LABELS = {"cpu": "cpu", "cuda1": "cuda x1", "cuda2": "cuda x2"}
REPO = Path(__file__).resolve().parents[1]


def _gpu_reader() -> Callable[[], tuple[float, float]] | None:
    """A function returning (utilisation %, memory used MiB) of GPU 0, or None."""
    try:
        import pynvml

        pynvml.nvmlInit()
        handle = pynvml.nvmlDeviceGetHandleByIndex(0)

        def nvml() -> tuple[float, float]:
            rates = pynvml.nvmlDeviceGetUtilizationRates(handle)
            memory = pynvml.nvmlDeviceGetMemoryInfo(handle)
            return float(rates.gpu), memory.used / 2**20

        return nvml
    except Exception:  # no NVML binding, no driver: fall back to the command
        pass
    if shutil.which("nvidia-smi") is None:
        return None

    def smi() -> tuple[float, float]:
        out = subprocess.run(
            [
                "nvidia-smi",
                "--query-gpu=utilization.gpu,memory.used",
                "--format=csv,noheader,nounits",
                "-i",
                "0",
            ],
            capture_output=True,
            text=True,
            check=True,
        ).stdout
        util, memory = out.strip().split(",")
        return float(util), float(memory)

    return smi


class GpuSampler:
    """Samples the GPU in a thread while a run is going."""

    def __init__(self, read: Callable[[], tuple[float, float]] | None) -> None:
        self._read = read
        self._stop = threading.Event()
        self.samples: list[tuple[float, float]] = []
        self._thread = threading.Thread(target=self._loop, daemon=True)

    def _loop(self) -> None:
        while self._read is not None and not self._stop.wait(0.25):
            try:
                self.samples.append(self._read())
            except Exception:
                return

    def __enter__(self) -> GpuSampler:
        self._thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._stop.set()
        self._thread.join()

    def summary(self) -> dict[str, float]:
        if not self.samples:
            return {"util_mean": float("nan"), "util_busy": float("nan"), "mem_max": float("nan")}
        utils = [u for u, _ in self.samples]
        return {
            "util_mean": statistics.fmean(utils),
            "util_busy": 100.0 * sum(u > 0 for u in utils) / len(utils),
            "mem_max": max(m for _, m in self.samples),
        }


def _study_figures(url: str) -> dict[str, Any]:
    from evaluators.weight_sharing import SUMMARY_ATTR
    from nas import store

    study = store.load_study(store.open_storage(url), "bignas-digits")
    curve = study.user_attrs.get(SUMMARY_ATTR) or []
    complete = [t for t in study.get_trials(deepcopy=False) if t.state.name == "COMPLETE"]
    return {
        "supernet_s": sum(float(epoch["seconds"]) for epoch in curve),
        "biggest": float(curve[-1]["biggest_accuracy"]) if curve else float("nan"),
        "best": max((t.values[0] for t in complete), default=float("nan")),
        "trials": len(complete),
    }


def run_one(name: str, folder: Path, extra: list[str], read: Any) -> dict[str, Any]:
    url = f"sqlite:///{folder / name}.db"
    command = [
        sys.executable,
        "-m",
        "nas",
        "search",
        "space=bignas",
        f"storage={url}",
        f"artifacts={folder / name}-artifacts",
        *RUNS[name],
        *extra,
    ]
    print(f"== {LABELS[name]}: {' '.join(command[2:])}", flush=True)
    env = {**os.environ, "PYTHONPATH": f"{REPO}{os.pathsep}{os.environ.get('PYTHONPATH', '')}"}
    started = time.perf_counter()
    with GpuSampler(read if name != "cpu" else None) as sampler:
        result = subprocess.run(command, env=env, cwd=folder, capture_output=True, text=True)
    wall = time.perf_counter() - started
    if result.returncode != 0:
        print(result.stdout[-3000:], result.stderr[-3000:], sep="\n")
        raise SystemExit(f"{LABELS[name]} failed with exit code {result.returncode}")
    figures = _study_figures(url)
    return {
        "run": LABELS[name],
        "wall": wall,
        "children_s": wall - figures["supernet_s"],
        **figures,
        **sampler.summary(),
    }


def main(argv: list[str] | None = None) -> list[dict[str, Any]]:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--runs", nargs="+", choices=list(RUNS), default=list(RUNS))
    parser.add_argument("--extra", nargs="*", default=[], help="more key=value overrides")
    args = parser.parse_args(argv)
    import torch

    if any(run != "cpu" for run in args.runs) and not torch.cuda.is_available():
        raise SystemExit("torch sees no CUDA GPU; run with --runs cpu, or on a GPU machine.")
    if torch.cuda.is_available():
        print(f"GPU: {torch.cuda.get_device_name(0)}; torch {torch.__version__}")
    print(f"CPU threads: {torch.get_num_threads()}")
    read = _gpu_reader()
    rows = []
    with tempfile.TemporaryDirectory(prefix="nas-gpu-") as tmp:
        for name in args.runs:
            rows.append(run_one(name, Path(tmp), args.extra, read))
    baseline = rows[0]["wall"]
    for row in rows:
        row["ratio"] = baseline / row["wall"]
    print_table(
        "nas search space=bignas " + " ".join(args.extra) + " (fresh store per run)",
        [
            Column("run", "run", "<8"),
            Column("wall s", "wall", ">7.1f"),
            Column("supernet s", "supernet_s", ">10.1f"),
            Column("children s", "children_s", ">10.1f"),
            Column(f"speed-up vs {rows[0]['run']}", "ratio", ">16.2f"),
            Column("biggest acc", "biggest", ">11.4f"),
            Column("best acc", "best", ">8.4f"),
            Column("trials", "trials", ">6d"),
            Column("GPU util %", "util_mean", ">10.1f"),
            Column("busy %", "util_busy", ">6.1f"),
            Column("GPU MiB", "mem_max", ">8.0f"),
        ],
        rows,
    )
    return rows


if __name__ == "__main__":
    main()
