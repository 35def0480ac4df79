"""Datasets by name: ``DATASETS``, ``register_dataset`` and ``load_dataset``.

A builder reads the data and returns :class:`RawData` (uint8 images, labels, an optional official
test part and optional official val part). ``load_dataset`` does the rest the same way for every
dataset: the fixed test split where there is no official one, the seeded train/val split, the
low-fidelity ``fraction``, normalisation statistics and the fingerprint.
"""

from __future__ import annotations

import inspect
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import torch
from torch import Tensor

from nascli.data.splits import (
    AugmentSpec,
    DatasetError,
    DataSplits,
    TensorSplit,
    as_size,
    channel_stats,
    fingerprint,
    stratified_split,
)

DEFAULT_ROOT = "~/.cache/nascli/data"

# The test split of datasets without an official one never depends on the run seed, so runs with
# different seeds are compared on the same held-out images.
TEST_SPLIT_SEED = 0


@dataclass
class RawData:
    """What a builder returns: uint8 images (N, C, H, W) and long labels (N,) per part.

    ``test`` is None when the dataset has no official test split (``load_dataset`` then holds out
    ``test_fraction`` of ``train`` with a fixed seed); ``val`` is None unless the data ships one.
    """

    train: tuple[Tensor, Tensor]
    num_classes: int
    augment: AugmentSpec
    test: tuple[Tensor, Tensor] | None = None
    val: tuple[Tensor, Tensor] | None = None
    test_fraction: float = 0.2
    classes: tuple[str, ...] = field(default=())


Builder = Callable[..., RawData]
DATASETS: dict[str, Builder] = {}


def register_dataset(name: str) -> Callable[[Builder], Builder]:
    """Decorator: register ``builder(root, download, image_size, **options) -> RawData``.

    ``root`` is a :class:`~pathlib.Path` (user-expanded), ``image_size`` an (H, W) tuple or None
    (the builder's native size); builders return images at ``image_size`` when it is given.
    """

    def deco(builder: Builder) -> Builder:
        if name in DATASETS and DATASETS[name] is not builder:
            raise ValueError(f"dataset {name!r} is already registered")
        DATASETS[name] = builder
        return builder

    return deco


def dataset_options(name: str) -> list[str]:
    """Names of the dataset-specific options a builder accepts (beyond the common ones)."""
    params = inspect.signature(_builder(name)).parameters
    return [p for p in params if p not in ("root", "download", "image_size")]


def load_dataset(
    name: str,
    *,
    root: str | Path = DEFAULT_ROOT,
    download: bool = False,
    val_fraction: float = 0.1,
    seed: int = 0,
    fraction: float = 1.0,
    image_size: int | tuple[int, int] | None = None,
    **options: Any,
) -> DataSplits:
    """Load dataset ``name`` as train/val/test tensor splits.

    ``val_fraction`` of the training data (stratified, seeded by ``seed``) becomes ``val``, unless
    the data ships its own val part. ``fraction`` keeps a seeded stratified share of ``train``
    only (low-fidelity search; val and test are unchanged). Normalisation statistics come from
    the whole train part before ``fraction``, so every fidelity sees the same pixel scale.
    ``options`` are dataset-specific (see ``dataset_options(name)``).
    """
    builder = _builder(name)
    valid = dataset_options(name)
    unknown = sorted(set(options) - set(valid))
    if unknown:
        raise DatasetError(
            f"{name}: unknown option(s) {', '.join(unknown)}; valid: "
            f"{', '.join([*valid, 'val_fraction', 'seed', 'fraction', 'image_size']) or 'none'}"
        )
    if not 0.0 < fraction <= 1.0:
        raise DatasetError(f"{name}: fraction must be in (0, 1], got {fraction}")
    if not 0.0 <= val_fraction < 1.0:
        raise DatasetError(f"{name}: val_fraction must be in [0, 1), got {val_fraction}")

    raw = builder(Path(root).expanduser(), download, as_size(image_size), **options)
    pool = raw.train
    if raw.test is None:
        keep, held = stratified_split(pool[1].numpy(), raw.test_fraction, TEST_SPLIT_SEED)
        test, pool = _take(pool, held), _take(pool, keep)
    else:
        test = raw.test
    if raw.val is None:
        keep, held = stratified_split(pool[1].numpy(), val_fraction, seed)
        val, train = _take(pool, held), _take(pool, keep)
    else:
        val, train = raw.val, pool

    mean, std = channel_stats(train[0])
    if fraction < 1.0:
        _, kept = stratified_split(train[1].numpy(), fraction, seed + 1)
        if len(kept) == 0:
            raise DatasetError(f"{name}: fraction={fraction} leaves no training images")
        train = _take(train, kept)

    parts = {"train": train, "val": val, "test": test}
    split = {k: TensorSplit(x, y, mean, std) for k, (x, y) in parts.items()}
    images = train[0]
    return DataSplits(
        name=name,
        train=split["train"],
        val=split["val"],
        test=split["test"],
        num_classes=raw.num_classes,
        in_channels=int(images.shape[1]),
        image_size=(int(images.shape[2]), int(images.shape[3])),
        fingerprint=fingerprint(name, parts),
        augment=raw.augment,
        classes=raw.classes or tuple(str(i) for i in range(raw.num_classes)),
    )


def _builder(name: str) -> Builder:
    try:
        return DATASETS[name]
    except KeyError:
        raise DatasetError(
            f"unknown dataset {name!r}; registered: {', '.join(sorted(DATASETS))}"
        ) from None


def _take(part: tuple[Tensor, Tensor], idx: np.ndarray) -> tuple[Tensor, Tensor]:
    index = torch.from_numpy(np.asarray(idx, dtype=np.int64))
    return part[0][index], part[1][index]
