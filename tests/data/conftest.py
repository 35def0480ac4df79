"""Fixtures for the data tests: a dataset whose pixels spell out each image's index."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest
import torch

from nascli.data import DATASETS, AugmentSpec, RawData, register_dataset

INDEXED_N = 300


@pytest.fixture
def indexed_dataset() -> Iterator[str]:
    """Register ``indexed``: 300 images, 3 classes of 100, pixel (0, 0) and (0, 1) = index.

    The split logic is then checked exactly: an image's index survives every split.
    """

    def build(root: Path, download: bool, image_size: tuple[int, int] | None) -> RawData:
        idx = torch.arange(INDEXED_N)
        images = torch.zeros(INDEXED_N, 1, 4, 4, dtype=torch.uint8)
        images[:, 0, 0, 0] = (idx // 256).to(torch.uint8)
        images[:, 0, 0, 1] = (idx % 256).to(torch.uint8)
        images[:, 0, 1:, :] = 100  # some spread for the normalisation statistics
        return RawData(train=(images, idx % 3), num_classes=3, augment=AugmentSpec())

    register_dataset("indexed")(build)
    yield "indexed"
    DATASETS.unregister("indexed")
