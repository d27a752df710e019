"""Loading digits, CIFAR-10 (binary and python versions) and image folders."""

from __future__ import annotations

import builtins
import os
import pickle
from pathlib import Path
from typing import Any

import numpy as np
import pytest
import torch
from PIL import Image

from nas.core.dataspec import DataSpec
from nas.core.errors import ConfigError, DataError
from nas.data import DATASETS, DatasetSplits, load_dataset
from nas.data._augment import random_crop_flip

# ---------------------------------------------------------------- helpers


def _stack(dataset: Any) -> tuple[torch.Tensor, torch.Tensor]:
    images, labels = zip(*(dataset[i] for i in range(len(dataset))), strict=True)
    return torch.stack(images), torch.stack(labels)


def _assert_one_line_naming(error: pytest.ExceptionInfo[Exception], path: Path | str) -> None:
    message = str(error.value)
    assert str(path) in message
    assert "\n" not in message


# ---------------------------------------------------------------- digits


@pytest.fixture(scope="module")
def digits() -> DatasetSplits:
    return load_dataset("digits")


def test_digits_shapes_and_sizes(digits: DatasetSplits) -> None:
    assert DATASETS == ("digits", "cifar10", "folder")
    assert digits.name == "digits"
    assert digits.spec == DataSpec(in_channels=1, num_classes=10, image_size=8)
    assert (digits.num_train, digits.num_val) == (1437, 360)
    assert (len(digits.train), len(digits.val)) == (1437, 360)  # type: ignore[arg-type]
    assert digits.classes == tuple("0123456789")
    image, label = digits.train[0]
    assert image.shape == (1, 8, 8) and image.dtype == torch.float32
    assert label.dtype == torch.int64


def test_digits_standardised_with_train_statistics(digits: DatasetSplits) -> None:
    train_images, _ = _stack(digits.train)
    assert abs(float(train_images.mean())) < 1e-4
    assert abs(float(train_images.std()) - 1.0) < 1e-2


def test_digits_split_is_deterministic_and_unaugmented(digits: DatasetSplits) -> None:
    torch.manual_seed(123)  # the split must not depend on any seed
    again = load_dataset("digits", augment=False)
    for ours, theirs in ((digits.train, again.train), (digits.val, again.val)):
        for a, b in zip(_stack(ours), _stack(theirs), strict=True):
            assert torch.equal(a, b)
    assert torch.equal(digits.train[5][0], digits.train[5][0])


def test_digits_split_is_stratified(digits: DatasetSplits) -> None:
    _, train_labels = _stack(digits.train)
    _, val_labels = _stack(digits.val)
    train_counts = torch.bincount(train_labels, minlength=10).double()
    val_counts = torch.bincount(val_labels, minlength=10).double()
    val_share = val_counts / (train_counts + val_counts)
    assert bool(((val_share > 0.18) & (val_share < 0.22)).all()), val_share


# ---------------------------------------------------------------- CIFAR-10

_BATCHES = (
    "data_batch_1",
    "data_batch_2",
    "data_batch_3",
    "data_batch_4",
    "data_batch_5",
    "test_batch",
)
_PER_BATCH = 20


def _cifar_batches() -> dict[str, tuple[np.ndarray, np.ndarray]]:
    rng = np.random.default_rng(0)
    return {
        name: (
            rng.integers(0, 256, size=(_PER_BATCH, 3072), dtype=np.uint8),
            rng.permutation(np.arange(_PER_BATCH) % 10).astype(np.int64),
        )
        for name in _BATCHES
    }


def _write_binary(root: Path) -> Path:
    folder = root / "cifar-10-batches-bin"
    folder.mkdir(parents=True)
    for name, (data, labels) in _cifar_batches().items():
        records = np.concatenate([labels.astype(np.uint8)[:, None], data], axis=1)
        records.tofile(folder / f"{name}.bin")
    return folder


def _write_python(root: Path, protocol: int = pickle.DEFAULT_PROTOCOL) -> Path:
    folder = root / "cifar-10-batches-py"
    folder.mkdir(parents=True)
    for name, (data, labels) in _cifar_batches().items():
        with (folder / name).open("wb") as file:
            pickle.dump(
                {b"batch_label": name.encode(), b"data": data, b"labels": labels.tolist()},
                file,
                protocol=protocol,
            )
    return folder


