"""Bad data gives one clear DatasetError line: a damaged tensor cache, a decompression bomb in
an image folder, too few images for the splits, fewer than two classes."""

from __future__ import annotations

import re
import struct
import zlib
from pathlib import Path

import pytest
import torch
from PIL import Image
from test_data_files import fake_mnist, write_images

from nascli.data import DATASETS, AugmentSpec, DatasetError, RawData, load_dataset
from nascli.data.torchvision_sets import CACHE_DIR


def png_header(width: int, height: int) -> bytes:
    """A small PNG file whose header declares ``width`` x ``height`` pixels (no real data)."""

    def chunk(kind: bytes, data: bytes) -> bytes:
        body = kind + data
        return struct.pack(">I", len(data)) + body + struct.pack(">I", zlib.crc32(body))

    ihdr = struct.pack(">IIBBBBB", width, height, 8, 2, 0, 0, 0)
    return (b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", ihdr) + chunk(b"IDAT", zlib.compress(b"\0"))
            + chunk(b"IEND", b""))


# -- the tensor cache of the torchvision sets --------------------------------------------------
DAMAGED_CACHE = {
    "garbage": lambda path: path.write_bytes(b"\x00garbage" * 100),
    "truncated": lambda path: path.write_bytes(path.read_bytes()[:200]),
    "empty": lambda path: path.write_bytes(b""),
    "float images": lambda path: torch.save(
        dict(torch.load(path, weights_only=True), train_x=torch.zeros(3, 1, 28, 28)), path),
    "a list": lambda path: torch.save([1, 2], path),
}


@pytest.mark.parametrize("damage", list(DAMAGED_CACHE))
def test_damaged_cache_without_raw_files_says_to_delete_it(tmp_path, damage):
    fake_mnist(tmp_path, "MNIST")
    load_dataset("mnist", root=tmp_path)
    cache = tmp_path / CACHE_DIR / "mnist.pt"
    (tmp_path / "MNIST").rename(tmp_path / "moved")  # only the cache is left
    DAMAGED_CACHE[damage](cache)
    with pytest.raises(DatasetError) as info:
        load_dataset("mnist", root=tmp_path)
    message = str(info.value)
    assert f"tensor cache {cache} is damaged" in message and f"delete {cache}" in message
    assert "\n" not in message


@pytest.mark.parametrize("damage", list(DAMAGED_CACHE))
def test_damaged_cache_is_rebuilt_from_the_raw_files(tmp_path, damage, caplog):
    fake_mnist(tmp_path, "MNIST")
    first = load_dataset("mnist", root=tmp_path, val_fraction=0.5)
    cache = tmp_path / CACHE_DIR / "mnist.pt"
    DAMAGED_CACHE[damage](cache)
    again = load_dataset("mnist", root=tmp_path, val_fraction=0.5)
    assert again.fingerprint == first.fingerprint
    assert "damaged tensor cache" in caplog.text
    (tmp_path / "MNIST").rename(tmp_path / "moved")  # the rebuilt cache alone is enough again
    assert load_dataset("mnist", root=tmp_path, val_fraction=0.5).fingerprint == first.fingerprint


# -- decompression bombs -----------------------------------------------------------------------
@pytest.mark.filterwarnings("ignore::PIL.Image.DecompressionBombWarning")
@pytest.mark.parametrize("size", [(20000, 20000), (10000, 10000)])  # PIL: error / only a warning
def test_decompression_bomb_names_the_file(tmp_path, size):
    write_images(tmp_path, {"a": 5, "b": 5})
    bomb = tmp_path / "a" / "huge.png"
    bomb.write_bytes(png_header(*size))
    with pytest.raises(DatasetError, match=re.escape(f"image {bomb}")) as info:
        load_dataset("imagefolder", root=tmp_path)
    assert "decompression-bomb limit" in str(info.value)


@pytest.mark.filterwarnings("ignore::PIL.Image.DecompressionBombWarning")
def test_decompression_limit_applies_to_real_images(tmp_path, monkeypatch):
    write_images(tmp_path, {"a": 5, "b": 5}, size=(20, 14))
    monkeypatch.setattr(Image, "MAX_IMAGE_PIXELS", 200)  # 280 pixels: over it, under twice it
    with pytest.raises(DatasetError, match=r"declares 20x14 pixels.*limit of 200 pixels"):
        load_dataset("imagefolder", root=tmp_path)


# -- too few images, too few classes -----------------------------------------------------------
def test_two_images_are_refused_with_the_numbers(tmp_path):
    write_images(tmp_path, {"cat": 1, "dog": 1})
    with pytest.raises(DatasetError) as info:
        load_dataset("imagefolder", root=tmp_path)
    message = str(info.value)
    assert message.startswith("imagefolder: too few images: 2 give 2 train, 0 val and 0 test")
    assert "test_fraction=0.2, val_fraction=0.1" in message
    assert "val and test splits would be empty" in message
    assert "add more images per class or put val/ and test/ folders beside train/" in message


def test_empty_val_is_refused_unless_asked_for(tmp_path):
    write_images(tmp_path / "train", {"a": 2, "b": 2})
    write_images(tmp_path / "test", {"a": 1, "b": 1})
    with pytest.raises(DatasetError, match=r"4 train, 0 val and 2 test .*val split would be"):
        load_dataset("imagefolder", root=tmp_path)  # 4 x 0.1 rounds to 0
    d = load_dataset("imagefolder", root=tmp_path, val_fraction=0.0)  # on purpose: allowed
    assert (len(d.train), len(d.val), len(d.test)) == (4, 0, 2)
    with pytest.raises(DatasetError, match=r"0 train, 4 val and 2 test .*train split would be"):
        load_dataset("imagefolder", root=tmp_path, val_fraction=0.9)


def test_one_class_is_refused(tmp_path):
    write_images(tmp_path, {"cat": 10})
    with pytest.raises(DatasetError, match=re.escape(
            "imagefolder: only 1 class (cat); a classifier needs at least 2; put each class's "
            "images in its own subfolder")):
        load_dataset("imagefolder", root=tmp_path)


def test_training_images_of_one_class_only_are_refused(tmp_path):
    write_images(tmp_path / "train", {"a": 10})
    (tmp_path / "train" / "b").mkdir()  # a class folder without images
    with pytest.raises(DatasetError, match="hold 1 of the 2 classes"):
        load_dataset("imagefolder", root=tmp_path)


def test_a_builder_shipping_an_empty_test_part_is_refused():
    def build(root: Path, download: bool, image_size: tuple[int, int] | None) -> RawData:
        images = torch.zeros(20, 1, 4, 4, dtype=torch.uint8)
        labels = torch.arange(20) % 2
        return RawData(train=(images, labels), num_classes=2, augment=AugmentSpec(),
                       test=(images[:0], labels[:0]))

    DATASETS.register("empty_test", build)
    try:
        with pytest.raises(DatasetError, match=r"\(val_fraction=0.1\), so the test split"):
            load_dataset("empty_test")
    finally:
        DATASETS.unregister("empty_test")
