"""In-memory image tensors with normalisation and the standard crop/flip augmentation.

Images are kept as uint8 and normalised per item: CIFAR-10 as float32 would take
600 MB, as uint8 it takes 150 MB, and the per-item arithmetic is cheap next to a
network's forward pass.
"""

from __future__ import annotations

import numpy as np
import torch
import torch.nn.functional as F
from torch.utils.data import Dataset

from nas.core.dataspec import DataSpec
from nas.data._splits import DatasetSplits

# Mean and std are accumulated over this many images at a time so that a large set
# never needs a float copy of the whole array.
_STATS_CHUNK = 4096
# A channel that is constant in the training set would divide by zero.
_MIN_STD = 1e-6


def channel_stats(images: np.ndarray) -> tuple[torch.Tensor, torch.Tensor]:
    """Per-channel mean and standard deviation of uint8 images, on the [0, 1] scale.

    Args:
        images: Array of shape ``(N, C, H, W)`` with values 0..255.

    Returns:
        Two float32 tensors of shape ``(C,)``.
    """
    channels = images.shape[1]
    total = np.zeros(channels, dtype=np.float64)
    total_sq = np.zeros(channels, dtype=np.float64)
    for start in range(0, len(images), _STATS_CHUNK):
        chunk = images[start : start + _STATS_CHUNK].astype(np.float64) / 255.0
        total += chunk.sum(axis=(0, 2, 3))
        total_sq += np.square(chunk).sum(axis=(0, 2, 3))
    count = images.shape[0] * images.shape[2] * images.shape[3]
    mean = total / count
    # Clamp: rounding can make the variance of a constant channel slightly negative.
    std = np.sqrt(np.maximum(total_sq / count - mean**2, 0.0))
    std = np.maximum(std, _MIN_STD)
    return torch.from_numpy(mean.astype(np.float32)), torch.from_numpy(std.astype(np.float32))


def random_crop_flip(image: torch.Tensor, padding: int = 4) -> torch.Tensor:
    """Zero-pad by ``padding``, crop back to the original size at a random offset, and
    mirror left-right with probability 1/2.

    Draws from torch's global generator, so ``torch.manual_seed`` makes it repeatable
    (the training loader runs in the main process). The input is already normalised,
    so zero padding fills with the training mean colour.
    """
    _, height, width = image.shape
    padded = F.pad(image, (padding, padding, padding, padding))
    top, left = torch.randint(0, 2 * padding + 1, (2,)).tolist()
    image = padded[:, top : top + height, left : left + width]
    if torch.rand(()) < 0.5:
        image = image.flip(-1)
    return image


class ImageDataset(Dataset[tuple[torch.Tensor, torch.Tensor]]):
    """uint8 images normalised on access, optionally augmented with crop and flip.

    Args:
        images: uint8 tensor of shape ``(N, C, H, W)``.
        labels: int64 tensor of shape ``(N,)``.
        mean: Per-channel mean on the [0, 1] scale, shape ``(C,)``.
        std: Per-channel standard deviation on the [0, 1] scale, shape ``(C,)``.
        augment: Apply ``random_crop_flip`` to every example drawn.
    """

    def __init__(
        self,
        images: torch.Tensor,
        labels: torch.Tensor,
        mean: torch.Tensor,
        std: torch.Tensor,
        *,
        augment: bool = False,
    ) -> None:
        if images.dtype != torch.uint8 or images.dim() != 4:
            raise ValueError(
                f"images must be uint8 (N, C, H, W), got {images.dtype} {tuple(images.shape)}"
            )
        if labels.shape != (images.shape[0],):
            raise ValueError(
                f"labels must have shape ({images.shape[0]},), got {tuple(labels.shape)}"
            )
        self.images = images
        self.labels = labels.to(torch.int64)
        # Folded into one multiply-add: x * scale + shift == (x / 255 - mean) / std.
        self._scale = (1.0 / (255.0 * std)).view(-1, 1, 1)
        self._shift = (-mean / std).view(-1, 1, 1)
        self.augment = augment

    def __len__(self) -> int:
        return self.images.shape[0]

    def __getitem__(self, index: int) -> tuple[torch.Tensor, torch.Tensor]:
        image = self.images[index].to(torch.float32) * self._scale + self._shift
        if self.augment:
            image = random_crop_flip(image)
        return image, self.labels[index]


def image_splits(
    name: str,
    train: tuple[np.ndarray, np.ndarray],
    val: tuple[np.ndarray, np.ndarray],
    classes: tuple[str, ...],
    *,
    augment: bool,
) -> DatasetSplits:
    """Splits of uint8 RGB images (N, 3, H, W), normalised with the train set's statistics."""
    (train_images, train_labels), (val_images, val_labels) = train, val
    mean, std = channel_stats(train_images)
    train_set = ImageDataset(
        torch.from_numpy(train_images), torch.from_numpy(train_labels), mean, std, augment=augment
    )
    val_set = ImageDataset(torch.from_numpy(val_images), torch.from_numpy(val_labels), mean, std)
    return DatasetSplits(
        name=name,
        train=train_set,
        val=val_set,
        spec=DataSpec(in_channels=3, num_classes=len(classes), image_size=train_images.shape[-1]),
        num_train=len(train_set),
        num_val=len(val_set),
        classes=classes,
    )