@pytest.mark.parametrize("protocol", [2, 4, 5])
@pytest.mark.parametrize("point_at", ["parent", "batches"])
def test_cifar10_binary_and_python_give_the_same_tensors(
    tmp_path: Path, protocol: int, point_at: str
) -> None:
    binary_folder = _write_binary(tmp_path / "bin")
    python_folder = _write_python(tmp_path / "py", protocol)
    loaded = [
        load_dataset(
            "cifar10",
            data_dir=str(folder if point_at == "batches" else folder.parent),
            augment=False,
        )
        for folder in (binary_folder, python_folder)
    ]
    for data in loaded:
        assert data.spec == DataSpec(in_channels=3, num_classes=10, image_size=32)
        assert (data.num_train, data.num_val) == (5 * _PER_BATCH, _PER_BATCH)
        assert data.classes[0] == "airplane" and len(data.classes) == 10
    for split in ("train", "val"):
        (bin_x, bin_y), (py_x, py_y) = (_stack(getattr(data, split)) for data in loaded)
        assert bin_x.shape == (len(bin_y), 3, 32, 32) and bin_x.dtype == torch.float32
        assert torch.equal(bin_x, py_x) and torch.equal(bin_y, py_y)


@pytest.mark.filterwarnings("error::DeprecationWarning")
def test_cifar10_python_batch_with_numpy_1_names(tmp_path: Path) -> None:
    # The published files were written by numpy 1, which called the module numpy.core.
    folder = _write_python(tmp_path / "py", protocol=2)
    for name in _BATCHES:
        path = folder / name
        legacy = path.read_bytes().replace(b"numpy._core.multiarray", b"numpy.core.multiarray")
        assert b"numpy.core.multiarray" in legacy
        path.write_bytes(legacy)
    expected = load_dataset("cifar10", data_dir=str(_write_binary(tmp_path / "bin")))
    loaded = load_dataset("cifar10", data_dir=str(folder))
    assert torch.equal(_stack(loaded.val)[0], _stack(expected.val)[0])


def test_cifar10_pixels_labels_and_normalisation(tmp_path: Path) -> None:
    data = load_dataset("cifar10", data_dir=str(_write_binary(tmp_path)), augment=False)
    raw = _cifar_batches()
    train_x, train_y = _stack(data.train)
    val_x, val_y = _stack(data.val)
    # Training statistics: per-channel mean 0 and std 1 on the training set.
    assert torch.allclose(train_x.mean(dim=(0, 2, 3)), torch.zeros(3), atol=1e-4)
    assert torch.allclose(train_x.std(dim=(0, 2, 3)), torch.ones(3), atol=1e-2)
    assert torch.equal(train_y[:_PER_BATCH], torch.from_numpy(raw["data_batch_1"][1]))
    assert torch.equal(val_y, torch.from_numpy(raw["test_batch"][1]))
    # Pixels: the first record's red plane comes first, row by row.
    first = raw["test_batch"][0][0].reshape(3, 32, 32).astype(np.float64)
    ranks = np.argsort(np.argsort(first[0].ravel()))
    assert np.array_equal(np.argsort(np.argsort(val_x[0, 0].numpy().ravel())), ranks)


def test_cifar10_augmentation_is_seeded_by_torch(tmp_path: Path) -> None:
    folder = str(_write_binary(tmp_path))
    plain = load_dataset("cifar10", data_dir=folder, augment=False)
    augmented = load_dataset("cifar10", data_dir=folder, augment=True)
    torch.manual_seed(7)
    first = _stack(augmented.train)[0]
    torch.manual_seed(7)
    assert torch.equal(first, _stack(augmented.train)[0])
    assert not torch.equal(first, _stack(plain.train)[0])
    assert torch.equal(_stack(augmented.val)[0], _stack(plain.val)[0])  # never augmented


def test_random_crop_flip_is_a_padded_shift_or_mirror() -> None:
    torch.manual_seed(0)
    image = torch.randn(3, 6, 6)
    padded = torch.nn.functional.pad(image, (4, 4, 4, 4))
    candidates = [
        crop.flip(-1) if flip else crop
        for top in range(9)
        for left in range(9)
        for crop in [padded[:, top : top + 6, left : left + 6]]
        for flip in (False, True)
    ]
    seen = set()
    for _ in range(50):
        out = random_crop_flip(image)
        matches = [i for i, candidate in enumerate(candidates) if torch.equal(out, candidate)]
        assert matches
        seen.add(matches[0])
    assert len(seen) > 10


