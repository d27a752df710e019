"""Turn the ``device`` setting into a torch device, failing clearly when it is absent."""

from __future__ import annotations

import os
from typing import TYPE_CHECKING

from nas.core.errors import ConfigError
from nas.torchrun import torchrun_world_size

if TYPE_CHECKING:
    import torch


# GPUs whose used memory differs by less than this count as equally free.
_MEMORY_BUCKET = 256 * 2**20


def gpus_by_load() -> list[int]:
    """The visible CUDA GPUs, least used first: memory other processes hold, then
    utilisation, read through NVML (no CUDA context is created on any GPU). In index
    order when NVML is not installed (``pip install nvidia-ml-py``)."""
    import torch

    count = torch.cuda.device_count()
    try:
        load = {
            index: (
                torch.cuda.device_memory_used(index) // _MEMORY_BUCKET,
                torch.cuda.utilization(index),
            )
            for index in range(count)
        }
    except Exception:  # no pynvml, or NVML refused: no ranking rather than no GPU
        return list(range(count))
    return sorted(range(count), key=lambda index: (load[index], index))


def resolve_device(name: str) -> torch.device:
    """``auto`` and ``cuda`` pick the least used CUDA GPU (``auto``: the CPU without
    one; under torchrun: the process's ``cuda:LOCAL_RANK``); ``cuda:N`` pins GPU N."""
    import torch

    if name == "auto" and not torch.cuda.is_available():
        return torch.device("cpu")
    if name == "cpu":
        return torch.device("cpu")
    if not torch.cuda.is_available():
        raise ConfigError(
            f"device={name} but torch sees no CUDA GPU. Use device=cpu or device=auto."
        )
    if name in ("auto", "cuda"):
        if torchrun_world_size() > 1:  # one GPU per process
            return torch.device("cuda", int(os.environ.get("LOCAL_RANK", "0")))
        return torch.device("cuda", gpus_by_load()[0])
    device = torch.device(name)
    count = torch.cuda.device_count()
    if device.index is not None and device.index >= count:
        raise ConfigError(
            f"device={name} but only {count} GPU(s) exist: use cuda:0..cuda:{count - 1}."
        )
    return device


def cpu_cores() -> int:
    """Cores this process may run on (its affinity, not the machine's count)."""
    if hasattr(os, "sched_getaffinity"):
        return max(1, len(os.sched_getaffinity(0)))
    return max(1, os.cpu_count() or 1)


def set_torch_threads(threads: int) -> int:
    """Make torch compute with ``threads`` CPU threads; 0 keeps torch's own default (one
    per core, or ``$OMP_NUM_THREADS``, which local workers get as their share). Returns
    the count.

    Small networks gain nothing from more threads, and on a loaded machine threads that
    wait for each other at every operation make a run several times slower.
    """
    import torch

    if threads and torch.get_num_threads() != threads:
        torch.set_num_threads(threads)
    return torch.get_num_threads()
