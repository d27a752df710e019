"""The TAS search: network weights and architecture distributions learned in turn.

Dong & Yang, "Network Pruning via Transformable Architecture Search" (NeurIPS 2019).
The training set is split in two fixed halves. Each step, on a batch of the first, the
network weights take an SGD step on the cross-entropy of a search forward pass (two
widths per conv, all depths, Gumbel-sampled); then, on a batch of the second, the
architecture parameters take an Adam step on the cross-entropy plus ``flops_weight``
times the FLOPs loss: ``log E[MACs]`` while the most likely architecture is above the
target, ``-log E[MACs]`` while it is below the target less the tolerance, 0 in between.
The Gumbel temperature anneals from ``tau_max`` to ``tau_min`` (cosine over epochs).

A checkpoint written after every epoch resumes the search exactly: both optimizers, the
weights, the distributions, both data orders and the random state.
"""

from __future__ import annotations

import math
import time
from collections.abc import Callable
from dataclasses import asdict, dataclass, fields
from pathlib import Path
from typing import TYPE_CHECKING, Any, Protocol, cast, runtime_checkable

import torch
from torch import nn
from torch.utils.data import DataLoader, Subset

from evaluators.standalone import TrainingDiverged
from nas.core.checkpoint import (
    CheckpointError,
    check_fingerprint,
    entry,
    load_checkpoint,
    save_checkpoint,
)
from nas.core.errors import NasError

if TYPE_CHECKING:
    from nas.data import DatasetSplits
    from search_spaces.base import DifferentiableSpace

_FORMAT = 1
_RESTART = "delete it to search again from scratch"


@runtime_checkable
class PruningSupernet(Protocol):
    """What the TAS search needs of a ``DifferentiableSpace``'s supernet."""

    def search_forward(self, x: torch.Tensor, tau: float) -> torch.Tensor:
        """Logits of a search step at Gumbel temperature ``tau``."""

    def expected_macs(self) -> torch.Tensor:
        """Expected multiply-adds under the distributions, differentiable in them."""

    def arch_macs(self, arch: Any) -> int:
        """Exact multiply-adds of one architecture."""

    def arch_parameters(self) -> list[nn.Parameter]: ...

    def weight_parameters(self) -> list[nn.Parameter]: ...

    def derive(self) -> Any: ...


@dataclass(frozen=True, kw_only=True)
class SearchSettings:
    """How one TAS search runs (part of the ``tas.*`` settings group)."""

    epochs: int
    batch_size: int
    lr: float
    momentum: float
    weight_decay: float
    arch_lr: float
    arch_weight_decay: float
    tau_max: float
    tau_min: float
    flops_weight: float
    flops_tolerance: float


@dataclass(frozen=True)
class SearchEpoch:
    """One epoch of a TAS search.

    Attributes:
        epoch: Counted from 1.
        weight_loss: Mean cross-entropy of the weights' steps.
        arch_loss: Mean loss of the architecture's steps (cross-entropy + FLOPs loss).
        tau: The Gumbel temperature of the epoch.
        expected_ratio: Expected MACs over the unpruned network's, after the epoch.
        derived_ratio: The most likely architecture's MACs over the unpruned network's.
        seconds: Wall time of the epoch.
    """

    epoch: int
    weight_loss: float
    arch_loss: float
    tau: float
    expected_ratio: float
    derived_ratio: float
    seconds: float


def temperature(settings: SearchSettings, epoch: int) -> float:
    """The Gumbel temperature of ``epoch`` (from 1): ``tau_max`` first, ``tau_min`` last."""
    progress = (epoch - 1) / max(settings.epochs - 1, 1)
    span = settings.tau_max - settings.tau_min
    return settings.tau_min + span * (1 + math.cos(math.pi * progress)) / 2


def flops_loss(
    expected: torch.Tensor, current: float, target: float, tolerance: float
) -> torch.Tensor:
    """The TAS cost loss on the expected MACs, from the current architecture's MACs."""
    if current > target:
        return torch.log(expected)
    if current < target - tolerance:
        return -torch.log(expected)
    return torch.zeros((), device=expected.device)


