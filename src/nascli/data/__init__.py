"""Datasets as device-resident tensors: a registry by name, seeded splits, batched augmentation.

``load_dataset(name, ...)`` returns :class:`DataSplits` (train, val, test); ``BatchLoader``
iterates a split on the training device with on-device augmentation. Register your own dataset
with ``@register_dataset("name")`` on a builder that returns :class:`RawData`.
"""

from nascli.data import embedded, imagefolder, torchvision_sets  # noqa: F401  (registers)
from nascli.data.augment import augment_batch, cutout, cutout_mask, random_crop, random_flip
from nascli.data.loader import BatchLoader
from nascli.data.registry import (
    DATASETS,
    DEFAULT_ROOT,
    RawData,
    dataset_options,
    load_dataset,
    register_dataset,
)
from nascli.data.splits import (
    AugmentSpec,
    DatasetError,
    DataSplits,
    TensorSplit,
    stratified_split,
    stratified_subset,
)

__all__ = [
    "DATASETS",
    "DEFAULT_ROOT",
    "AugmentSpec",
    "BatchLoader",
    "DataSplits",
    "DatasetError",
    "RawData",
    "TensorSplit",
    "augment_batch",
    "cutout",
    "cutout_mask",
    "dataset_options",
    "load_dataset",
    "random_crop",
    "random_flip",
    "register_dataset",
    "stratified_split",
    "stratified_subset",
]
