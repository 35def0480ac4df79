"""Datasets read from files: torchvision sets (offline: the missing-data error, and MNIST from
hand-written IDX files) and a user's image folder."""

from __future__ import annotations

import re
import struct
from pathlib import Path

import numpy as np
import pytest
import torch
from PIL import Image

from nascli.data import DatasetError, load_dataset
from nascli.data.torchvision_sets import CACHE_DIR


@pytest.mark.parametrize("name", ["cifar10", "cifar100", "mnist", "fashion_mnist", "svhn"])
def test_missing_torchvision_data_says_how_to_download(name, tmp_path):
    with pytest.raises(DatasetError) as info:
        load_dataset(name, root=tmp_path)
    message = str(info.value)
    assert "dataset.download=true" in message and str(tmp_path) in message
    assert "\n" not in message


def write_idx(path: Path, array: np.ndarray) -> None:
    """An uncompressed IDX file, the format of the MNIST family (uint8 payload)."""
    header = struct.pack(">I", 0x0800 + array.ndim) + struct.pack(f">{array.ndim}I", *array.shape)
    path.write_bytes(header + array.astype(np.uint8).tobytes())


def fake_mnist(root: Path, folder: str, n_train: int = 60, n_test: int = 20) -> None:
    raw = root / folder / "raw"
    raw.mkdir(parents=True)
    rng = np.random.default_rng(0)
    for prefix, n in (("train", n_train), ("t10k", n_test)):
        write_idx(raw / f"{prefix}-images-idx3-ubyte", rng.integers(0, 256, (n, 28, 28)))
        write_idx(raw / f"{prefix}-labels-idx1-ubyte", np.arange(n) % 10)


def test_mnist_from_files_and_tensor_cache(tmp_path):
    fake_mnist(tmp_path, "MNIST")
    first = load_dataset("mnist", root=tmp_path, val_fraction=0.5)
    assert (len(first.train), len(first.val), len(first.test)) == (30, 30, 20)
    assert first.in_channels == 1 and first.image_size == (28, 28)
    cache = tmp_path / CACHE_DIR / "mnist.pt"
    assert cache.is_file()
    torch.load(cache, weights_only=True)  # plain tensors, loadable without unpickling code
    (tmp_path / "MNIST").rename(tmp_path / "moved")  # the cache alone must be enough now
    again = load_dataset("mnist", root=tmp_path, val_fraction=0.5)
    assert again.fingerprint == first.fingerprint
    assert load_dataset("mnist", root=tmp_path, image_size=32).image_size == (32, 32)


def test_fashion_mnist_flips_but_mnist_does_not(tmp_path):
    fake_mnist(tmp_path, "FashionMNIST")
    fake_mnist(tmp_path, "MNIST")
    assert load_dataset("fashion_mnist", root=tmp_path, cache=False).augment.flip
    assert not load_dataset("mnist", root=tmp_path, cache=False).augment.flip
    assert not (tmp_path / CACHE_DIR).exists()


def write_images(folder: Path, classes: dict[str, int], size: tuple[int, int] = (20, 14)) -> None:
    """``count`` PNGs per class, each a flat colour that encodes its class."""
    for k, (name, count) in enumerate(classes.items()):
        (folder / name).mkdir(parents=True)
        for i in range(count):
            colour = (40 * k, 255 - 40 * k, 7 * i)
            Image.new("RGB", size, colour).save(folder / name / f"{i}.png")


def test_imagefolder_single_pool(tmp_path):
    write_images(tmp_path, {"cat": 10, "dog": 10, "emu": 5})
    d = load_dataset("imagefolder", root=tmp_path, image_size=16, val_fraction=0.25)
    assert d.classes == ("cat", "dog", "emu") and d.num_classes == 3
    assert (len(d.train) + len(d.val) + len(d.test)) == 25 and len(d.test) == 5
    assert d.train.raw.shape[1:] == (3, 16, 16)
    for split in (d.train, d.val, d.test):  # each image's colour tells its class
        assert torch.equal(split.raw[:, 0, 0, 0].long() // 40, split.labels)
    assert d.augment.flip and d.augment.crop_padding == 2


def test_imagefolder_split_layout_and_greyscale(tmp_path):
    write_images(tmp_path / "train", {"a": 6, "b": 6})
    write_images(tmp_path / "test", {"a": 2, "b": 3})
    d = load_dataset("imagefolder", root=tmp_path, channels=1, val_fraction=0.5)
    assert (len(d.train), len(d.val), len(d.test)) == (6, 6, 5)
    assert d.in_channels == 1 and d.image_size == (32, 32)
    write_images(tmp_path / "val", {"b": 4})
    d = load_dataset("imagefolder", root=tmp_path)
    assert (len(d.train), len(d.val), len(d.test)) == (12, 4, 5)
    assert set(d.val.labels.tolist()) == {1}


def test_imagefolder_errors_name_the_folder(tmp_path):
    missing = tmp_path / "nowhere"
    with pytest.raises(DatasetError, match=re.escape(f"folder {missing} does not exist")):
        load_dataset("imagefolder", root=missing)
    (tmp_path / "empty").mkdir()
    with pytest.raises(DatasetError, match="no class subfolders"):
        load_dataset("imagefolder", root=tmp_path / "empty")
    write_images(tmp_path / "x" / "train", {"a": 3})
    write_images(tmp_path / "x" / "test", {"z": 1})
    with pytest.raises(DatasetError, match="not among the training classes"):
        load_dataset("imagefolder", root=tmp_path / "x")
    bad = tmp_path / "y" / "a"
    bad.mkdir(parents=True)
    (bad / "broken.png").write_bytes(b"not a png")
    with pytest.raises(DatasetError, match="cannot read image"):
        load_dataset("imagefolder", root=tmp_path / "y")
