"""Atomic, durable file writes: a crash or Ctrl-C leaves the old file or the new one."""

from __future__ import annotations

import contextlib
import os
import tempfile
from collections.abc import Callable
from pathlib import Path

from nas.core.errors import ConfigError


def atomic_write(path: Path, write: Callable[[Path], object]) -> None:
    """Create or replace ``path`` with what ``write(temporary_path)`` writes.

    The temporary file sits in the same folder (a dot name keeps it out of casual
    listings), so the final ``os.replace`` is a rename within one file system, atomic
    on POSIX and Windows. File and folder are flushed to disk first, so the new file
    survives a power loss once this returns. Parent folders are created.
    """
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    handle, name = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".tmp", dir=path.parent)
    os.close(handle)
    temporary = Path(name)
    try:
        write(temporary)
        _fsync(temporary, os.O_RDONLY)
        os.replace(temporary, path)
    finally:
        with contextlib.suppress(OSError):
            os.unlink(temporary)
    _fsync(path.parent, os.O_RDONLY)


def _fsync(target: Path, flags: int) -> None:
    # A folder's fsync makes the rename itself durable on POSIX; Windows cannot open
    # folders, and the file's own fsync is the best it offers.
    try:
        descriptor = os.open(target, flags)
    except OSError:
        return
    try:
        with contextlib.suppress(OSError):
            os.fsync(descriptor)
    finally:
        os.close(descriptor)


def file_in_the_way(folder: Path) -> Path | None:
    """The file among ``folder`` and its parents that keeps ``folder`` from being a
    folder (``/etc/passwd`` for ``/etc/passwd/runs``), or None."""
    return next((part for part in (folder, *folder.parents) if part.is_file()), None)


def check_output_file(path: Path, key: str = "out") -> None:
    """A one-line ``ConfigError`` unless a file can be written at ``path``: it must not be
    a folder, and its folder must be creatable and writable (tried with a scratch file,
    since permission bits say nothing of read-only or virtual file systems)."""
    path = Path(path)
    if path.is_dir():
        example = path / "net.py"
        raise ConfigError(f"{key}={path} is a folder; name a file in it, e.g. {key}={example}.")
    blocking = file_in_the_way(path.parent)
    if blocking is not None:
        raise ConfigError(f"Cannot write {key}={path}: {blocking} is a file, not a folder.")
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        handle, name = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".tmp", dir=path.parent)
        os.close(handle)
        os.unlink(name)
    except OSError as error:
        reason = error.strerror or type(error).__name__
        raise ConfigError(
            f"Cannot write {key}={path} ({reason}); choose a folder you can write to."
        ) from None
