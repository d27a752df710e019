"""LC-PFN network and training: attention masking, batching, learning, exact resume."""

from __future__ import annotations

import dataclasses
from pathlib import Path
from typing import Any

import numpy as np
import pytest
import torch

from evaluators.lcpfn import LCPFN, LCPFNConfig, LCPFNTrainSettings, train_lcpfn
from nas.core.checkpoint import CheckpointError, load_checkpoint
from nas.core.errors import ConfigError

CPU = torch.device("cpu")
TINY = LCPFNConfig(emsize=32, layers=2, heads=2, hidden=64, buckets=50, length=20)


def _settings(**overrides: Any) -> LCPFNTrainSettings:
    values: dict[str, Any] = {
        "steps": 6,
        "batch_size": 8,
        "lr": 1e-3,
        "warmup_steps": 2,
        "border_curves": 500,
        "checkpoint_every": 1000,
        "seed": 3,
    }
    return LCPFNTrainSettings(**{**values, **overrides})


@pytest.fixture
def model() -> LCPFN:
    torch.manual_seed(0)
    return LCPFN(TINY).eval()


def _curves(batch: int, seed: int = 0) -> torch.Tensor:
    generator = torch.Generator().manual_seed(seed)
    return torch.rand(batch, TINY.length, generator=generator)


def test_query_inputs_do_not_change_any_output(model: LCPFN) -> None:
    values = _curves(3)
    epochs = torch.arange(1, TINY.length + 1, dtype=torch.float32).expand(3, -1)
    observed = torch.arange(TINY.length) < torch.tensor([[4], [9], [1]])
    before = model(epochs, values, observed)
    changed = values.clone()
    changed[~observed] = torch.rand(int((~observed).sum())) * 5
    after = model(epochs, changed, observed)
    torch.testing.assert_close(after, before, rtol=0, atol=0)


def test_values_past_the_cut_point_are_ignored(model: LCPFN) -> None:
    values = _curves(3)
    lengths = torch.tensor([3, 7, 12])
    queries = torch.tensor([13, 15, 20])
    before = model.predict(values[:, :12], queries, lengths=lengths)
    padded = values[:, :12].clone()
    padded[0, 3:] = -4.0
    padded[1, 7:] = 9.0
    after = model.predict(padded, queries, lengths=lengths)
    torch.testing.assert_close(after, before, rtol=0, atol=0)
    # A value inside the prefix does matter, so the test above can fail.
    padded[0, 1] += 0.5
    assert not torch.equal(model.predict(padded, queries, lengths=lengths)[0], before[0])


def test_each_query_is_predicted_from_the_prefix_alone(model: LCPFN) -> None:
    curve = _curves(1)[0, :5]
    together = model.predict([curve], [6, 10, 20])
    alone = torch.cat([model.predict([curve], [epoch]) for epoch in (6, 10, 20)], dim=1)
    torch.testing.assert_close(together, alone, rtol=1e-5, atol=1e-5)


def test_a_batch_of_different_lengths_matches_each_curve_alone(model: LCPFN) -> None:
    values = _curves(4, seed=1)
    prefixes = [values[0, :1], values[1, :5], values[2, :19], values[3, :10]]
    queries = torch.tensor([[2, 8, 20], [6, 7, 20], [20, 20, 20], [11, 15, 19]])
    batched = model.predict(prefixes, queries)
    assert batched.shape == (4, 3, TINY.buckets)
    for row, prefix in enumerate(prefixes):
        alone = model.predict([prefix], queries[row])
        torch.testing.assert_close(batched[row], alone[0], rtol=1e-5, atol=1e-5)
    # The list form and the padded form with lengths agree (up to float summation order:
    # the two are padded to different widths).
    padded = model.predict(values, queries, lengths=[1, 5, 19, 10])
    torch.testing.assert_close(padded, batched, rtol=1e-6, atol=1e-6)


def test_predict_refuses_an_empty_prefix(model: LCPFN) -> None:
    with pytest.raises(ConfigError, match="lengths must hold"):
        model.predict(_curves(2), [20], lengths=[0, 3])


