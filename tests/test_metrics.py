"""Parameter and FLOP counts against numbers worked out by hand; measured latency."""

from __future__ import annotations

import time

import pytest
import torch
from torch import nn

from nas.metrics import count_flops, count_parameters, measure_latency


def _net() -> nn.Sequential:
    return nn.Sequential(
        nn.Conv2d(3, 8, 3, padding=1),  # 8*3*3*3 + 8 = 224 parameters
        nn.BatchNorm2d(8),  # 16 parameters
        nn.ReLU(),
        nn.Flatten(),
        nn.Linear(8 * 8 * 8, 10),  # 512*10 + 10 = 5130 parameters
    )


# Conv: 8 output channels x 8x8 positions x (3 channels x 3x3) multiply-adds; linear:
# 512 x 10. Two FLOPs per multiply-add; batch norm, ReLU and biases are not counted.
_FLOPS_PER_IMAGE = 2 * (8 * 8 * 8 * 3 * 3 * 3) + 2 * (512 * 10)


@pytest.mark.parametrize("batch", [1, 2])
def test_count_flops_matches_hand_count(batch: int) -> None:
    assert _FLOPS_PER_IMAGE == 37_888
    assert count_flops(_net(), (batch, 3, 8, 8)) == batch * _FLOPS_PER_IMAGE


def test_count_flops_restores_modes_and_leaves_no_trace() -> None:
    net = _net()
    norm = net[1]
    assert isinstance(norm, nn.BatchNorm2d) and norm.running_mean is not None
    norm.eval()  # a frozen batch norm inside a training model must stay frozen
    stats_before = norm.running_mean.clone()
    count_flops(net, (1, 3, 8, 8))
    assert net.training and net[0].training and not norm.training
    assert torch.equal(norm.running_mean, stats_before)
    assert all(parameter.grad is None for parameter in net.parameters())


def test_count_flops_of_parameter_free_model() -> None:
    assert count_flops(nn.Sequential(nn.ReLU()), (1, 3, 4, 4)) == 0


def test_count_parameters_with_exclusions() -> None:
    net = _net()
    assert count_parameters(net) == 224 + 16 + 5130
    assert count_parameters(net, exclude_prefixes=("4.",)) == 224 + 16
    assert count_parameters(net, exclude_prefixes=("0.", "1.weight")) == 8 + 5130


def test_count_parameters_counts_shared_weights_once() -> None:
    layer = nn.Linear(4, 4)
    assert count_parameters(nn.Sequential(layer, layer)) == 20


class _Sleeper(nn.Module):
    """Takes at least 5 ms per forward; records how and how often it was called."""

    def __init__(self) -> None:
        super().__init__()
        self.scale = nn.Parameter(torch.ones(()))
        self.calls: list[tuple[bool, bool]] = []  # (training, inference mode)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        self.calls.append((self.training, torch.is_inference_mode_enabled()))
        time.sleep(0.005)
        return x * self.scale


def test_measure_latency_is_positive_milliseconds() -> None:
    latency = measure_latency(_net(), (1, 3, 8, 8), device=torch.device("cpu"))
    assert isinstance(latency, float) and 0 < latency < 1000


def test_measure_latency_times_eval_passes_after_warmup() -> None:
    sleeper = _Sleeper()
    latency = measure_latency(sleeper, (2, 3), device=torch.device("cpu"), warmup=2, repeats=3)
    assert latency >= 5.0
    assert sleeper.calls == [(False, True)] * 5  # 2 untimed warm-up passes + 3 timed
    assert sleeper.training


def test_measure_latency_times_with_the_given_threads_and_restores_them() -> None:
    seen: list[int] = []

    class CountThreads(nn.Module):
        def forward(self, x: torch.Tensor) -> torch.Tensor:
            seen.append(torch.get_num_threads())
            return x

    before = torch.get_num_threads()
    wanted = 1 if before > 1 else 2
    measure_latency(CountThreads(), (1, 3), device=torch.device("cpu"), threads=wanted)
    assert seen and set(seen) == {wanted}
    assert torch.get_num_threads() == before


def test_measure_latency_restores_modes() -> None:
    net = _net()
    net[1].eval()
    measure_latency(net, (1, 3, 8, 8), device=torch.device("cpu"), warmup=0, repeats=1)
    assert net.training and net[0].training and not net[1].training


@pytest.mark.parametrize(("warmup", "repeats"), [(-1, 1), (0, 0)])
def test_measure_latency_rejects_bad_counts(warmup: int, repeats: int) -> None:
    with pytest.raises(ValueError, match="repeats >= 1"):
        measure_latency(
            _net(), (1, 3, 8, 8), device=torch.device("cpu"), warmup=warmup, repeats=repeats
        )
