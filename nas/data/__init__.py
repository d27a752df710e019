"""Image classification data sets, split into training and validation parts.

    >>> from nas.data import load_dataset
    >>> data = load_dataset("digits")
    >>> data.spec
    DataSpec(in_channels=1, num_classes=10, image_size=8)

Built in: ``digits`` (scikit-learn's 8x8 digits, embedded, no download), ``cifar10``
(read from a local copy of the binary or python version) and ``folder`` (an image
folder with ``train/<class>/`` and ``val/<class>/``). Importing this package imports
torch; ``import nas`` does not.
"""

from __future__ import annotations

from nas.data._load import DATASETS, load_dataset
from nas.data._splits import DatasetSplits

__all__ = ["DATASETS", "DatasetSplits", "load_dataset"]