class _Shell:
    def __init__(self, marker: Path) -> None:
        self.marker = marker

    def __reduce__(self) -> tuple[Any, ...]:
        return (os.system, (f"touch {self.marker}",))


class _Eval:
    def __init__(self, marker: Path) -> None:
        self.marker = marker

    def __reduce__(self) -> tuple[Any, ...]:
        return (builtins.eval, (f"__import__('pathlib').Path({str(self.marker)!r}).touch()",))


@pytest.mark.parametrize("payload", [_Shell, _Eval])
def test_cifar10_malicious_pickle_is_refused(tmp_path: Path, payload: type) -> None:
    folder = _write_python(tmp_path)
    marker = tmp_path / "pwned"
    with (folder / "data_batch_2").open("wb") as file:
        pickle.dump({b"data": payload(marker), b"labels": [0]}, file)
    with pytest.raises(DataError) as error:
        load_dataset("cifar10", data_dir=str(folder))
    _assert_one_line_naming(error, folder / "data_batch_2")
    assert not marker.exists()


def test_cifar10_missing_data_dir_errors(tmp_path: Path) -> None:
    with pytest.raises(DataError, match="data_dir=PATH"):
        load_dataset("cifar10")
    missing = tmp_path / "nowhere"
    with pytest.raises(DataError) as error:
        load_dataset("cifar10", data_dir=str(missing))
    _assert_one_line_naming(error, missing)
    with pytest.raises(DataError, match="has no CIFAR-10 batches") as error:
        load_dataset("cifar10", data_dir=str(tmp_path))
    _assert_one_line_naming(error, tmp_path)


def test_cifar10_missing_batch_file(tmp_path: Path) -> None:
    folder = _write_binary(tmp_path)
    (folder / "data_batch_3.bin").unlink()
    with pytest.raises(DataError, match=r"data_batch_3\.bin") as error:
        load_dataset("cifar10", data_dir=str(tmp_path))
    _assert_one_line_naming(error, folder)


def test_cifar10_wrong_binary_size(tmp_path: Path) -> None:
    folder = _write_binary(tmp_path)
    path = folder / "test_batch.bin"
    path.write_bytes(path.read_bytes()[:-1])
    with pytest.raises(DataError, match="multiple of 3073") as error:
        load_dataset("cifar10", data_dir=str(folder))
    _assert_one_line_naming(error, path)


def test_cifar10_label_out_of_range(tmp_path: Path) -> None:
    folder = _write_binary(tmp_path)
    path = folder / "data_batch_1.bin"
    raw = bytearray(path.read_bytes())
    raw[0] = 10
    path.write_bytes(bytes(raw))
    with pytest.raises(DataError, match="label 10") as error:
        load_dataset("cifar10", data_dir=str(folder))
    _assert_one_line_naming(error, path)


@pytest.mark.parametrize(
    "content",
    [
        b"not a pickle at all",
        pickle.dumps([1, 2, 3]),
        pickle.dumps({b"labels": [0]}),
        pickle.dumps({b"data": np.zeros((2, 3072), dtype=np.float32), b"labels": [0, 1]}),
        pickle.dumps({b"data": np.zeros((2, 3072), dtype=np.uint8), b"labels": [0]}),
    ],
)
def test_cifar10_malformed_python_batch(tmp_path: Path, content: bytes) -> None:
    folder = _write_python(tmp_path)
    path = folder / "test_batch"
    path.write_bytes(content)
    with pytest.raises(DataError) as error:
        load_dataset("cifar10", data_dir=str(folder))
    _assert_one_line_naming(error, path)


# ---------------------------------------------------------------- image folders

_COLOURS = {"cat": (255, 0, 0), "dog": (0, 0, 255)}


def _write_folder(root: Path, *, per_class: dict[str, int] | None = None) -> Path:
    counts = per_class or {"train": 3, "val": 2}
    for split, count in counts.items():
        for name, colour in _COLOURS.items():
            folder = root / split / name
            folder.mkdir(parents=True)
            for i in range(count):
                size = (10 + 7 * i, 12 + 3 * i)  # mixed sizes; resized at load
                Image.new("RGB", size, colour).save(folder / f"{i}.png")
            (folder / "notes.txt").write_text("not an image")
    # Other formats and modes are converted to RGB.
    Image.new("L", (9, 9), 200).save(root / "train" / "cat" / "grey.JPG")
    Image.new("RGB", (5, 5), _COLOURS["dog"]).save(root / "train" / "dog" / "x.bmp")
    (root / "train" / ".ipynb_checkpoints").mkdir()
    return root