def search_architecture(
    space: DifferentiableSpace[Any],
    data: DatasetSplits,
    settings: SearchSettings,
    *,
    flops_ratio: float,
    device: torch.device,
    seed: int,
    checkpoint: Path,
    on_epoch: Callable[[SearchEpoch], None] | None = None,
    on_step: Callable[[int, int], None] | None = None,
) -> tuple[Any, list[SearchEpoch]]:
    """Search the pruned architecture of ``space`` with ``flops_ratio`` of its largest
    network's multiply-adds; (the most likely architecture, every epoch's report).

    The same seed gives the same search on the same device, interrupted or not.

    Raises:
        TrainingDiverged: A loss became NaN or infinite.
        CheckpointError: ``checkpoint`` is unreadable or belongs to another search.
        NasError: The space's supernet cannot be searched this way, or the training set
            has fewer than two examples.
    """
    torch.manual_seed(seed)
    supernet = space.supernet(data.spec)
    if not isinstance(supernet, PruningSupernet):
        raise NasError(
            f"The {space.name} supernet cannot be searched by TAS (see PruningSupernet)."
        )
    net = cast(nn.Module, supernet)
    net.to(device)
    halves, orders = _halves(data, settings.batch_size, seed)
    steps = min(len(loader) for loader in halves)
    full = supernet.arch_macs(space.largest())
    target, tolerance = flops_ratio * full, settings.flops_tolerance * full
    weights = torch.optim.SGD(
        supernet.weight_parameters(),
        lr=settings.lr,
        momentum=settings.momentum,
        nesterov=settings.momentum > 0,
        weight_decay=settings.weight_decay,
    )
    arch = torch.optim.Adam(
        supernet.arch_parameters(),
        lr=settings.arch_lr,
        betas=(0.5, 0.999),
        weight_decay=settings.arch_weight_decay,
    )
    fingerprint = {
        "space": space.name,
        "largest": repr(space.encode(space.largest())),
        "data": data.name,
        "num_train": data.num_train,
        "seed": seed,
        "flops_ratio": flops_ratio,
        **{k: v for k, v in asdict(settings).items() if k != "epochs"},
    }
    state = _SearchState(net, weights, arch, orders, fingerprint)
    reports = state.resume(checkpoint, settings.epochs) if checkpoint.exists() else []
    criterion = nn.CrossEntropyLoss()
    total_steps = settings.epochs * steps
    for epoch in range(len(reports) + 1, settings.epochs + 1):
        started = time.perf_counter()
        tau = temperature(settings, epoch)
        net.train()
        sums = torch.zeros(2, device=device)
        # zip stops with the shorter half: `steps` steps.
        for step, ((x, y), (x_arch, y_arch)) in enumerate(zip(*halves, strict=False), start=1):
            global_step = (epoch - 1) * steps + step - 1
            for group in weights.param_groups:  # cosine to 0 over the search, per step
                group["lr"] = settings.lr * (1 + math.cos(math.pi * global_step / total_steps)) / 2
            x, y, x_arch, y_arch = (t.to(device) for t in (x, y, x_arch, y_arch))
            weights.zero_grad(set_to_none=True)
            weight_loss = criterion(supernet.search_forward(x, tau), y)
            weight_loss.backward()
            weights.step()
            arch.zero_grad(set_to_none=True)
            current = supernet.arch_macs(supernet.derive())
            cost = flops_loss(supernet.expected_macs(), current, target, tolerance)
            arch_loss = criterion(supernet.search_forward(x_arch, tau), y_arch)
            arch_loss = arch_loss + settings.flops_weight * cost
            arch_loss.backward()
            arch.step()
            sums += torch.stack([weight_loss.detach(), arch_loss.detach()])
            if on_step is not None:
                on_step(step, steps)
        means = (sums / steps).tolist()
        if not all(math.isfinite(value) for value in means):
            raise TrainingDiverged(
                f"TAS search loss became {means} at epoch {epoch}; lower tas.lr={settings.lr:g}."
            )
        with torch.no_grad():
            expected = float(supernet.expected_macs()) / full
        report = SearchEpoch(
            epoch=epoch,
            weight_loss=means[0],
            arch_loss=means[1],
            tau=tau,
            expected_ratio=expected,
            derived_ratio=supernet.arch_macs(supernet.derive()) / full,
            seconds=time.perf_counter() - started,
        )
        reports.append(report)
        save_checkpoint(checkpoint, state.snapshot(reports))
        if on_epoch is not None:
            on_epoch(report)
    derived = supernet.derive()
    space.validate(derived)
    return derived, reports


