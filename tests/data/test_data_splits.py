"""Seeded stratified splitting, statistics, resizing and the fingerprint helper."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from hypothesis import given, settings
from hypothesis import strategies as st

from nascli.data.splits import (
    DatasetError,
    as_size,
    channel_stats,
    fingerprint,
    resize_images,
    stratified_split,
)


@settings(max_examples=60, deadline=None)
@given(
    counts=st.lists(st.integers(1, 40), min_size=1, max_size=6),
    fraction=st.floats(0.0, 1.0),
    seed=st.integers(0, 2**31),
)
def test_stratified_split_partitions_with_exact_total_and_fair_shares(counts, fraction, seed):
    labels = np.repeat(np.arange(len(counts)), counts)
    np.random.default_rng(seed).shuffle(labels)
    kept, taken = stratified_split(labels, fraction, seed)
    assert sorted(np.concatenate([kept, taken]).tolist()) == list(range(len(labels)))
    assert len(taken) == round(len(labels) * fraction)
    for c, n in enumerate(counts):  # every class gives its share, within rounding
        assert abs((labels[taken] == c).sum() - n * fraction) < 1.0 + 1e-9


def test_stratified_split_is_seeded():
    labels = np.arange(200) % 4
    a, b, c = (stratified_split(labels, 0.25, s)[1] for s in (0, 0, 1))
    assert np.array_equal(a, b)
    assert not np.array_equal(a, c)


def test_stratified_split_rejects_bad_fraction():
    with pytest.raises(DatasetError):
        stratified_split(np.zeros(4), 1.5, 0)


def test_channel_stats_match_numpy():
    raw = torch.randint(0, 256, (10, 3, 5, 5), dtype=torch.uint8)
    mean, std = channel_stats(raw)
    x = raw.numpy().astype(np.float64).transpose(1, 0, 2, 3).reshape(3, -1)
    assert np.allclose(mean.numpy(), x.mean(1), atol=1e-4)
    assert np.allclose(std.numpy(), x.std(1, ddof=1), atol=1e-4)


def test_channel_stats_of_a_constant_channel_do_not_divide_by_zero():
    _, std = channel_stats(torch.full((4, 1, 2, 2), 7, dtype=torch.uint8))
    assert float(std) > 0


def test_resize_images_keeps_uint8_and_constant_images():
    raw = torch.full((3, 2, 8, 8), 200, dtype=torch.uint8)
    for mode in ("bilinear", "nearest"):
        out = resize_images(raw, (28, 20), mode)
        assert out.dtype == torch.uint8 and out.shape == (3, 2, 28, 20)
        assert (out == 200).all()
    with pytest.raises(DatasetError):
        resize_images(raw, (4, 4), "cubic")


def test_as_size():
    assert as_size(28) == (28, 28)
    assert as_size([16, 24]) == (16, 24)
    assert as_size(None) is None
    with pytest.raises(DatasetError):
        as_size((1, 2, 3))
    with pytest.raises(DatasetError):
        as_size(0)


def test_fingerprint_sees_pixels_labels_and_order():
    x = torch.arange(32, dtype=torch.uint8).view(2, 1, 4, 4)
    y = torch.tensor([0, 1])
    base = fingerprint("d", {"train": (x, y)})
    assert len(base) == 16
    assert base == fingerprint("d", {"train": (x.clone(), y.clone())})
    assert base != fingerprint("d", {"train": (x, y.flip(0))})
    assert base != fingerprint("d", {"train": (x + 1, y)})
    assert base != fingerprint("e", {"train": (x, y)})
    assert base != fingerprint("d", {"val": (x, y)})
