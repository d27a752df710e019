"""CIFAR-10 from a local copy of the binary or the python version.

Nothing is downloaded: point ``data_dir`` at the unpacked archive from
https://www.cs.toronto.edu/~kriz/cifar.html. The five training batches train; the test
batch validates.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np

from nas.core.errors import DataError
from nas.data._augment import image_splits
from nas.data._safe_pickle import load_numpy_pickle
from nas.data._splits import DatasetSplits

CLASSES = ("airplane", "automobile", "bird", "cat", "deer", "dog", "frog", "horse", "ship", "truck")
_SIZE = 32
_PIXELS = 3 * _SIZE * _SIZE
_RECORD = 1 + _PIXELS  # binary version: one label byte, then R, G, B planes
_TRAIN_BATCHES = tuple(f"data_batch_{i}" for i in range(1, 6))
_VAL_BATCH = "test_batch"
_FOLDERS = {"binary": "cifar-10-batches-bin", "python": "cifar-10-batches-py"}
_SOURCE = "https://www.cs.toronto.edu/~kriz/cifar.html"


def load_cifar10_splits(data_dir: str | None, *, augment: bool) -> DatasetSplits:
    """CIFAR-10 normalised with per-channel training statistics.

    Args:
        data_dir: The ``cifar-10-batches-bin`` or ``cifar-10-batches-py`` folder, or
            the folder that contains it.
        augment: Random crop (4-pixel zero padding) and horizontal flip in training.

    Raises:
        DataError: The folder or a batch file is missing or malformed.
    """
    folder, version = _locate(data_dir)
    read = _read_binary if version == "binary" else _read_python
    suffix = ".bin" if version == "binary" else ""
    paths = [folder / f"{name}{suffix}" for name in (*_TRAIN_BATCHES, _VAL_BATCH)]
    for path in paths:
        if not path.is_file():
            raise DataError(
                f"{folder} has no {path.name}: the {version} version of CIFAR-10 holds "
                f"data_batch_1{suffix} .. data_batch_5{suffix} and test_batch{suffix}. "
                f"Unpack the archive from {_SOURCE} again."
            )
    batches = [read(path) for path in paths]
    train_images = np.concatenate([images for images, _ in batches[:-1]])
    train_labels = np.concatenate([labels for _, labels in batches[:-1]])
    val_images, val_labels = batches[-1]
    return image_splits(
        "cifar10", (train_images, train_labels), (val_images, val_labels), CLASSES, augment=augment
    )


def _locate(data_dir: str | None) -> tuple[Path, str]:
    """The folder holding the batch files, and which version they are."""
    if data_dir is None:
        raise DataError(
            f"Data set 'cifar10' is read from a local copy: download the binary or python "
            f"version from {_SOURCE}, unpack it, and pass data_dir=PATH."
        )
    root = Path(data_dir).expanduser()
    if not root.is_dir():
        raise DataError(
            f"data_dir='{data_dir}' is not a folder. Pass data_dir=PATH, the "
            "folder holding cifar-10-batches-bin/ or cifar-10-batches-py/."
        )
    for version, name in _FOLDERS.items():
        if root.name == name:
            return root, version
        if (root / name).is_dir():
            return root / name, version
    # A renamed folder still counts if the batches sit directly inside it.
    if (root / "data_batch_1.bin").is_file():
        return root, "binary"
    if (root / "data_batch_1").is_file():
        return root, "python"
    raise DataError(
        f"data_dir='{data_dir}' has no CIFAR-10 batches: expected cifar-10-batches-bin/ or "
        f"cifar-10-batches-py/ (the 'binary' or 'python' version from {_SOURCE}). "
        "Pass data_dir=PATH."
    )


def _read_binary(path: Path) -> tuple[np.ndarray, np.ndarray]:
    raw = np.fromfile(path, dtype=np.uint8)
    if raw.size == 0 or raw.size % _RECORD:
        raise DataError(
            f"{path} has {raw.size} bytes, not a positive multiple of {_RECORD} (one label "
            f"byte and {_PIXELS} pixel bytes per image). Download the data set again."
        )
    records = raw.reshape(-1, _RECORD)
    labels = records[:, 0].astype(np.int64)
    return _checked(path, records[:, 1:].reshape(-1, 3, _SIZE, _SIZE), labels)


def _read_python(path: Path) -> tuple[np.ndarray, np.ndarray]:
    batch = load_numpy_pickle(path)
    if not isinstance(batch, dict):
        raise DataError(
            f"{path} holds a {type(batch).__name__}, not the dict of a "
            "CIFAR-10 batch. Download the data set again."
        )
    data = _entry(batch, "data", path)
    if (
        not isinstance(data, np.ndarray)
        or data.dtype != np.uint8
        or data.ndim != 2
        or data.shape[1] != _PIXELS
        or data.shape[0] == 0
    ):
        shape = getattr(data, "shape", None)
        raise DataError(
            f"{path}: 'data' must be a uint8 array of shape (N, {_PIXELS}), got "
            f"{type(data).__name__} {getattr(data, 'dtype', '')} {shape}. "
            "Download the data set again."
        )
    labels = np.asarray(_entry(batch, "labels", path))
    if labels.dtype.kind not in "iu" or labels.shape != (data.shape[0],):
        raise DataError(
            f"{path}: 'labels' must be {data.shape[0]} integers, got "
            f"{labels.dtype} {labels.shape}. Download the data set again."
        )
    return _checked(path, data.reshape(-1, 3, _SIZE, _SIZE), labels.astype(np.int64))


def _entry(batch: dict[Any, Any], key: str, path: Path) -> Any:
    # Python 2 wrote the keys as byte strings; accept a re-pickled file's str keys too.
    for candidate in (key.encode(), key):
        if candidate in batch:
            return batch[candidate]
    raise DataError(
        f"{path} has no '{key}' entry; it is not a CIFAR-10 batch. Download the data set again."
    )


def _checked(path: Path, images: np.ndarray, labels: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    bad = labels[(labels < 0) | (labels >= len(CLASSES))]
    if bad.size:
        raise DataError(
            f"{path} has label {int(bad[0])}, outside 0..9. Download the data set again."
        )
    # Contiguous for fast indexing, writable because torch.from_numpy wants that.
    return np.require(images, requirements=["C", "W"]), labels
