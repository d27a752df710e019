"""BN recalibration: exact statistics, restored momentum and modes, untouched RNG."""

from __future__ import annotations

from typing import Any

import pytest
import torch
from torch import nn
from torch.utils.data import Dataset, TensorDataset

from evaluators import recalibrate_batch_norm
from nas.core.errors import ConfigError, NasError

CPU = torch.device("cpu")


def _images(count: int, seed: int = 0) -> TensorDataset:
    generator = torch.Generator().manual_seed(seed)
    images = torch.randn(count, 3, 4, 4, generator=generator) * 2 + 5  # far from (0, 1)
    return TensorDataset(images, torch.zeros(count, dtype=torch.long))


def _stale_norm(momentum: float = 0.3) -> nn.BatchNorm2d:
    norm = nn.BatchNorm2d(3, momentum=momentum)
    assert norm.running_mean is not None and norm.running_var is not None
    norm.running_mean.fill_(-7.0)
    norm.running_var.fill_(42.0)
    return norm


def test_one_batch_gives_its_exact_statistics() -> None:
    data = _images(16)
    norm = _stale_norm()
    recalibrate_batch_norm(norm, data, device=CPU, batches=1, batch_size=16, seed=0)
    images = data.tensors[0]
    assert torch.allclose(norm.running_mean, images.mean(dim=(0, 2, 3)), atol=1e-5)
    # BN keeps the unbiased variance as its running estimate.
    assert torch.allclose(norm.running_var, images.var(dim=(0, 2, 3), unbiased=True), atol=1e-4)
    assert norm.momentum == 0.3
    assert int(norm.num_batches_tracked) == 1


def test_equal_batches_average_to_the_exact_mean_and_stop_at_the_limit() -> None:
    data = _images(64)
    norm = _stale_norm(momentum=0.1)
    recalibrate_batch_norm(norm, data, device=CPU, batches=4, batch_size=16, seed=3)
    # A cumulative average over equal batches: the mean of all examples, stale values gone.
    assert torch.allclose(norm.running_mean, data.tensors[0].mean(dim=(0, 2, 3)), atol=1e-5)
    assert int(norm.num_batches_tracked) == 4
    limited = _stale_norm()
    recalibrate_batch_norm(limited, data, device=CPU, batches=2, batch_size=16, seed=3)
    assert int(limited.num_batches_tracked) == 2


def test_a_short_last_batch_is_dropped() -> None:
    norm = _stale_norm()
    recalibrate_batch_norm(norm, _images(20), device=CPU, batches=8, batch_size=16, seed=0)
    assert int(norm.num_batches_tracked) == 1


class _NoisyImages(Dataset[Any]):
    """Draws from torch's global generator per item, like random augmentation does."""

    def __init__(self, count: int) -> None:
        self.base = _images(count)

    def __len__(self) -> int:
        return len(self.base)

    def __getitem__(self, index: int) -> tuple[torch.Tensor, torch.Tensor]:
        image, label = self.base[index]
        return image + torch.randn(image.shape), label


def test_global_rng_is_untouched_and_calibration_is_repeatable() -> None:
    data = _NoisyImages(32)
    torch.manual_seed(123)
    before = torch.get_rng_state()
    first = _stale_norm()
    recalibrate_batch_norm(first, data, device=CPU, batches=2, batch_size=16, seed=5)
    assert torch.equal(torch.get_rng_state(), before)
    torch.manual_seed(999)  # another global state: same calibration
    second = _stale_norm()
    recalibrate_batch_norm(second, data, device=CPU, batches=2, batch_size=16, seed=5)
    assert torch.equal(first.running_mean, second.running_mean)
    assert torch.equal(first.running_var, second.running_var)
    third = _stale_norm()
    recalibrate_batch_norm(third, data, device=CPU, batches=2, batch_size=16, seed=6)
    assert not torch.equal(first.running_mean, third.running_mean)


def test_modes_and_momenta_are_restored_and_dropout_stays_off() -> None:
    data = _images(16)
    model = nn.Sequential(
        nn.Dropout(0.5), _stale_norm(momentum=0.3), nn.ReLU(), _stale_norm(momentum=0.05)
    )
    model.eval()
    model[3].train()  # a mix of modes must come back as it was
    recalibrate_batch_norm(model, data, device=CPU, batches=1, batch_size=16, seed=0)
    assert [module.training for module in model.modules()] == [False, False, False, False, True]
    assert (model[1].momentum, model[3].momentum) == (0.3, 0.05)
    # Dropout ran in eval mode: the first BN saw the images themselves.
    images = data.tensors[0]
    assert torch.allclose(model[1].running_mean, images.mean(dim=(0, 2, 3)), atol=1e-5)
    assert all(parameter.grad is None for parameter in model.parameters())


def test_model_without_batch_norm_is_left_alone() -> None:
    """No BN layer: nothing to recalibrate, so no forward pass runs and nothing changes."""
    model = nn.Sequential(nn.Conv2d(3, 3, 1))
    before = {k: v.clone() for k, v in model.state_dict().items()}
    calls: list[int] = []
    model.register_forward_hook(lambda *_: calls.append(1))
    model.train()
    recalibrate_batch_norm(model, _images(4), device=CPU, batches=1, batch_size=4, seed=0)
    assert calls == []
    assert model.training
    assert all(torch.equal(before[k], v) for k, v in model.state_dict().items())


def test_empty_dataset_and_bad_counts_are_refused() -> None:
    empty = TensorDataset(torch.zeros(0, 3, 4, 4), torch.zeros(0, dtype=torch.long))
    with pytest.raises(NasError, match="empty training set"):
        recalibrate_batch_norm(_stale_norm(), empty, device=CPU, batches=1, batch_size=4, seed=0)
    with pytest.raises(ConfigError, match="batches=0"):
        recalibrate_batch_norm(
            _stale_norm(), _images(4), device=CPU, batches=0, batch_size=4, seed=0
        )
    with pytest.raises(ConfigError, match="batch_size=True"):
        recalibrate_batch_norm(
            _stale_norm(), _images(4), device=CPU, batches=1, batch_size=True, seed=0
        )
