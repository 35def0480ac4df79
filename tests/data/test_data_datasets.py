"""The offline datasets and the generic split logic of ``load_dataset``."""

from __future__ import annotations

import functools

import pytest
import torch

from nascli.data import DATASETS, DatasetError, DataSplits, dataset_options, load_dataset

INDEXED_N = 300  # images in the ``indexed_dataset`` fixture (conftest.py)


@functools.cache
def cached(name: str) -> DataSplits:
    """Default-option loads, shared by the tests that only read them."""
    return load_dataset(name)


# name -> (train, val, test, channels, (H, W)) at the default options
OFFLINE = {
    "mnist5k": (3200, 800, 1000, 1, (28, 28)),
    "digits": (1150, 288, 359, 1, (28, 28)),
    "synthetic": (1280, 320, 400, 3, (32, 32)),
}


def test_every_product_dataset_is_registered():
    expected = {"mnist5k", "digits", "synthetic", "cifar10", "cifar100", "mnist"}
    assert expected | {"fashion_mnist", "svhn", "imagefolder"} <= set(DATASETS)


def indices(raw: torch.Tensor) -> set[int]:
    """The indices the ``indexed`` dataset writes into pixels (0, 0) and (0, 1)."""
    return set((raw[:, 0, 0, 0].long() * 256 + raw[:, 0, 0, 1].long()).tolist())


@pytest.mark.parametrize("name", sorted(OFFLINE))
def test_offline_dataset_shapes_classes_and_normalisation(name):
    n_train, n_val, n_test, channels, size = OFFLINE[name]
    d = cached(name)
    assert (len(d.train), len(d.val), len(d.test)) == (n_train, n_val, n_test)
    assert (d.in_channels, d.image_size, d.num_classes) == (channels, size, 10)
    assert len(d.classes) == 10
    for split in (d.train, d.val, d.test):
        assert split.raw.dtype == torch.uint8 and split.raw.shape[1:] == (channels, *size)
        assert split.labels.dtype == torch.long
        assert set(split.labels.unique().tolist()) == set(range(10))
    x = d.train.images
    assert x.dtype == torch.float32
    assert torch.allclose(x.mean(dim=(0, 2, 3)), torch.zeros(channels), atol=1e-4)
    assert torch.allclose(x.std(dim=(0, 2, 3)), torch.ones(channels), atol=1e-3)
    # val and test use the train statistics, so they are near, not exactly at, 0 and 1
    assert d.val.images.mean().abs() < 0.2
    assert d.summary()["sizes"] == {"train": n_train, "val": n_val, "test": n_test}


def test_mnist5k_is_stratified():
    d = cached("mnist5k")
    for split, per_class in ((d.train, 320), (d.val, 80), (d.test, 100)):
        assert torch.bincount(split.labels).tolist() == [per_class] * 10


def test_augment_defaults():
    assert not cached("mnist5k").augment.flip
    assert cached("mnist5k").augment.crop_padding == 2
    assert not load_dataset("synthetic", num_samples=100).augment.enabled


def test_splits_are_disjoint_and_cover_the_data(indexed_dataset):
    d = load_dataset(indexed_dataset, val_fraction=0.2)
    parts = [indices(s.raw) for s in (d.train, d.val, d.test)]
    assert sum(len(p) for p in parts) == INDEXED_N == len(set.union(*parts))
    assert (len(d.test), len(d.val), len(d.train)) == (60, 48, 192)
    for split in (d.train, d.val, d.test):  # labels travel with their images
        idx = split.raw[:, 0, 0, 0].long() * 256 + split.raw[:, 0, 0, 1].long()
        assert torch.equal(idx % 3, split.labels)


def test_split_seed_changes_train_and_val_but_never_test(indexed_dataset):
    a, b, c = (load_dataset(indexed_dataset, seed=s) for s in (0, 0, 1))
    assert indices(a.val.raw) == indices(b.val.raw)
    assert a.fingerprint == b.fingerprint
    assert indices(a.val.raw) != indices(c.val.raw)
    assert indices(a.test.raw) == indices(c.test.raw)
    assert a.fingerprint != c.fingerprint


def test_fraction_subsamples_train_only(indexed_dataset):
    full = load_dataset(indexed_dataset, seed=3)
    low = load_dataset(indexed_dataset, seed=3, fraction=0.25)
    assert len(low.train) == round(len(full.train) * 0.25)
    assert indices(low.train.raw) < indices(full.train.raw)
    assert indices(low.val.raw) == indices(full.val.raw)
    assert torch.bincount(low.train.labels).tolist() == [len(low.train) // 3] * 3
    assert torch.equal(low.train.mean, full.train.mean)  # same pixel scale at every fidelity
    assert low.fingerprint != full.fingerprint


def test_val_fraction_zero_gives_an_empty_val(indexed_dataset):
    d = load_dataset(indexed_dataset, val_fraction=0.0)
    assert len(d.val) == 0 and len(d.train) == 240


def test_bad_options_fail_with_one_clear_line():
    with pytest.raises(DatasetError, match="unknown dataset 'nope'"):
        load_dataset("nope")
    with pytest.raises(DatasetError, match=r"unknown option.*colour.*valid: test_fraction"):
        load_dataset("mnist5k", colour=True)
    with pytest.raises(DatasetError, match="fraction"):
        load_dataset("mnist5k", fraction=0.0)
    with pytest.raises(DatasetError, match="val_fraction"):
        load_dataset("mnist5k", val_fraction=1.0)
    assert "signal" in dataset_options("synthetic")


def test_image_size_override():
    d = load_dataset("mnist5k", image_size=32)
    assert d.image_size == (32, 32) and d.train.raw.shape[-2:] == (32, 32)
    native = load_dataset("digits", image_size=8)
    assert native.image_size == (8, 8)
    assert native.train.raw.max() == 255  # 16 grey levels scaled to the byte range


def test_synthetic_is_deterministic_and_configurable():
    a = load_dataset("synthetic", num_samples=200, num_classes=4, image_size=16, channels=1)
    b = load_dataset("synthetic", num_samples=200, num_classes=4, image_size=16, channels=1)
    c = load_dataset(
        "synthetic", num_samples=200, num_classes=4, image_size=16, channels=1, data_seed=1
    )
    assert a.fingerprint == b.fingerprint != c.fingerprint
    assert (a.num_classes, a.in_channels, a.image_size) == (4, 1, (16, 16))
    assert len(a.train) + len(a.val) + len(a.test) == 200
    with pytest.raises(DatasetError):
        load_dataset("synthetic", num_classes=1)


def test_synthetic_is_learnable_by_a_linear_model():
    d = cached("synthetic")
    x, y = d.train.images.flatten(1), d.train.labels
    centroids = torch.stack([x[y == k].mean(0) for k in range(d.num_classes)])
    # nearest class mean is a linear classifier: w_k = mu_k, b_k = -|mu_k|^2 / 2
    logits = d.test.images.flatten(1) @ centroids.T - 0.5 * (centroids**2).sum(1)
    accuracy = (logits.argmax(1) == d.test.labels).float().mean().item()
    assert accuracy > 0.3  # chance is 0.1
