"""Any image-classification set laid out as ``train/<class>/`` and ``val/<class>/``.

Every image is decoded once, at load time, converted to RGB, resized to a square
``image_size`` (aspect ratio is not kept) and kept in memory as uint8: 3 KB an image at
the default 32 pixels, so 100,000 images take 300 MB. Decoding up front also reports a
broken file before any training starts, rather than mid-trial.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
from PIL import Image

from nas.core.errors import DataError
from nas.data._augment import image_splits
from nas.data._splits import DatasetSplits

EXTENSIONS = (".bmp", ".jpeg", ".jpg", ".png")
_LAYOUT = "data_dir/train/<class>/*.png and data_dir/val/<class>/*.png"


def load_folder_splits(data_dir: str | None, *, image_size: int, augment: bool) -> DatasetSplits:
    """Images from ``data_dir/train`` and ``data_dir/val``, one sub-folder per class.

    Class names are the sorted sub-folder names of ``train``; ``val`` must have the same
    ones. Files with other extensions than ``EXTENSIONS`` are ignored.

    Args:
        data_dir: The folder holding ``train/`` and ``val/``.
        image_size: Side length every image is resized to.
        augment: Random crop (4-pixel zero padding) and horizontal flip in training.

    Raises:
        DataError: A folder is missing or empty, the class folders of train and val
            differ, or an image cannot be decoded.
    """
    if data_dir is None:
        raise DataError(f"Data set 'folder' reads {_LAYOUT}; pass data_dir=PATH.")
    root = Path(data_dir).expanduser()
    if not root.is_dir():
        raise DataError(
            f"data_dir='{data_dir}' is not a folder. Pass data_dir=PATH, a "
            f"folder laid out as {_LAYOUT}."
        )
    train_dir, val_dir = root / "train", root / "val"
    for split_dir in (train_dir, val_dir):
        if not split_dir.is_dir():
            raise DataError(
                f"data_dir='{data_dir}' has no {split_dir.name}/ folder: expected {_LAYOUT}."
            )
    classes = _class_folders(train_dir)
    if not classes:
        raise DataError(
            f"{train_dir} has no class folders: put each class's images in {train_dir}/<class>/."
        )
    val_classes = _class_folders(val_dir)
    if val_classes != classes:
        missing = sorted(set(classes) - set(val_classes)) or ["none"]
        extra = sorted(set(val_classes) - set(classes)) or ["none"]
        raise DataError(
            f"{val_dir} and {train_dir} must have the same class folders; missing in val: "
            f"{', '.join(missing)}; only in val: {', '.join(extra)}."
        )
    train_images, train_labels = _read_split(train_dir, classes, image_size)
    val_images, val_labels = _read_split(val_dir, classes, image_size)
    return image_splits(
        "folder", (train_images, train_labels), (val_images, val_labels), classes, augment=augment
    )


def _class_folders(split_dir: Path) -> tuple[str, ...]:
    # Hidden folders (.ipynb_checkpoints, .git) are tool droppings, not classes.
    return tuple(
        sorted(
            entry.name
            for entry in split_dir.iterdir()
            if entry.is_dir() and not entry.name.startswith(".")
        )
    )


def _read_split(
    split_dir: Path, classes: tuple[str, ...], image_size: int
) -> tuple[np.ndarray, np.ndarray]:
    files: list[Path] = []
    labels: list[int] = []
    for label, name in enumerate(classes):
        class_files = sorted(
            path
            for path in (split_dir / name).iterdir()
            if path.suffix.lower() in EXTENSIONS and path.is_file()
        )
        if not class_files:
            raise DataError(
                f"{split_dir / name} has no images ({', '.join(EXTENSIONS)}); "
                "add some or remove the folder from train/ and val/."
            )
        files += class_files
        labels += [label] * len(class_files)
    images = np.empty((len(files), 3, image_size, image_size), dtype=np.uint8)
    for index, path in enumerate(files):
        images[index] = _read_image(path, image_size)
    return images, np.asarray(labels, dtype=np.int64)


def _read_image(path: Path, image_size: int) -> np.ndarray:
    """One image as a uint8 array of shape (3, image_size, image_size)."""
    try:
        with Image.open(path) as image:
            rgb = image.convert("RGB").resize((image_size, image_size), Image.Resampling.BILINEAR)
    # Pillow signals a broken file with any of these, depending on the format.
    except (OSError, SyntaxError, ValueError, Image.DecompressionBombError) as error:
        reason = " ".join(str(error).split())
        raise DataError(f"Cannot read image {path}: {reason}. Fix or delete the file.") from error
    return np.asarray(rgb, dtype=np.uint8).transpose(2, 0, 1)