def _halves(
    data: DatasetSplits, batch_size: int, seed: int
) -> tuple[list[DataLoader[Any]], list[torch.Generator]]:
    """Loaders over two fixed halves of the training set (weights; architecture)."""
    count = data.num_train
    if count < 2:
        raise NasError("A TAS search needs at least 2 training examples; add examples.")
    order = torch.randperm(count, generator=torch.Generator().manual_seed(seed)).tolist()
    loaders, orders = [], []
    for stream, indices in enumerate((order[: count // 2], order[count // 2 :])):
        generator = torch.Generator().manual_seed(seed * 2 + stream)
        subset = Subset(data.train, indices)
        loaders.append(
            DataLoader(
                subset, batch_size=batch_size, shuffle=True, generator=generator, num_workers=0
            )
        )
        orders.append(generator)
    return loaders, orders


@dataclass
class _SearchState:
    """What a search checkpoint holds, and how it is checked and put back."""

    net: nn.Module
    weights: torch.optim.Optimizer
    arch: torch.optim.Optimizer
    orders: list[torch.Generator]
    fingerprint: dict[str, Any]

    def snapshot(self, reports: list[SearchEpoch]) -> dict[str, Any]:
        return {
            "format": _FORMAT,
            "fingerprint": self.fingerprint,
            "reports": [asdict(report) for report in reports],
            "supernet": self.net.state_dict(),
            "weights": self.weights.state_dict(),
            "arch": self.arch.state_dict(),
            "orders": [order.get_state() for order in self.orders],
            "torch_rng": torch.get_rng_state(),
        }

    def resume(self, path: Path, epochs: int) -> list[SearchEpoch]:
        """Load the checkpoint at ``path``; the epochs it holds."""
        payload = load_checkpoint(path)
        if payload.get("format") != _FORMAT:
            raise CheckpointError(f"Checkpoint {path} has an unknown format; {_RESTART}.")
        get = lambda key, kind: entry(payload, key, kind, path, remedy=_RESTART)  # noqa: E731
        check_fingerprint(get("fingerprint", dict), self.fingerprint, path, remedy=_RESTART)
        keys = {field.name for field in fields(SearchEpoch)}
        raw = get("reports", list)
        if len(raw) > epochs or not all(
            isinstance(r, dict)
            and set(r) == keys
            and all(isinstance(v, (int, float)) for v in r.values())
            for r in raw
        ):
            raise CheckpointError(f"Checkpoint {path} has malformed epoch reports; {_RESTART}.")
        orders = get("orders", list)
        try:
            self.net.load_state_dict(get("supernet", dict))
            self.weights.load_state_dict(get("weights", dict))
            self.arch.load_state_dict(get("arch", dict))
            for order, saved in zip(self.orders, orders, strict=True):
                order.set_state(saved)
            torch.set_rng_state(get("torch_rng", torch.Tensor))
        except (RuntimeError, ValueError, TypeError, KeyError) as error:
            detail = " ".join(str(error).split())[:200]
            raise CheckpointError(
                f"Checkpoint {path} does not fit this search ({detail}); {_RESTART}."
            ) from error
        return [SearchEpoch(**r) for r in raw]
