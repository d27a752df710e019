"""Multi-architectural sampling (ViT-ResNAS) in the shared supernet trainer."""

from __future__ import annotations

from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any

import numpy as np
import pytest
import torch
import torch.nn.functional as F
from torch.utils.data import Subset

from evaluators._supernet_state import make_fingerprint
from evaluators.supernet import SupernetSettings, train_supernet
from evaluators.supernet_steps import ChildPerChunk, MultiArchSampling, StepContext, adamw
from nas.core.errors import ConfigError
from nas.data import DatasetSplits, load_dataset
from search_spaces import create_space
from search_spaces.vit_resnas import ViTResArch, ViTResNASSpace

CPU = torch.device("cpu")
SPACE: ViTResNASSpace = create_space("vit_resnas", preset="tiny")  # type: ignore[assignment]
QUICK = SupernetSettings(
    epochs=2,
    batch_size=64,
    lr=2e-3,
    sampling="multi_arch",
    sub_batches=3,
    optimizer="adamw",
    weight_decay=0.05,
    dropout=0.0,
    drop_connect=0.1,
    calibration_batches=2,
)


@pytest.fixture(scope="module")
def small() -> DatasetSplits:
    digits = load_dataset("digits")
    return replace(
        digits,
        train=Subset(digits.train, range(192)),
        val=Subset(digits.val, range(64)),
        num_train=192,
        num_val=64,
    )


def _supernet(seed: int = 0) -> Any:
    torch.manual_seed(seed)
    return SPACE.supernet(load_dataset("digits").spec)


@dataclass(frozen=True)
class _ScriptedChildren(StepContext):
    """A step context whose "random" children are given in advance."""

    script: list[ViTResArch] = field(default_factory=list)

    def random_child(self) -> ViTResArch:
        return self.script.pop(0)


def test_each_sub_batch_trains_its_own_child() -> None:
    """One step's gradient is the sum over the children of each one's gradient on its
    share of the batch (example i to child i mod n), so every child learns from its own
    examples and only from them."""
    settings = replace(QUICK, drop_connect=0.0, sub_batches=2, label_smoothing=0.0)
    net = _supernet()
    children: list[ViTResArch] = [SPACE.largest(), SPACE.smallest()]
    chunks = ChildPerChunk(net)
    rng = np.random.default_rng(0)
    params = list(net.parameters())
    context = _ScriptedChildren(SPACE, net, chunks, settings, params, rng, chunks, [*children])
    inputs, targets = torch.randn(10, 1, 8, 8), torch.randint(0, 10, (10,))
    total = MultiArchSampling(context).step(inputs, targets)
    stepped = {name: p.grad.clone() for name, p in net.named_parameters() if p.grad is not None}

    net.zero_grad(set_to_none=True)
    expected_loss = 0.0
    for k, child in enumerate(children):  # example i goes to child i mod 2
        chunk, labels = inputs[k::2], targets[k::2]
        net.set_active(child)
        loss = F.cross_entropy(net(chunk), labels, reduction="sum") / len(targets)
        loss.backward()
        expected_loss += float(loss.detach()) * len(targets)
    reference = {name: p.grad for name, p in net.named_parameters() if p.grad is not None}
    assert stepped.keys() == reference.keys()
    for name, grad in reference.items():
        torch.testing.assert_close(stepped[name], grad, rtol=1e-5, atol=1e-7, msg=name)
    assert float(total) == pytest.approx(expected_loss, rel=1e-5)
    # A block that only the largest child runs learns from the first chunk alone.
    assert "stages.0.1.mlp.fc1.weight" in stepped


def test_resume_gives_bitwise_identical_weights(small: DatasetSplits, tmp_path: Path) -> None:
    straight = _supernet()
    expected = train_supernet(
        SPACE, straight, small, QUICK, device=CPU, seed=3, checkpoint=tmp_path / "a.ckpt"
    )
    checkpoint = tmp_path / "b.ckpt"
    train_supernet(
        SPACE, _supernet(), small, replace(QUICK, epochs=1), device=CPU, seed=3,
        checkpoint=checkpoint,
    )  # fmt: skip
    torch.manual_seed(999)
    resumed = _supernet(seed=5)
    reports = train_supernet(
        SPACE, resumed, small, QUICK, device=CPU, seed=3, checkpoint=checkpoint
    )
    for (name, mine), theirs in zip(
        resumed.state_dict().items(), straight.state_dict().values(), strict=True
    ):
        assert torch.equal(mine, theirs), name
    assert [r.resumed for r in reports] == [True, False]
    assert [r.loss for r in reports] == [r.loss for r in expected]


def test_distillation_from_the_biggest_child(small: DatasetSplits, tmp_path: Path) -> None:
    settings = replace(QUICK, epochs=1, distill=True)
    reports = train_supernet(
        SPACE, _supernet(), small, settings, device=CPU, seed=0, checkpoint=tmp_path / "d.ckpt"
    )
    plain = train_supernet(
        SPACE, _supernet(), small, replace(settings, distill=False), device=CPU, seed=0,
        checkpoint=tmp_path / "p.ckpt",
    )  # fmt: skip
    assert np.isfinite(reports[0].loss) and reports[0].loss != plain[0].loss


def test_new_settings_leave_old_checkpoints_valid(small: DatasetSplits) -> None:
    """Defaults of the settings added for ViT-ResNAS leave no mark in the fingerprint, so
    a BigNAS checkpoint written before them still resumes."""
    default = make_fingerprint(SPACE, small, SupernetSettings(), seed=0)
    assert not {"sampling", "sub_batches", "distill", "optimizer"} & default.keys()
    multi = make_fingerprint(SPACE, small, QUICK, seed=0)
    assert multi["sampling"] == "multi_arch" and multi["optimizer"] == "adamw"


def test_adamw_decays_weights_not_biases_or_norms() -> None:
    net = _supernet()
    params = list(net.parameters())
    optimizer = adamw(params, QUICK)
    decayed, plain = optimizer.param_groups
    assert decayed["weight_decay"] == QUICK.weight_decay and plain["weight_decay"] == 0.0
    assert all(p.dim() > 1 for p in decayed["params"])
    assert all(p.dim() <= 1 for p in plain["params"])
    assert len(decayed["params"]) + len(plain["params"]) == len(params)


@pytest.mark.parametrize(
    ("field", "value"), [("sampling", "sandwhich"), ("sub_batches", 0), ("optimizer", "adam")]
)
def test_settings_are_checked(field: str, value: Any) -> None:
    with pytest.raises(ConfigError, match=field):
        SupernetSettings(**{field: value})
