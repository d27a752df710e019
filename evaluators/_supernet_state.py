"""What a supernet checkpoint holds, and how it is checked and put back.

A checkpoint must be readable by ``torch.load(weights_only=True)``, so everything in it
is a tensor, a number, a string, or a list or dict of those: the numpy generator's state
(which holds 128-bit integers) travels as a JSON string.
"""

from __future__ import annotations

import json
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np
import torch
from torch import nn

from nas.core.checkpoint import CheckpointError, check_fingerprint, entry

if TYPE_CHECKING:
    from evaluators.supernet import SupernetSettings
    from nas.data import DatasetSplits
    from search_spaces.base import WeightSharingSpace

# Bumped whenever the payload changes shape, so an old file is refused by name.
FORMAT = 1
_RESTART = "delete it to train the supernet from scratch"
_DETAIL_CHARS = 300

Fingerprint = dict[str, Any]


@dataclass(frozen=True)
class Restored:
    """The progress read back from a checkpoint."""

    epoch: int
    reports: list[dict[str, Any]]


def make_fingerprint(
    space: WeightSharingSpace[Any], data: DatasetSplits, settings: SupernetSettings, seed: int
) -> Fingerprint:
    """Everything that must match for a checkpoint to continue this run.

    ``epochs`` is left out: the schedule does not depend on it, so a finished supernet
    can be trained for more epochs. The device is left out too: a run may move from one
    machine to another (exactness then holds per device only).
    """
    fingerprint: Fingerprint = {
        "space": space.name,
        "largest": json.dumps(space.encode(space.largest()), sort_keys=True),
        "smallest": json.dumps(space.encode(space.smallest()), sort_keys=True),
        "data": data.name,
        "num_train": data.num_train,
        "num_val": data.num_val,
        "in_channels": data.spec.in_channels,
        "num_classes": data.spec.num_classes,
        "image_size": data.spec.image_size,
        "seed": seed,
    }
    fingerprint.update(
        (name, value)
        for name, value in settings.as_dict().items()
        if name != "epochs" and _ADDED_LATER.get(name, _UNSET) != value
    )
    return fingerprint


_UNSET = object()
# Settings added after checkpoints existed: at these values they leave no mark, so that a
# checkpoint written before them still continues the same run.
_ADDED_LATER: dict[str, Any] = {
    "sampling": "sandwich",
    "sub_batches": 4,
    "distill": False,
    "optimizer": "sgd",
}


def snapshot(
    *,
    fingerprint: Fingerprint,
    epoch: int,
    step: int,
    supernet: nn.Module,
    optimizer: torch.optim.Optimizer,
    data_order: torch.Generator,
    children: np.random.Generator,
    device: torch.device,
    reports: Sequence[Mapping[str, Any]],
) -> dict[str, Any]:
    """The checkpoint payload after ``epoch`` epochs (``step`` steps) of training."""
    return {
        "format": FORMAT,
        "fingerprint": dict(fingerprint),
        "epoch": epoch,
        "step": step,
        "supernet": supernet.state_dict(),
        "optimizer": optimizer.state_dict(),
        "data_order": data_order.get_state(),
        "children": json.dumps(children.bit_generator.state),
        "torch_rng": torch.get_rng_state(),
        "cuda_rng": torch.cuda.get_rng_state(device) if device.type == "cuda" else None,
        "reports": [dict(report) for report in reports],
    }


def restore(
    payload: dict[str, Any],
    path: Path,
    *,
    fingerprint: Fingerprint,
    settings: SupernetSettings,
    steps_per_epoch: int,
    supernet: nn.Module,
    optimizer: torch.optim.Optimizer,
    data_order: torch.Generator,
    children: np.random.Generator,
    device: torch.device,
    report_keys: Sequence[str],
) -> Restored:
    """Check ``payload`` against this run, then load it into the given objects.

    Everything is checked before anything is loaded, except the state dicts, which
    only their own ``load_state_dict`` can check.

    Raises:
        CheckpointError: The payload is malformed, belongs to another run, or holds
            more epochs than ``settings.epochs``.
    """
    if payload.get("format") != FORMAT:
        raise CheckpointError(
            f"Checkpoint {path} has format {payload.get('format')!r}, not "
            f"{FORMAT}: it was written by another version; {_RESTART}."
        )
    check_fingerprint(
        _get(payload, "fingerprint", dict, path),
        dict(fingerprint),
        path,
        remedy="use a new study, or delete the file to train from scratch",
    )
    epoch = _get(payload, "epoch", int, path)
    if epoch > settings.epochs:
        raise CheckpointError(
            f"Checkpoint {path} holds {epoch} epochs, more than epochs="
            f"{settings.epochs}; raise epochs, or {_RESTART}."
        )
    if epoch < 1 or _get(payload, "step", int, path) != epoch * steps_per_epoch:
        raise CheckpointError(
            f"Checkpoint {path} has an inconsistent epoch or step count; {_RESTART}."
        )
    reports = _get(payload, "reports", list, path)
    expected = set(report_keys)
    if len(reports) != epoch or not all(
        isinstance(report, dict)
        and set(report) == expected
        and all(isinstance(value, (int, float)) for value in report.values())
        for report in reports
    ):
        raise CheckpointError(f"Checkpoint {path} has malformed epoch reports; {_RESTART}.")
    torch_rng = _get(payload, "torch_rng", torch.Tensor, path)
    cuda_rng = payload.get("cuda_rng")
    try:
        supernet.load_state_dict(_get(payload, "supernet", dict, path), strict=True)
        optimizer.load_state_dict(_get(payload, "optimizer", dict, path))
        data_order.set_state(_get(payload, "data_order", torch.Tensor, path))
        children.bit_generator.state = json.loads(_get(payload, "children", str, path))
        torch.set_rng_state(torch_rng)
        # A CPU checkpoint resumed on CUDA keeps the freshly seeded CUDA generator.
        if device.type == "cuda" and isinstance(cuda_rng, torch.Tensor):
            torch.cuda.set_rng_state(cuda_rng, device)
    except (RuntimeError, ValueError, TypeError, KeyError) as error:
        # load_state_dict lists every mismatched key over several lines; one short line
        # with the first few is enough to see what is wrong.
        detail = " ".join(str(error).split())
        if len(detail) > _DETAIL_CHARS:
            detail = detail[: _DETAIL_CHARS - 3] + "..."
        raise CheckpointError(
            f"Checkpoint {path} does not fit this supernet ({detail}); {_RESTART}."
        ) from error
    return Restored(epoch=epoch, reports=reports)


def _get(payload: dict[str, Any], key: str, kind: type, path: Path) -> Any:
    return entry(payload, key, kind, path, remedy=_RESTART)
