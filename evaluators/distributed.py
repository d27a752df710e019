"""Data-parallel training across processes started by ``torchrun`` (torch.distributed).

A :class:`DataParallelContext` says which process this is among how many. It is built
from an initialised default process group, or is the trivial single-process context;
training code branches on ``context.distributed`` and keeps its single-process
arithmetic untouched otherwise.

``init_from_torchrun`` reads torchrun's environment (``WORLD_SIZE``, ``RANK``,
``LOCAL_RANK``, ``MASTER_ADDR``/``MASTER_PORT``), picks NCCL for CUDA and Gloo for the
CPU, pins each process to GPU ``LOCAL_RANK`` and initialises the default group.
"""

from __future__ import annotations

import os
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import timedelta
from typing import Any

import torch
import torch.distributed as dist

from nas.core.errors import ConfigError

# A rank that waits this long on the others (one died, or is stuck) fails instead of
# hanging; long enough for the main rank's per-epoch validation on a large data set.
DEFAULT_TIMEOUT = timedelta(minutes=30)


@dataclass(frozen=True)
class DataParallelContext:
    """This process's place among ``world_size`` data-parallel processes."""

    rank: int = 0
    world_size: int = 1

    def __post_init__(self) -> None:
        if self.world_size < 1 or not 0 <= self.rank < self.world_size:
            raise ValueError(f"rank {self.rank} is not in a world of {self.world_size}.")

    @property
    def is_main(self) -> bool:
        """Whether this process validates, writes checkpoints and reports (rank 0)."""
        return self.rank == 0

    @property
    def distributed(self) -> bool:
        """Whether other processes take part (collectives are needed)."""
        return self.world_size > 1

    @classmethod
    def current(cls) -> DataParallelContext:
        """The context of the default process group, or the single-process one."""
        if dist.is_available() and dist.is_initialized():
            return cls(rank=dist.get_rank(), world_size=dist.get_world_size())
        return cls()

    def barrier(self) -> None:
        """Wait until every process gets here (nothing to wait for when alone)."""
        if self.distributed:
            dist.barrier()

    def broadcast_object(self, value: Any) -> Any:
        """The main rank's ``value`` on every rank (pickled: for small, trusted values)."""
        if not self.distributed:
            return value
        holder = [value if self.is_main else None]
        dist.broadcast_object_list(holder, src=0)
        return holder[0]

    def all_gather_object(self, value: Any) -> list[Any]:
        """Every rank's ``value``, in rank order, on every rank."""
        if not self.distributed:
            return [value]
        gathered: list[Any] = [None] * self.world_size
        dist.all_gather_object(gathered, value)
        return gathered


def init_from_torchrun(
    device_setting: str, *, timeout: timedelta = DEFAULT_TIMEOUT
) -> tuple[DataParallelContext, torch.device]:
    """Join the job torchrun started: (this process's context, the device it trains on).

    ``device_setting`` is the ``device`` config value: ``cpu`` trains on the CPU with
    Gloo; ``cuda`` or ``auto`` with GPUs gives each process ``cuda:LOCAL_RANK`` with NCCL.
    A single ``cuda:N`` for every process is refused: they would share one GPU.

    Raises:
        ConfigError: Not under torchrun, or a device setting that cannot work.
    """
    missing = [name for name in ("RANK", "LOCAL_RANK", "WORLD_SIZE") if name not in os.environ]
    if missing:
        raise ConfigError(
            f"{', '.join(missing)} not set: data-parallel training runs under torchrun, "
            "e.g. torchrun --nproc_per_node=2 -m nas search space=bignas."
        )
    rank, local_rank = int(os.environ["RANK"]), int(os.environ["LOCAL_RANK"])
    world_size = int(os.environ["WORLD_SIZE"])
    device = _device_for(device_setting, local_rank)
    backend = "nccl" if device.type == "cuda" else "gloo"
    if not dist.is_initialized():
        if device.type == "cuda":
            torch.cuda.set_device(device)
        dist.init_process_group(
            backend=backend,
            rank=rank,
            world_size=world_size,
            timeout=timeout,
            # NCCL binds the group to this GPU up front (no guessing at first collective).
            device_id=device if device.type == "cuda" else None,
        )
    return DataParallelContext(rank=rank, world_size=world_size), device


def shutdown(*, wait: bool = True) -> None:
    """Leave the process group, if one was joined; first wait for every process (a
    process that leaves early would fail the others' last collectives)."""
    if dist.is_available() and dist.is_initialized():
        if wait:
            dist.barrier()
        dist.destroy_process_group()


def _device_for(setting: str, local_rank: int) -> torch.device:
    if setting == "cpu" or (setting == "auto" and not torch.cuda.is_available()):
        return torch.device("cpu")
    if setting not in ("auto", "cuda"):
        raise ConfigError(
            f"device={setting} under torchrun: use device=cuda (one GPU per process, "
            "cuda:LOCAL_RANK) or device=cpu."
        )
    count = torch.cuda.device_count()
    if count == 0:
        raise ConfigError("device=cuda under torchrun but torch sees no CUDA GPU.")
    if local_rank >= count:
        raise ConfigError(
            f"torchrun started more processes per node than the {count} GPU(s); "
            f"use --nproc_per_node={count}."
        )
    return torch.device("cuda", local_rank)


def all_reduce_(tensors: Sequence[torch.Tensor]) -> None:
    """Sum each tensor over every rank, in place (no autograd)."""
    for tensor in tensors:
        dist.all_reduce(tensor)
