"""Ctrl-C that always stops a search.

Python raises ``KeyboardInterrupt`` wherever the main thread happens to be when SIGINT
arrives; inside a weakref or ``__del__`` callback the exception is printed as "ignored"
and lost, and the search would run on to the end. The handler installed by
:func:`stop_on_ctrl_c` raises it as usual and also sets a flag, which the search checks
at every step, epoch and trial (:func:`raise_if_interrupted`), so a lost exception is
raised again at the next of those points.
"""

from __future__ import annotations

import signal
import threading
from collections.abc import Iterator
from contextlib import contextmanager
from types import FrameType

_requested = threading.Event()


def request_stop() -> None:
    """What Ctrl-C does besides raising: the search stops at its next check."""
    _requested.set()


def raise_if_interrupted() -> None:
    """``KeyboardInterrupt`` if Ctrl-C was pressed, even if its exception was lost."""
    if _requested.is_set():
        raise KeyboardInterrupt


def _on_sigint(signum: int, frame: FrameType | None) -> None:
    request_stop()
    raise KeyboardInterrupt


@contextmanager
def stop_on_ctrl_c() -> Iterator[None]:
    """Within: Ctrl-C raises and is remembered (main thread only: signal handlers can
    only be set there; a Ray trial's thread relies on Ray stopping it)."""
    _requested.clear()
    if threading.current_thread() is not threading.main_thread():
        yield
        return
    previous = signal.signal(signal.SIGINT, _on_sigint)
    try:
        yield
    finally:
        signal.signal(signal.SIGINT, previous)
        _requested.clear()
