"""Device choice: `device=cuda` / `auto` take the least used GPU; workers spread over GPUs."""

from __future__ import annotations

import pytest
import torch

from nas.config import compose_search
from nas.core.errors import ConfigError
from nas.device import gpus_by_load, resolve_device
from nas.workers import worker_devices

MIB = 2**20


@pytest.fixture
def four_gpus(monkeypatch: pytest.MonkeyPatch) -> dict[int, tuple[int, int]]:
    """Four fake GPUs: index -> (memory used by others, utilisation %), as NVML reads them."""
    load = {0: (9000 * MIB, 90), 1: (100 * MIB, 0), 2: (100 * MIB, 40), 3: (20000 * MIB, 5)}
    monkeypatch.setattr(torch.cuda, "is_available", lambda: True)
    monkeypatch.setattr(torch.cuda, "device_count", lambda: len(load))
    monkeypatch.setattr(torch.cuda, "device_memory_used", lambda i: load[i][0])
    monkeypatch.setattr(torch.cuda, "utilization", lambda i: load[i][1])
    return load


def test_the_least_used_gpu_comes_first(four_gpus: dict[int, tuple[int, int]]) -> None:
    assert gpus_by_load() == [1, 2, 0, 3]
    assert resolve_device("cuda") == torch.device("cuda", 1)
    assert resolve_device("auto") == torch.device("cuda", 1)
    assert resolve_device("cuda:3") == torch.device("cuda", 3)  # pinned stays pinned


def test_workers_spread_over_gpus_least_used_first(four_gpus: dict[int, tuple[int, int]]) -> None:
    config = compose_search(["space=nasnet", "workers=6", "device=cuda"])
    assert worker_devices(config) == ["cuda:1", "cuda:2", "cuda:0", "cuda:3", "cuda:1", "cuda:2"]


def test_without_nvml_gpus_keep_their_order(
    four_gpus: dict[int, tuple[int, int]], monkeypatch: pytest.MonkeyPatch
) -> None:
    def no_nvml(index: int) -> int:
        raise ModuleNotFoundError("pynvml does not seem to be installed")

    monkeypatch.setattr(torch.cuda, "utilization", no_nvml)
    assert gpus_by_load() == [0, 1, 2, 3]
    assert resolve_device("cuda") == torch.device("cuda", 0)


def test_a_gpu_index_beyond_the_count_is_a_clear_error(
    four_gpus: dict[int, tuple[int, int]],
) -> None:
    with pytest.raises(ConfigError, match=r"only 4 GPU\(s\) exist: use cuda:0..cuda:3"):
        resolve_device("cuda:7")


def test_under_torchrun_cuda_is_the_process_own_gpu(
    four_gpus: dict[int, tuple[int, int]], monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("WORLD_SIZE", "4")
    monkeypatch.setenv("LOCAL_RANK", "2")
    assert resolve_device("cuda") == torch.device("cuda", 2)
    assert resolve_device("cuda:0") == torch.device("cuda", 0)
