"""scikit-learn's handwritten digits: 1,797 grey 8x8 images of 0-9, shipped offline.

The embedded default data set: small enough that a network trains on a CPU in seconds,
real enough that accuracy separates good architectures from bad ones.
"""

from __future__ import annotations

import numpy as np
import torch
from torch.utils.data import TensorDataset

from nas.core.dataspec import DataSpec
from nas.data._splits import DatasetSplits

# Fixed, and deliberately not the trial seed: every trial of every study must be
# scored on the same validation images, or accuracies would not be comparable.
_SPLIT_SEED = 0
_VAL_FRACTION = 0.2
_PIXEL_MAX = 16.0  # load_digits stores grey levels 0..16


def load_digits_splits() -> DatasetSplits:
    """A stratified 80/20 split of the digits, standardised with training statistics.

    Images are too small (8x8) for crop augmentation, so there is none.
    """
    # Deferred: scikit-learn is heavy to import and only this loader needs it.
    from sklearn.datasets import load_digits
    from sklearn.model_selection import train_test_split

    bunch = load_digits()
    images = (np.asarray(bunch.images, dtype=np.float64) / _PIXEL_MAX)[:, None, :, :]
    labels = np.asarray(bunch.target, dtype=np.int64)
    train_x, val_x, train_y, val_y = train_test_split(
        images, labels, test_size=_VAL_FRACTION, stratify=labels, random_state=_SPLIT_SEED
    )
    # One channel, so per-channel statistics are one mean and one std.
    mean, std = float(train_x.mean()), float(train_x.std())
    train = TensorDataset(_standardise(train_x, mean, std), torch.from_numpy(train_y))
    val = TensorDataset(_standardise(val_x, mean, std), torch.from_numpy(val_y))
    return DatasetSplits(
        name="digits",
        train=train,
        val=val,
        spec=DataSpec(in_channels=1, num_classes=10, image_size=8),
        num_train=len(train_y),
        num_val=len(val_y),
        classes=tuple(str(digit) for digit in range(10)),
    )


def _standardise(images: np.ndarray, mean: float, std: float) -> torch.Tensor:
    return torch.from_numpy(((images - mean) / std).astype(np.float32))
