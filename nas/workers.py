"""Many workers, one study: ``nas worker`` joins a study; ``nas search workers=K`` starts K.

Every worker is an ordinary search loop on the shared SQL store: it asks for a trial,
runs it and tells the result, counting the study's finished trials from the store, so
the budget is shared however many workers join or leave. Per-trial seeds derive from
the study seed and the trial number, so results do not depend on which worker ran a
trial. A worker's running trial sends heartbeats; a killed worker's trial is failed
after the grace period and queued again with the same architecture, seed and curve.

The storage URL reaches local workers through the environment (``NAS_STORAGE``), not
their command lines, so a database password never shows in ``ps``.
"""

from __future__ import annotations

import dataclasses
import os
import signal
import subprocess
import sys
import time
import zlib
from collections.abc import Sequence
from typing import TYPE_CHECKING

from nas import store
from nas.config import (
    SearchConfig,
    WorkerConfig,
    compose_recorded,
    parse_overrides,
    study_name,
)
from nas.coordination import budget, read_trials_budget
from nas.core.errors import ConfigError, StudyError

if TYPE_CHECKING:
    from nas.search import SearchOutcome

STORAGE_ENV = "NAS_STORAGE"
# Keys a joining worker may set for itself; everything else comes from the study.
WORKER_KEYS = tuple(field.name for field in dataclasses.fields(WorkerConfig))


def worker_overrides(args: Sequence[str]) -> tuple[str, str, list[str], str]:
    """(study, storage URL, overrides for the stored config, worker name) of ``nas worker``."""
    parsed = parse_overrides(args)
    unknown = sorted(set(map(str, parsed)) - set(WORKER_KEYS))
    if unknown:
        raise ConfigError(
            f"nas worker takes {', '.join(WORKER_KEYS)}; got {', '.join(unknown)}. The other "
            "settings are the study's own (set when it was created)."
        )
    name = parsed.get("study")
    if not name:
        raise ConfigError("Usage: nas worker study=NAME [storage=URL] [device=cuda:0].")
    url = parsed.get("storage") or os.environ.get(STORAGE_ENV) or store.default_storage_url()
    rest = [a for a in args if a.partition("=")[0] in ("device", "timeout")]
    return str(name), str(url), rest, str(parsed.get("worker_name") or f"pid{os.getpid()}")


def worker_config(args: Sequence[str]) -> tuple[SearchConfig, str]:
    """The config of the study ``nas worker`` joins (as created), and the worker's name."""
    name, url, rest, label = worker_overrides(args)
    study = store.load_study(store.open_storage(url, must_exist=True), name)
    recorded = study.user_attrs.get(store.ATTR_CONFIG)
    if not isinstance(recorded, dict):
        raise StudyError(
            f"Study '{name}' holds no nas config to join; it was not created by nas search."
        )
    trials = read_trials_budget(study)
    config = compose_recorded(recorded, [*rest, "workers=1", f"trials={trials}"])
    config.storage = url  # the stored one is redacted
    config.study = name
    return config, label


def worker_devices(config: SearchConfig) -> list[str]:
    """One device per worker: GPUs in turn (least used first) when there are GPUs,
    else the CPU."""
    import torch

    from nas.device import gpus_by_load

    if config.device == "cpu" or not torch.cuda.is_available():
        if config.device not in ("cpu", "auto"):
            raise ConfigError(f"device={config.device} but torch sees no CUDA GPU.")
        return ["cpu"] * config.workers
    if config.device.startswith("cuda:"):
        return [config.device] * config.workers  # the user pinned one GPU
    order = gpus_by_load()
    return [f"cuda:{order[i % len(order)]}" for i in range(config.workers)]


def run_local_workers(config: SearchConfig, echo: object = print) -> tuple[int, bool]:
    """Prepare the study, start ``config.workers`` worker processes, wait for them.

    Returns (finished trials, interrupted). The parent trains a supernet first (once),
    so that every worker reuses it.
    """
    from nas.device import cpu_cores
    from nas.search import prepare_study

    url = config.storage or store.default_storage_url()
    prepare_study(config)
    devices = worker_devices(config)
    # Each worker sets torch's threads from the study's config (threads=); OpenMP's
    # own default for other libraries is one core's share.
    threads = config.threads or max(1, cpu_cores() // config.workers)
    env = {**os.environ, STORAGE_ENV: url, "OMP_NUM_THREADS": str(threads)}
    name = study_name(config)
    print(
        f"starting {config.workers} workers on study '{name}' "
        f"({', '.join(sorted(set(devices)))}; {threads} CPU thread(s) each)",
        flush=True,
    )
    processes = [
        subprocess.Popen(
            [
                sys.executable,
                "-m",
                "nas",
                "worker",
                f"study={name}",
                f"device={device}",
                f"worker_name=w{index}",
                *([f"timeout={config.timeout}"] if config.timeout is not None else []),
            ],
            env=env,
        )
        for index, device in enumerate(devices)
    ]
    interrupted = False
    try:
        codes = [p.wait() for p in processes]
    except KeyboardInterrupt:
        interrupted = True
        # A terminal's Ctrl-C reaches the workers too; a signal sent to this process
        # alone does not, so pass it on, then let each mark its trial and exit.
        for p in processes:
            if p.poll() is None:
                p.send_signal(signal.SIGINT)
        deadline = time.monotonic() + 60
        codes = [p.wait(timeout=max(1.0, deadline - time.monotonic())) for p in processes]
    interrupted = interrupted or any(code == 130 for code in codes)
    failed = [code for code in codes if code not in (0, 130)]
    if failed:
        raise StudyError(f"{len(failed)} worker(s) failed (exit codes {failed}); see their output.")
    study = store.load_study(store.open_storage(url), name)
    return budget(study).finished, interrupted


def run_worker(args: Sequence[str]) -> SearchOutcome:
    """``nas worker study=NAME [storage=URL] [device=...]``: run trials until the budget is met."""
    from nas.progress import LogReporter
    from nas.search import run_search

    config, label = worker_config(args)
    # The study was prepared (interrupted trials queued, its supernet trained and
    # published) by whoever created it.
    return run_search(
        config,
        reporter=LogReporter(name=label),
        requeue=False,
        trains_supernet=False,
        sampler_stream=sampler_stream(label),
    )


def sampler_stream(worker_name: str) -> int:
    """A worker's own sampler stream (never 0, the single-process one)."""
    return zlib.crc32(worker_name.encode()) or 1
