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
from nascli.registry import Registry, UnknownNameError

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
    #: the dataset's own default share of train that becomes val (``val_fraction=null``)
    val_fraction: float = 0.1


Builder = Callable[..., RawData]
DATASETS: Registry[Builder] = Registry("dataset")


def register_dataset(name: str) -> Callable[[Builder], Builder]:
    """Decorator: register ``builder(root, download, image_size, **options) -> RawData``.

    ``root`` is a :class:`~pathlib.Path` (user-expanded), ``image_size`` an (H, W) tuple or None
    (the builder's native size); builders return images at ``image_size`` when it is given.
    """

    def deco(builder: Builder) -> Builder:
        if name in DATASETS and DATASETS[name] is not builder:
            raise ValueError(f"dataset {name!r} is already registered")
        return DATASETS.register(name, builder)

    return deco


def dataset_options(name: str) -> list[str]:
    """Names of the dataset-specific options a builder accepts (beyond the common ones)."""
    params = inspect.signature(_builder(name)).parameters
    return [p for p in params if p not in ("root", "download", "image_size")]


def load_dataset(
    name: str,
    *,
    seed: int = 0,
    root: str = DEFAULT_ROOT,
    download: bool = False,
    val_fraction: float | None = None,
    fraction: float = 1.0,
    image_size: int | None = None,
    crop_padding: int | None = None,
    flip: bool | None = None,
    cutout: int | None = None,
    **options: Any,
) -> DataSplits:
    """Load dataset ``name`` as train/val/test tensor splits.

    ``name`` is a registered dataset, or the dotted path of a builder function in a user module
    (``mymodule.stripes``: imported, then used like a registered one). ``val_fraction`` of the
    training data (stratified, seeded by ``seed``; ``None``: the dataset's own default) becomes
    ``val``, unless the data ships its own val part. ``crop_padding``, ``flip`` and ``cutout``
    replace the dataset's default augmentation (``None`` keeps it); it is applied where training
    asks for augmentation (train-final, or ``proxy.augment=true``). ``fraction`` keeps a seeded
    stratified share of ``train`` only (low-fidelity search; val and test are unchanged).
    Normalisation statistics come from the whole train part before ``fraction``, so every
    fidelity sees the same pixel scale.
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
    if val_fraction is not None and not 0.0 <= val_fraction < 1.0:
        raise DatasetError(f"{name}: val_fraction must be in [0, 1), got {val_fraction}")
    for key, value in (("crop_padding", crop_padding), ("cutout", cutout)):
        if value is not None and value < 0:
            raise DatasetError(f"{name}: {key} must be >= 0 or null, got {value}")

    raw = builder(Path(root).expanduser(), download, as_size(image_size), **options)
    return finish_raw(raw, name=name, seed=seed, val_fraction=val_fraction, fraction=fraction,
                      crop_padding=crop_padding, flip=flip, cutout=cutout)


def finish_raw(
    raw: RawData, *, name: str, seed: int = 0, val_fraction: float | None = None,
    fraction: float = 1.0, crop_padding: int | None = None, flip: bool | None = None,
    cutout: int | None = None,
) -> DataSplits:
    """Split a builder's :class:`RawData` the same way for every dataset (see
    :func:`load_dataset`): fixed test split, seeded val split, low-fidelity fraction."""
    if not isinstance(raw, RawData):
        raise DatasetError(f"{name}: the builder returned {type(raw).__name__}, not RawData")
    if val_fraction is None:
        val_fraction = raw.val_fraction
    d = raw.augment
    augment = AugmentSpec(
        crop_padding=d.crop_padding if crop_padding is None else crop_padding,
        flip=d.flip if flip is None else flip,
        cutout=d.cutout if cutout is None else cutout,
    )
    _check_classes(raw, name)
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
    _check_sizes(raw, name, {"train": train, "val": val, "test": test}, val_fraction)

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
        augment=augment,
        classes=raw.classes or tuple(str(i) for i in range(raw.num_classes)),
    )


def _check_classes(raw: RawData, name: str) -> None:
    """At least two classes, and training images of at least two of them."""
    if raw.num_classes < 2:
        found = f" ({', '.join(raw.classes)})" if raw.classes else ""
        hint = "; put each class's images in its own subfolder" if name == "imagefolder" else ""
        raise DatasetError(
            f"{name}: only {raw.num_classes} class{found}; a classifier needs at least 2{hint}"
        )
    present = int(torch.unique(raw.train[1]).numel())
    if present < 2:
        raise DatasetError(
            f"{name}: the training images hold {present} of the {raw.num_classes} classes; a "
            f"classifier needs images of at least 2 classes"
        )


def _check_sizes(
    raw: RawData, name: str, parts: dict[str, tuple[Tensor, Tensor]], val_fraction: float
) -> None:
    """Every split holds images (val may be empty only when val_fraction is 0 on purpose);
    otherwise one line with the numbers and what to do."""
    sizes = {k: int(y.shape[0]) for k, (_, y) in parts.items()}
    needed = [k for k in sizes if k != "val" or raw.val is not None or val_fraction > 0]
    empty = [k for k in needed if sizes[k] == 0]
    if not empty:
        return
    total = sum(sizes.values())
    how = [f"test_fraction={raw.test_fraction}" if raw.test is None else "",
           f"val_fraction={val_fraction}" if raw.val is None else ""]
    folders = " or put val/ and test/ folders beside train/" if name == "imagefolder" else ""
    raise DatasetError(
        f"{name}: too few images: {total} give {sizes['train']} train, {sizes['val']} val and "
        f"{sizes['test']} test ({', '.join(h for h in how if h) or 'as shipped'}), so the "
        f"{' and '.join(empty)} split{'s' if len(empty) > 1 else ''} would be empty; add more "
        f"images per class{folders}"
    )


def _builder(name: str) -> Builder:
    if name in DATASETS:
        return DATASETS[name]
    if "." in name:  # a user's builder function, by dotted path
        from importlib import import_module

        module, _, attr = name.rpartition(".")
        try:
            builder = getattr(import_module(module), attr)
        except (ImportError, AttributeError) as exc:
            raise DatasetError(f"dataset {name!r} cannot be imported ({exc})") from None
        if not callable(builder):
            raise DatasetError(f"dataset {name!r} is not a builder function")
        return builder
    try:
        return DATASETS.get(name)
    except UnknownNameError as exc:
        raise DatasetError(str(exc)) from None


def _take(part: tuple[Tensor, Tensor], idx: np.ndarray) -> tuple[Tensor, Tensor]:
    index = torch.from_numpy(np.asarray(idx, dtype=np.int64))
    return part[0][index], part[1][index]
