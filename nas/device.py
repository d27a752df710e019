"""Turn the ``device`` setting into a torch device, failing clearly when it is absent."""

from __future__ import annotations

from typing import TYPE_CHECKING

from nas.errors import ConfigError

if TYPE_CHECKING:
    import torch


def resolve_device(name: str) -> torch.device:
    """``auto`` picks the first CUDA GPU when there is one, else the CPU."""
    import torch

    if name == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    if name == "cpu":
        return torch.device("cpu")
    if not torch.cuda.is_available():
        raise ConfigError(
            f"device={name} but torch sees no CUDA GPU. Use device=cpu or device=auto."
        )
    device = torch.device(name)
    count = torch.cuda.device_count()
    if device.index is not None and device.index >= count:
        raise ConfigError(
            f"device={name} but only {count} GPU(s) exist: use cuda:0..cuda:{count - 1}."
        )
    return device
