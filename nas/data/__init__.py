"""Image classification data sets, split into training and validation parts.

    >>> from nas.data import load_dataset
    >>> data = load_dataset("digits")
    >>> data.spec
    DataSpec(in_channels=1, num_classes=10, image_size=8)

Built in: ``digits`` (scikit-learn's 8x8 digits, embedded, no download), ``cifar10``
(read from a local copy of the binary or python version) and ``folder`` (an image
folder with ``train/<class>/`` and ``val/<class>/``). ``DATASETS`` is cheap to import;
the loaders (and torch) load on first use.
"""

from __future__ import annotations

import importlib
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:  # the real types for type checkers; imported lazily at run time
    from nas.data._load import load_dataset
    from nas.data._splits import DatasetSplits

DATASETS = ("digits", "cifar10", "folder")
_LAZY = {"load_dataset": "nas.data._load", "DatasetSplits": "nas.data._splits"}

__all__ = ["DATASETS", "DatasetSplits", "load_dataset"]


def __getattr__(name: str) -> Any:
    if name in _LAZY:
        return getattr(importlib.import_module(_LAZY[name]), name)
    raise AttributeError(f"module 'nas.data' has no attribute {name!r}")
