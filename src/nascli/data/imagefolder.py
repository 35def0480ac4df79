"""A user's folder of images, one subfolder per class, read into uint8 tensors once.

Two layouts::

    root/cat/*.png, root/dog/*.png                  (one pool: test and val are held out)
    root/train/cat/..., root/val/..., root/test/... (val/ and test/ optional)

Class names are the sorted subfolders of ``root`` (or ``root/train``); val/ and test/ may hold a
subset of them. Every image is resized (squashed, aspect ratio not kept) to ``image_size``.
"""

from __future__ import annotations

import struct
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import numpy as np
import torch
from torch import Tensor

from nascli.data.registry import RawData, register_dataset
from nascli.data.splits import AugmentSpec, DatasetError

EXTENSIONS = (".png", ".jpg", ".jpeg", ".bmp", ".gif", ".tif", ".tiff", ".webp")


def _class_dirs(folder: Path) -> list[Path]:
    return sorted((d for d in folder.iterdir() if d.is_dir()), key=lambda d: d.name)


def _files(folder: Path, classes: dict[str, int]) -> list[tuple[Path, int]]:
    """(file, label) pairs under ``folder``'s class subfolders, in a stable sorted order."""
    found = []
    for sub in _class_dirs(folder):
        if sub.name not in classes:
            raise DatasetError(
                f"imagefolder: class folder {sub} is not among the training classes "
                f"({', '.join(classes)})"
            )
        files = sorted(p for p in sub.rglob("*") if p.suffix.lower() in EXTENSIONS)
        found += [(p, classes[sub.name]) for p in files]
    if not found:
        raise DatasetError(f"imagefolder: no images ({', '.join(EXTENSIONS)}) under {folder}")
    return found


def _read(path: Path, size: tuple[int, int], mode: str) -> np.ndarray:
    """One image file, converted to ``mode`` and resized to ``size``; a file PIL cannot read,
    or one whose header declares more pixels than PIL's decompression-bomb limit
    (``PIL.Image.MAX_IMAGE_PIXELS``), is one :class:`DatasetError` naming it."""
    from PIL import Image

    try:
        with Image.open(path) as img:
            _check_pixels(path, img.size)
            img = img.convert(mode).resize((size[1], size[0]), Image.Resampling.BILINEAR)
            return np.asarray(img, dtype=np.uint8)
    except DatasetError:
        raise
    except Image.DecompressionBombError:
        raise DatasetError(_too_large(path, None)) from None
    except (OSError, ValueError, SyntaxError, EOFError, struct.error) as err:
        # PIL reports broken files with all of these (UnidentifiedImageError is an OSError)
        raise DatasetError(f"imagefolder: cannot read image {path}: {err}") from None


def _check_pixels(path: Path, size: tuple[int, int]) -> None:
    """Refuse an image over PIL's limit before it is decoded (PIL itself only warns below
    twice the limit, and the decoded pixels could take gigabytes)."""
    from PIL import Image

    limit = Image.MAX_IMAGE_PIXELS
    if limit is not None and size[0] * size[1] > limit:
        raise DatasetError(_too_large(path, size))


def _too_large(path: Path, size: tuple[int, int] | None) -> str:
    from PIL import Image

    declared = f" declares {size[0]}x{size[1]} pixels, which" if size else ""
    return (f"imagefolder: image {path}{declared} exceeds the decompression-bomb limit of "
            f"{Image.MAX_IMAGE_PIXELS} pixels (a damaged or hostile file?); shrink or remove it")


def _load(
    folder: Path, classes: dict[str, int], size: tuple[int, int], mode: str, workers: int
) -> tuple[Tensor, Tensor]:
    files = _files(folder, classes)
    # PIL decodes outside the GIL, so threads load a folder several times faster than a loop.
    with ThreadPoolExecutor(max_workers=max(workers, 1)) as pool:
        arrays = list(pool.map(lambda f: _read(f[0], size, mode), files))
    images = np.stack(arrays)
    images = images[:, None] if images.ndim == 3 else images.transpose(0, 3, 1, 2)
    labels = torch.tensor([label for _, label in files], dtype=torch.long)
    return torch.from_numpy(np.ascontiguousarray(images)), labels


@register_dataset("imagefolder")
def imagefolder(
    root: Path,
    download: bool,
    image_size: tuple[int, int] | None,
    channels: int = 3,
    test_fraction: float = 0.2,
    workers: int = 8,
) -> RawData:
    """Images under ``root`` (see module docstring), resized to ``image_size`` (default 32x32).

    ``channels`` 3 reads RGB, 1 greyscale. Augmentation defaults to a crop with padding of an
    eighth of the height and, unless ``flip=false`` (text, digits, ...), a horizontal flip.
    """
    size = image_size or (32, 32)
    if channels not in (1, 3):
        raise DatasetError(f"imagefolder: channels must be 1 or 3, got {channels}")
    mode = "RGB" if channels == 3 else "L"
    if not root.is_dir():
        raise DatasetError(
            f"imagefolder: folder {root} does not exist; set dataset.root to a folder of class "
            f"subfolders (optionally inside train/, val/, test/)"
        )
    split_layout = (root / "train").is_dir()
    train_dir = root / "train" if split_layout else root
    class_dirs = _class_dirs(train_dir)
    if not class_dirs:
        raise DatasetError(f"imagefolder: {train_dir} has no class subfolders")
    classes = {d.name: i for i, d in enumerate(class_dirs)}

    def part(name: str) -> tuple[Tensor, Tensor] | None:
        folder = root / name
        return _load(folder, classes, size, mode, workers) if folder.is_dir() else None

    train = _load(train_dir, classes, size, mode, workers)
    return RawData(
        train=train,
        val=part("val") if split_layout else None,
        test=part("test") if split_layout else None,
        num_classes=len(classes),
        augment=AugmentSpec(crop_padding=max(size[0] // 8, 1), flip=True, cutout=0),
        test_fraction=test_fraction,
        classes=tuple(classes),
    )