def test_training_on_the_prior_lowers_the_loss(tmp_path: Path) -> None:
    # Measured: the mean loss falls from about 0.0 (first 10 steps) to about -0.7 (last 20)
    # over seeds 0-3; the bound keeps a wide margin.
    losses: list[float] = []
    settings = _settings(steps=200, batch_size=32, warmup_steps=10, border_curves=2000)
    model = train_lcpfn(
        TINY,
        settings,
        checkpoint=tmp_path / "lcpfn.pt",
        device=CPU,
        on_step=lambda step, steps, loss: losses.append(loss),
    )
    assert len(losses) == 200
    assert np.mean(losses[-20:]) < np.mean(losses[:10]) - 0.4
    assert not model.training
    # The fitted borders travel with the model and the checkpoint.
    stored = load_checkpoint(tmp_path / "lcpfn.pt")
    torch.testing.assert_close(stored["borders"], model.distribution.borders)
    assert stored["step"] == 200


def test_resume_is_bitwise_identical_to_an_uninterrupted_run(tmp_path: Path) -> None:
    # Dropout makes the resumed run depend on torch's generator as well as the prior's.
    config = dataclasses.replace(TINY, dropout=0.1)
    whole = train_lcpfn(config, _settings(), checkpoint=tmp_path / "whole.pt", device=CPU)

    class Stop(Exception):
        pass

    def stop_after_three(step: int, steps: int, loss: float) -> None:
        if step == 3:
            raise Stop

    path = tmp_path / "split.pt"
    with pytest.raises(Stop):
        train_lcpfn(
            config,
            _settings(checkpoint_every=3),
            checkpoint=path,
            device=CPU,
            on_step=stop_after_three,
        )
    assert load_checkpoint(path)["step"] == 3
    torch.manual_seed(12345)  # the resumed run must not depend on the global state
    steps: list[int] = []
    resumed = train_lcpfn(
        config,
        _settings(checkpoint_every=3),
        checkpoint=path,
        device=CPU,
        on_step=lambda step, total, loss: steps.append(step),
    )
    assert steps == [4, 5, 6]
    for (name, a), (_, b) in zip(
        whole.state_dict().items(), resumed.state_dict().items(), strict=True
    ):
        assert torch.equal(a, b), name


def test_a_checkpoint_from_other_settings_is_refused(tmp_path: Path) -> None:
    path = tmp_path / "lcpfn.pt"
    train_lcpfn(TINY, _settings(steps=2), checkpoint=path, device=CPU)
    with pytest.raises(CheckpointError, match=r"lr=0\.001, but this run has lr=0\.002"):
        train_lcpfn(TINY, _settings(steps=2, lr=2e-3), checkpoint=path, device=CPU)
    with pytest.raises(CheckpointError, match="emsize=32"):
        bigger = LCPFNConfig(emsize=64, layers=2, heads=2, hidden=64, buckets=50, length=20)
        train_lcpfn(bigger, _settings(steps=2), checkpoint=path, device=CPU)


@pytest.mark.parametrize(
    ("overrides", "message"),
    [
        ({"steps": 0}, "steps must be an integer >= 1"),
        ({"batch_size": 2.5}, "batch_size must be an integer"),
        ({"lr": 0.0}, "lr must be a number > 0"),
        ({"warmup_steps": -1}, "warmup_steps must be an integer >= 0"),
        ({"checkpoint_every": 0}, "checkpoint_every must be"),
        ({"grad_clip": float("nan")}, "grad_clip must be"),
    ],
)
def test_settings_are_validated(overrides: dict[str, Any], message: str) -> None:
    with pytest.raises(ConfigError, match=message):
        _settings(**overrides)


@pytest.mark.parametrize(
    ("overrides", "message"),
    [
        ({"heads": 3}, "heads must divide emsize"),
        ({"length": 1}, "length must be an integer >= 2"),
        ({"dropout": 1.0}, "dropout must be"),
        ({"buckets": 0}, "buckets must be"),
    ],
)
def test_config_is_validated(overrides: dict[str, Any], message: str) -> None:
    with pytest.raises(ConfigError, match=message):
        LCPFNConfig(**{"emsize": 32, "heads": 2, **overrides})


def test_borders_must_match_the_bucket_count() -> None:
    with pytest.raises(ConfigError, match="51 edges"):
        LCPFN(TINY, torch.linspace(0, 1, 11))