def test_folder_loads_generated_images(tmp_path: Path) -> None:
    root = _write_folder(tmp_path / "pets")
    data = load_dataset("folder", data_dir=str(root), image_size=16, augment=False)
    assert data.name == "folder"
    assert data.spec == DataSpec(in_channels=3, num_classes=2, image_size=16)
    assert data.classes == ("cat", "dog")
    assert (data.num_train, data.num_val) == (8, 4)
    train_x, train_y = _stack(data.train)
    assert train_x.shape == (8, 3, 16, 16)
    assert train_y.tolist() == [0, 0, 0, 0, 1, 1, 1, 1]
    val_x, val_y = _stack(data.val)
    assert val_y.tolist() == [0, 0, 1, 1]
    # Red cats and blue dogs stay red and blue after normalisation.
    assert bool((val_x[:2, 0] > val_x[:2, 2]).all()) and bool((val_x[2:, 2] > val_x[2:, 0]).all())
    assert torch.allclose(train_x.mean(dim=(0, 2, 3)), torch.zeros(3), atol=1e-4)


def test_folder_default_size_and_augmentation(tmp_path: Path) -> None:
    data = load_dataset("folder", data_dir=str(_write_folder(tmp_path)))
    assert data.spec.image_size == 32
    torch.manual_seed(0)
    first = _stack(data.train)[0]
    torch.manual_seed(0)
    assert torch.equal(first, _stack(data.train)[0])
    assert first.shape == (8, 3, 32, 32)


def test_folder_missing_dirs(tmp_path: Path) -> None:
    with pytest.raises(DataError, match="data_dir=PATH"):
        load_dataset("folder")
    missing = tmp_path / "nowhere"
    with pytest.raises(DataError) as error:
        load_dataset("folder", data_dir=str(missing))
    _assert_one_line_naming(error, missing)
    for split in ("train", "val"):
        root = tmp_path / f"no-{split}"
        (root / ("val" if split == "train" else "train") / "cat").mkdir(parents=True)
        with pytest.raises(DataError, match=f"no {split}/") as error:
            load_dataset("folder", data_dir=str(root))
        _assert_one_line_naming(error, root)


def test_folder_without_class_folders(tmp_path: Path) -> None:
    (tmp_path / "train").mkdir()
    (tmp_path / "val").mkdir()
    with pytest.raises(DataError, match="no class folders") as error:
        load_dataset("folder", data_dir=str(tmp_path))
    _assert_one_line_naming(error, tmp_path / "train")


@pytest.mark.parametrize("split", ["train", "val"])
def test_folder_empty_class(tmp_path: Path, split: str) -> None:
    root = _write_folder(tmp_path)
    empty = root / split / "dog"
    for path in empty.iterdir():
        if path.suffix.lower() != ".txt":
            path.unlink()
    with pytest.raises(DataError, match="has no images") as error:
        load_dataset("folder", data_dir=str(root))
    _assert_one_line_naming(error, empty)


def test_folder_class_mismatch(tmp_path: Path) -> None:
    root = _write_folder(tmp_path)
    (root / "val" / "dog").rename(root / "val" / "bird")
    with pytest.raises(DataError, match="missing in val: dog; only in val: bird") as error:
        load_dataset("folder", data_dir=str(root))
    _assert_one_line_naming(error, root / "val")


def test_folder_unreadable_image(tmp_path: Path) -> None:
    root = _write_folder(tmp_path)
    broken = root / "val" / "cat" / "broken.png"
    broken.write_bytes(b"\x89PNG\r\n\x1a\n truncated")
    with pytest.raises(DataError, match="Cannot read image") as error:
        load_dataset("folder", data_dir=str(root))
    _assert_one_line_naming(error, broken)


# ---------------------------------------------------------------- names and sizes


def test_unknown_dataset_suggests_close_match() -> None:
    with pytest.raises(ConfigError, match="Did you mean 'digits'"):
        load_dataset("digit")


@pytest.mark.parametrize(
    ("name", "image_size"), [("digits", 16), ("cifar10", 64), ("folder", 0), ("folder", 2.5)]
)
def test_invalid_image_size(tmp_path: Path, name: str, image_size: Any) -> None:
    with pytest.raises(ConfigError, match="image_size"):
        load_dataset(name, data_dir=str(tmp_path), image_size=image_size)
