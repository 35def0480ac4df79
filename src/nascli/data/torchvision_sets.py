"""CIFAR-10/100, MNIST, Fashion-MNIST and SVHN through torchvision's dataset classes.

torchvision reads (and with ``download=True`` fetches) the files under ``root``; the first load
converts them to uint8 tensors and caches those in ``root/nascli-cache/NAME.pt`` (read back with
``torch.load(weights_only=True)``), because unpickling CIFAR batches or SVHN's .mat files each
run costs seconds. Delete the cache file to rebuild it.
"""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

import numpy as np
import torch
from torch import Tensor

from nascli.data.registry import RawData, register_dataset
from nascli.data.splits import AugmentSpec, DatasetError, resize_images

CACHE_DIR = "nascli-cache"
CACHE_VERSION = 1

# Reader: (root, train, download) -> (uint8 images N,C,H,W, long labels N, class names).
Reader = Callable[[Path, bool, bool], tuple[Tensor, Tensor, list[str]]]


def _cifar(cls_name: str) -> Reader:
    def read(root: Path, train: bool, download: bool) -> tuple[Tensor, Tensor, list[str]]:
        import torchvision.datasets as tvd

        ds = getattr(tvd, cls_name)(str(root), train=train, download=download)
        images = torch.from_numpy(np.ascontiguousarray(ds.data.transpose(0, 3, 1, 2)))
        return images, torch.as_tensor(ds.targets, dtype=torch.long), list(ds.classes)

    return read


def _mnist_like(cls_name: str) -> Reader:
    def read(root: Path, train: bool, download: bool) -> tuple[Tensor, Tensor, list[str]]:
        import torchvision.datasets as tvd

        ds = getattr(tvd, cls_name)(str(root), train=train, download=download)
        return ds.data.unsqueeze(1).contiguous(), ds.targets.long(), list(ds.classes)

    return read


def _svhn(root: Path, train: bool, download: bool) -> tuple[Tensor, Tensor, list[str]]:
    import torchvision.datasets as tvd

    ds = tvd.SVHN(str(root), split="train" if train else "test", download=download)
    # torchvision already maps SVHN's label 10 to digit 0.
    labels = torch.as_tensor(ds.labels, dtype=torch.long)
    images = torch.from_numpy(np.ascontiguousarray(ds.data))
    return images, labels, [str(i) for i in range(10)]


# name -> (reader, number of classes, where torchvision keeps the files, augmentation defaults)
_SOURCES: dict[str, tuple[Reader, int, str, AugmentSpec]] = {
    "cifar10": (_cifar("CIFAR10"), 10, "cifar-10-batches-py", AugmentSpec(4, True, 0)),
    "cifar100": (_cifar("CIFAR100"), 100, "cifar-100-python", AugmentSpec(4, True, 0)),
    "mnist": (_mnist_like("MNIST"), 10, "MNIST/raw", AugmentSpec(2, False, 0)),
    # Clothes are left-right symmetric; digits (MNIST, SVHN house numbers) are not.
    "fashion_mnist": (_mnist_like("FashionMNIST"), 10, "FashionMNIST/raw", AugmentSpec(2, True, 0)),
    "svhn": (_svhn, 10, "train_32x32.mat", AugmentSpec(4, False, 0)),
}


def _read_all(name: str, root: Path, download: bool) -> dict[str, object]:
    """Both official parts as tensors, from torchvision, with the error turned into one line."""
    reader, _, where, _ = _SOURCES[name]
    try:
        train_x, train_y, classes = reader(root, True, download)
        test_x, test_y, _ = reader(root, False, download)
    except (RuntimeError, OSError) as err:
        if not download:
            raise DatasetError(
                f"{name}: no data at {root / where}; set dataset.download=true to download it "
                f"(or dataset.root to the folder that holds it)"
            ) from None
        raise DatasetError(f"{name}: download into {root} failed: {err}") from err
    return {
        "version": CACHE_VERSION,
        "train_x": train_x,
        "train_y": train_y,
        "test_x": test_x,
        "test_y": test_y,
        "classes": classes,
    }


def load_tensors(name: str, root: Path, download: bool, cache: bool = True) -> dict[str, object]:
    """The official train and test parts of ``name`` as uint8/long tensors, via the cache."""
    path = root / CACHE_DIR / f"{name}.pt"
    if cache and path.is_file():
        data = torch.load(path, weights_only=True)
        if data.get("version") == CACHE_VERSION:
            return data
    data = _read_all(name, root, download)
    if cache:
        try:
            path.parent.mkdir(parents=True, exist_ok=True)
            tmp = path.with_suffix(".tmp")
            torch.save(data, tmp)
            tmp.replace(path)  # atomic: a concurrent reader never sees half a file
        except OSError:
            pass  # a read-only root still works, only slower next time
    return data


def _register(name: str) -> None:
    _, num_classes, _, augment = _SOURCES[name]

    def build(
        root: Path,
        download: bool,
        image_size: tuple[int, int] | None,
        cache: bool = True,
    ) -> RawData:
        data = load_tensors(name, root, download, cache)
        train_x, test_x = data["train_x"], data["test_x"]
        if image_size is not None:
            train_x, test_x = resize_images(train_x, image_size), resize_images(test_x, image_size)
        return RawData(
            train=(train_x, data["train_y"]),
            test=(test_x, data["test_y"]),
            num_classes=num_classes,
            augment=augment,
            classes=tuple(data["classes"]),
        )

    build.__name__ = name
    build.__doc__ = f"{name} from torchvision (official train and test parts), cached as tensors."
    register_dataset(name)(build)


for _name in _SOURCES:
    _register(_name)
