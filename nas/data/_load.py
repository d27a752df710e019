"""``load_dataset``: one entry point for every built-in data set."""

from __future__ import annotations

from nas.core.errors import ConfigError, unknown_choice
from nas.data import DATASETS
from nas.data._splits import DatasetSplits

# Sets whose images come at one fixed size; `image_size` may only repeat it.
_NATIVE_SIZE = {"digits": 8, "cifar10": 32}
_DEFAULT_FOLDER_SIZE = 32


def load_dataset(
    name: str,
    *,
    data_dir: str | None = None,
    image_size: int | None = None,
    augment: bool = True,
) -> DatasetSplits:
    """Load a data set split into training and validation parts.

    Args:
        name: One of ``DATASETS``.
        data_dir: Where ``cifar10`` and ``folder`` read from; ``digits`` ignores it.
        image_size: Side length to resize ``folder`` images to (default 32). ``digits``
            (8) and ``cifar10`` (32) only accept their own size.
        augment: Random crop and horizontal flip of training images (``cifar10`` and
            ``folder``; ``digits`` images are too small to crop).

    Raises:
        ConfigError: Unknown ``name`` or an invalid ``image_size``.
        DataError: The files are missing or malformed.
    """
    if name not in DATASETS:
        raise unknown_choice("dataset", name, DATASETS)
    if image_size is not None and (
        isinstance(image_size, bool) or not isinstance(image_size, int) or image_size < 1
    ):
        raise ConfigError(
            f"image_size must be a positive integer, but got image_size={image_size!r}."
        )
    native = _NATIVE_SIZE.get(name)
    if native is not None and image_size not in (None, native):
        raise ConfigError(
            f"Data set '{name}' has {native}x{native} images, but got "
            f"image_size={image_size}. Leave image_size unset."
        )
    # Each loader imports only what it needs (scikit-learn, Pillow) when first used.
    if name == "digits":
        from nas.data._digits import load_digits_splits

        return load_digits_splits()
    if name == "cifar10":
        from nas.data._cifar10 import load_cifar10_splits

        return load_cifar10_splits(data_dir, augment=augment)
    from nas.data._folder import load_folder_splits

    return load_folder_splits(
        data_dir, image_size=image_size or _DEFAULT_FOLDER_SIZE, augment=augment
    )
