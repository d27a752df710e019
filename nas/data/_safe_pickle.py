"""Read the CIFAR-10 python pickles without letting them run code.

``pickle.load`` calls whatever function a file names, so a tampered download could
run anything. This unpickler resolves only the few numpy names that an array needs
to rebuild itself and refuses every other global.
"""

from __future__ import annotations

import codecs
import importlib
import pickle
from collections.abc import Callable
from pathlib import Path
from typing import Any, BinaryIO

import numpy as np

from nas.core.errors import DataError


def _numpy_core(module: str, name: str) -> Callable[..., Any]:
    # numpy 2 renamed numpy.core to numpy._core and warns on the old name; the CIFAR
    # files (written by numpy 1 under Python 2) still use the old one.
    for prefix in ("numpy._core", "numpy.core"):
        try:
            found: Callable[..., Any] = getattr(importlib.import_module(f"{prefix}.{module}"), name)
            return found
        except (ImportError, AttributeError):
            continue
    raise ImportError(f"numpy has no {module}.{name}")


# (module, name) as written in the file -> how to resolve it. Each entry only builds
# arrays or dtypes, or encodes a string (pickle protocol 2 writes bytes that way).
_ALLOWED: dict[tuple[str, str], Callable[[], Any]] = {
    ("numpy", "ndarray"): lambda: np.ndarray,
    ("numpy", "dtype"): lambda: np.dtype,
    ("numpy.core.multiarray", "_reconstruct"): lambda: _numpy_core("multiarray", "_reconstruct"),
    ("numpy._core.multiarray", "_reconstruct"): lambda: _numpy_core("multiarray", "_reconstruct"),
    ("numpy.core.numeric", "_frombuffer"): lambda: _numpy_core("numeric", "_frombuffer"),
    ("numpy._core.numeric", "_frombuffer"): lambda: _numpy_core("numeric", "_frombuffer"),
    ("_codecs", "encode"): lambda: codecs.encode,
}


class _NumpyOnlyUnpickler(pickle.Unpickler):
    """An unpickler whose globals are limited to ``_ALLOWED``."""

    def __init__(self, file: BinaryIO, path: Path) -> None:
        # encoding="bytes": the files come from Python 2, whose str keys and raw
        # array buffers must stay bytes.
        super().__init__(file, encoding="bytes")
        self._path = path

    def find_class(self, module: str, name: str) -> Any:
        resolve = _ALLOWED.get((module, name))
        if resolve is None:
            raise DataError(
                f"{self._path} refers to '{module}.{name}', which a CIFAR-10 batch never "
                "needs; refusing to load it. Download the data set again from "
                "https://www.cs.toronto.edu/~kriz/cifar.html."
            )
        return resolve()

    def persistent_load(self, pid: Any) -> Any:
        raise DataError(
            f"{self._path} uses persistent ids, which a CIFAR-10 batch never "
            "does; refusing to load it."
        )


def load_numpy_pickle(path: Path) -> Any:
    """Unpickle ``path`` allowing nothing but numpy arrays and plain containers.

    Raises:
        DataError: The file names any other global, is truncated or is not a pickle.
    """
    try:
        with path.open("rb") as file:
            return _NumpyOnlyUnpickler(file, path).load()
    except DataError:
        raise
    except Exception as error:  # a corrupt pickle can fail in many ways
        raise DataError(
            f"{path} is not a readable CIFAR-10 python batch ({type(error).__name__}: "
            f"{' '.join(str(error).split())}). Download the data set again."
        ) from error
