"""The value every loader returns."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from torch.utils.data import Dataset

from nas.core.dataspec import DataSpec


@dataclass(frozen=True)
class DatasetSplits:
    """A data set split into a training part and a validation part.

    Both parts yield ``(image, label)`` pairs: a float32 tensor of shape
    ``spec.input_shape()[1:]``, normalised with training statistics, and an int64
    scalar class index. Training augmentation, if any, is already part of ``train``.

    Attributes:
        name: The data set name as passed to ``load_dataset``.
        train: Examples to train on.
        val: Held-out examples to measure accuracy on (never augmented).
        spec: Channels, classes and image size, for building networks.
        num_train: Number of examples in ``train``.
        num_val: Number of examples in ``val``.
        classes: Class names, indexed by label.
    """

    name: str
    train: Dataset[Any]
    val: Dataset[Any]
    spec: DataSpec
    num_train: int
    num_val: int
    classes: tuple[str, ...] = ()
