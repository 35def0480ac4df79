"""CIFAR-10/100, MNIST, Fashion-MNIST and SVHN through torchvision's dataset classes.

torchvision reads (and with ``download=True`` fetches) the files under ``root``; the first load
converts them to uint8 tensors and caches those in ``root/nascli-cache/NAME.pt`` (read back with
``torch.load(weights_only=True)``), because unpickling CIFAR batches or SVHN's .mat files each
run costs seconds. Delete the cache file to rebuild it; a damaged one is rebuilt from the raw
files when they are there, and is otherwise one error line that names it.
"""

from __future__ import annotations

import contextlib
import logging
import os
import threading
from collections.abc import Callable
from pathlib import Path

import numpy as np
import torch
from torch import Tensor

from nascli.data.registry import RawData, register_dataset
from nascli.data.splits import AugmentSpec, DatasetError, resize_images

log = logging.getLogger("nascli.data")

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
    """The official train and test parts of ``name`` as uint8/long tensors, via the cache.

    A damaged cache file is rebuilt from the raw files when they are there (with a warning);
    otherwise it is one line naming the file and saying to delete it.
    """
    path = root / CACHE_DIR / f"{name}.pt"
    if cache and path.is_file():
        data, problem = _read_cache(path)
        if data is not None:
            return data
        if problem:  # damaged (an old version is simply rebuilt)
            log.warning("%s: damaged tensor cache (%s); rebuilding it from the raw files",
                        path, problem)
            data = _rebuild(name, root, download, path, problem)
            _write_cache(data, path)
            return data
    data = _read_all(name, root, download)
    if cache:
        _write_cache(data, path)
    return data


def _read_cache(path: Path) -> tuple[dict[str, object] | None, str]:
    """The cache's tensors, or (None, why) with ``why`` empty for an old cache version."""
    try:
        data = torch.load(path, weights_only=True)
    except Exception as exc:  # torn, empty, foreign: the unpickler raises many kinds
        return None, f"unreadable: {type(exc).__name__}"
    if not isinstance(data, dict):
        return None, f"holds a {type(data).__name__}, not a dict"
    if data.get("version") != CACHE_VERSION:
        return None, "" if isinstance(data.get("version"), int) else "no version"
    problem = _cache_problem(data)
    return (None, problem) if problem else (data, "")


def _cache_problem(data: dict[str, object]) -> str:
    """What is wrong with a loaded cache dict ('' when nothing)."""
    for part in ("train", "test"):
        x, y = data.get(f"{part}_x"), data.get(f"{part}_y")
        if not (isinstance(x, Tensor) and x.dtype == torch.uint8 and x.dim() == 4):
            return f"{part}_x is not a uint8 (N, C, H, W) tensor"
        if not (isinstance(y, Tensor) and y.dtype == torch.long and y.shape == x.shape[:1]):
            return f"{part}_y is not a long tensor of {x.shape[0]} labels"
    classes = data.get("classes")
    if not isinstance(classes, list) or not all(isinstance(c, str) for c in classes):
        return "classes is not a list of names"
    return ""


def _rebuild(name: str, root: Path, download: bool, path: Path, problem: str
             ) -> dict[str, object]:
    """The raw files read again for a damaged cache, or one line saying to delete the cache."""
    try:
        return _read_all(name, root, download)
    except DatasetError:
        raise DatasetError(
            f"{name}: the tensor cache {path} is damaged ({problem}) and the raw files are not "
            f"there to rebuild it; delete {path} and load again (with dataset.download=true, or "
            f"dataset.root pointing at the raw files)"
        ) from None


def _write_cache(data: dict[str, object], path: Path) -> None:
    """Save the cache atomically: a temporary file of this process, then a rename, so neither
    a concurrent reader nor a second process writing the same cache sees half a file."""
    tmp = path.with_name(f".{path.name}.{os.getpid()}.{threading.get_ident()}.tmp")
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        torch.save(data, tmp)
        os.replace(tmp, path)
    except OSError:
        pass  # a read-only root still works, only slower next time
    finally:
        with contextlib.suppress(OSError):
            tmp.unlink(missing_ok=True)  # left only when the rename did not happen


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
