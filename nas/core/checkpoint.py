"""Training checkpoints that survive crashes and never execute code when read.

A checkpoint is a dict of plain values (tensors, state dicts, numbers, strings, and
lists or dicts of those) written by ``torch.save``. Writing is atomic: a crash or
Ctrl-C mid-write leaves the previous checkpoint in place. Reading goes through
``torch.load(weights_only=True)``, whose unpickler rebuilds tensors and containers
only, so a tampered file cannot run anything.

Imports torch on first use, so ``from nas.core.checkpoint import CheckpointError`` stays cheap.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from nas.core.errors import NasError
from nas.core.files import atomic_write

__all__ = ["CheckpointError", "load_checkpoint", "save_checkpoint"]


class CheckpointError(NasError):
    """A checkpoint file is unreadable or belongs to another run."""


def save_checkpoint(path: Path, payload: dict[str, Any]) -> None:
    """Write ``payload`` to ``path`` atomically, creating parent folders.

    Readers see the old file or the new one, never a mix (``atomic_write``).

    Args:
        path: Where the checkpoint lives.
        payload: Plain values only, so that ``load_checkpoint`` can read them back.

    Raises:
        TypeError: ``payload`` holds a value that a weights-only load would refuse.
    """
    import torch

    # Checked up front: torch.save would happily pickle anything, and the mistake would
    # only surface at the next resume, as a "corrupt checkpoint".
    _check_plain(payload, "payload")

    def write(temporary: Path) -> None:
        with open(temporary, "wb") as stream:
            torch.save(payload, stream)

    atomic_write(Path(path), write)


def load_checkpoint(path: Path) -> dict[str, Any]:
    """Read a checkpoint written by ``save_checkpoint``, with tensors on the CPU.

    Raises:
        CheckpointError: The file is missing, truncated, corrupt, not a dict, or holds
            anything other than plain values (such as a pickled function call).
    """
    import torch

    path = Path(path)
    if not path.is_file():
        raise CheckpointError(f"No checkpoint file at {path}.")
    try:
        payload = torch.load(path, map_location="cpu", weights_only=True)
    except Exception as error:  # any failure means the same to the user
        # torch's own messages span many lines and suggest weights_only=False, which
        # is exactly what must not be done with an untrusted file.
        raise CheckpointError(
            f"Cannot read checkpoint {path} ({type(error).__name__}): it is truncated, "
            "corrupt or not a nas checkpoint. Delete it to restart training from scratch."
        ) from error
    if not isinstance(payload, dict):
        raise CheckpointError(
            f"Checkpoint {path} holds a {type(payload).__name__}, not a dict; it is not a "
            "nas checkpoint. Delete it to restart training from scratch."
        )
    return payload


def _check_plain(value: object, where: str) -> None:
    """Raise ``TypeError`` naming the first value a weights-only load would refuse."""
    import torch

    if value is None or isinstance(value, (bool, int, float, str, torch.Tensor)):
        return
    if isinstance(value, (list, tuple)):
        for index, item in enumerate(value):
            _check_plain(item, f"{where}[{index}]")
        return
    if isinstance(value, dict):
        for key, item in value.items():
            if not isinstance(key, (str, int)):
                raise TypeError(f"Checkpoint keys must be str or int, but {where} has {key!r}.")
            _check_plain(item, f"{where}[{key!r}]")
        return
    raise TypeError(
        f"Checkpoints hold tensors, numbers, strings, lists and dicts only, but "
        f"{where} is a {type(value).__name__}."
    )


def entry(payload: dict[str, Any], key: str, kind: type, path: Path, *, remedy: str) -> Any:
    """``payload[key]`` if it is a ``kind`` (a checkpoint is untrusted input)."""
    value = payload.get(key)
    # bool is an int, but never a valid epoch or step count.
    if not isinstance(value, kind) or (kind is int and isinstance(value, bool)):
        raise CheckpointError(f"Checkpoint {path} lacks a valid '{key}' entry; {remedy}.")
    return value


def check_fingerprint(
    stored: dict[str, Any], current: dict[str, Any], path: Path, *, remedy: str
) -> None:
    """``CheckpointError`` naming the first setting in which the two runs differ."""
    missing = object()
    for key in sorted(set(stored) | set(current)):
        old, new = stored.get(key, missing), current.get(key, missing)
        if old != new:
            was = f"no {key}" if old is missing else f"{key}={old!r}"
            now = f"no {key}" if new is missing else f"{key}={new!r}"
            raise CheckpointError(
                f"Checkpoint {path} was trained with {was}, but this run has {now}; {remedy}."
            )
