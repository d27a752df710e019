"""The TAS search and distillation: exact resume of the search and of the teacher,
the FLOPs loss, the distillation loss, and the baselines at a FLOPs target."""

from __future__ import annotations

from pathlib import Path
from typing import Any, cast

import pytest
import torch
import torch.nn.functional as F
from torch.utils.data import TensorDataset

from evaluators.standalone import train_standalone
from evaluators.tas import DistillationLoss, TASSettings, uniform_target
from evaluators.tas_search import SearchEpoch, flops_loss, search_architecture, temperature
from nas.core.checkpoint import CheckpointError
from nas.data import DatasetSplits
from search_spaces import DataSpec, create_space
from search_spaces.tas import TASSpace

CPU = torch.device("cpu")
SPACE = cast(TASSpace, create_space("tas", preset="digits"))
SETTINGS = TASSettings(search_epochs=3, batch_size=16, tau_max=5.0)


pytestmark = pytest.mark.usefixtures("one_torch_thread")


def noise(count: int = 96) -> DatasetSplits:
    generator = torch.Generator().manual_seed(0)
    inputs = torch.randn(count, 1, 8, 8, generator=generator)
    targets = torch.randint(0, 10, (count,), generator=generator)
    return DatasetSplits(
        name="noise",
        train=TensorDataset(inputs, targets),
        val=TensorDataset(inputs[:32], targets[:32]),
        spec=DataSpec(in_channels=1, num_classes=10, image_size=8),
        num_train=count,
        num_val=32,
    )


class Interrupt(Exception):
    pass


def _search(checkpoint: Path, stop_after: int | None = None) -> tuple[Any, list[SearchEpoch]]:
    def on_epoch(report: SearchEpoch) -> None:
        if report.epoch == stop_after:
            raise Interrupt

    return search_architecture(
        SPACE,
        noise(),
        SETTINGS.search(),
        flops_ratio=0.5,
        device=CPU,
        seed=7,
        checkpoint=checkpoint,
        on_epoch=on_epoch,
    )


def test_an_interrupted_search_resumes_exactly(tmp_path: Path) -> None:
    whole, reports = _search(tmp_path / "whole.ckpt")
    with pytest.raises(Interrupt):
        _search(tmp_path / "cut.ckpt", stop_after=2)
    resumed, resumed_reports = _search(tmp_path / "cut.ckpt")
    assert resumed == whole
    strip = [{**vars(r), "seconds": 0} for r in reports]
    assert [{**vars(r), "seconds": 0} for r in resumed_reports] == strip
    a = torch.load(tmp_path / "whole.ckpt", weights_only=True)["supernet"]
    b = torch.load(tmp_path / "cut.ckpt", weights_only=True)["supernet"]
    assert all(torch.equal(a[name], b[name]) for name in a)  # bit for bit
    assert [r.tau for r in reports] == [5.0, pytest.approx(2.55), 0.1]


def test_a_search_checkpoint_of_another_target_is_refused(tmp_path: Path) -> None:
    _search(tmp_path / "s.ckpt", stop_after=None)
    with pytest.raises(CheckpointError, match="flops_ratio"):
        search_architecture(
            SPACE,
            noise(),
            SETTINGS.search(),
            flops_ratio=0.6,
            device=CPU,
            seed=7,
            checkpoint=tmp_path / "s.ckpt",
        )


def test_the_flops_loss_pushes_towards_the_target_band() -> None:
    expected = torch.tensor(50.0, requires_grad=True)
    assert flops_loss(expected, current=60, target=50, tolerance=5).item() == pytest.approx(
        torch.log(torch.tensor(50.0)).item()
    )
    assert flops_loss(expected, current=40, target=50, tolerance=5).item() < 0  # grow
    assert flops_loss(expected, current=47, target=50, tolerance=5).item() == 0
    assert temperature(SETTINGS.search(), 1) == 5.0


def test_teacher_training_resumes_exactly_from_its_checkpoint(tmp_path: Path) -> None:
    settings = SETTINGS.training()

    def train(path: Path, stop: int | None = None) -> tuple[list[float], dict[str, Any]]:
        torch.manual_seed(0)
        model = SPACE.build(SPACE.largest(), noise().spec)

        def on_epoch(report: Any) -> None:
            if report.epoch == stop:
                raise Interrupt

        curve = train_standalone(
            model, noise(), settings, epochs=3, device=CPU, seed=3, checkpoint=path,
            on_epoch=on_epoch,
        )  # fmt: skip
        return curve, model.state_dict()

    whole, weights = train(tmp_path / "a.ckpt")
    with pytest.raises(Interrupt):
        train(tmp_path / "b.ckpt", stop=2)
    resumed, resumed_weights = train(tmp_path / "b.ckpt")
    assert resumed == whole
    assert all(torch.equal(weights[k], resumed_weights[k]) for k in weights)


def test_distillation_loss_is_the_papers_formula() -> None:
    torch.manual_seed(0)
    teacher = torch.nn.Linear(4, 3)
    x, y = torch.randn(5, 4), torch.randint(0, 3, (5,))
    student = torch.randn(5, 3)
    loss = DistillationLoss(teacher, alpha=0.9, temperature=4.0)(student, x, y)
    t = teacher(x).detach()
    p = F.softmax(t / 4, dim=1)
    kl = (p * (p.log() - F.log_softmax(student / 4, dim=1))).sum(1).mean()
    assert loss.item() == pytest.approx(
        0.1 * F.cross_entropy(student, y).item() + 0.9 * 16 * kl.item(), rel=1e-5
    )
    plain = DistillationLoss(teacher, alpha=0.0, temperature=4.0)(student, x, y)
    assert plain.item() == pytest.approx(F.cross_entropy(student, y).item())


def test_uniform_scaling_is_the_widest_within_the_target() -> None:
    data = noise()
    full = SPACE.macs(SPACE.largest(), data.spec)
    arch = uniform_target(SPACE, data, 0.5)
    assert SPACE.macs(arch, data.spec) <= 0.5 * full
    tenths = next(t for t in range(3, 11) if SPACE.uniform(t) == arch)
    assert SPACE.macs(SPACE.uniform(tenths + 1), data.spec) > 0.5 * full
