"""BatchLoader: epochs cover every sample once, seeded shuffles, formats, augmentation."""

from __future__ import annotations

import pytest
import torch

from nascli.data import AugmentSpec, BatchLoader, DatasetError, TensorSplit


def make_split(n: int = 50) -> TensorSplit:
    raw = torch.zeros(n, 2, 6, 6, dtype=torch.uint8)
    raw[:, 0, 0, 0] = torch.arange(n, dtype=torch.uint8)  # the sample's id, for bookkeeping
    raw[:, 1] = torch.randint(0, 256, (n, 6, 6), generator=torch.Generator().manual_seed(0))
    mean, std = torch.tensor([10.0, 120.0]), torch.tensor([20.0, 70.0])
    return TensorSplit(raw, torch.arange(n) % 5, mean, std)


def ids(x: torch.Tensor) -> list[int]:
    return (x[:, 0, 0, 0] * 20.0 + 10.0).round().long().tolist()


@pytest.mark.parametrize("shuffle", [False, True])
@pytest.mark.parametrize("batch_size", [1, 7, 50, 64])
def test_each_epoch_visits_every_sample_once(shuffle, batch_size):
    split = make_split()
    loader = BatchLoader(split, batch_size, shuffle=shuffle)
    assert len(loader) == -(-50 // batch_size)
    for _ in range(2):
        seen, batches = [], 0
        for x, y in loader:
            assert x.shape[1:] == (2, 6, 6) and x.dtype == torch.float32
            assert torch.equal(y, torch.tensor(ids(x)) % 5)  # labels stay with their images
            seen += ids(x)
            batches += 1
        assert sorted(seen) == list(range(50)) and batches == len(loader)
        if not shuffle:
            assert seen == list(range(50))


def test_drop_last_skips_the_short_batch():
    loader = BatchLoader(make_split(), 16, shuffle=True, drop_last=True)
    sizes = [len(y) for _, y in loader]
    assert sizes == [16, 16, 16] and len(loader) == 3


def test_batches_are_normalised_like_the_split():
    split = make_split()
    x, _ = next(iter(BatchLoader(split, 50)))
    assert torch.allclose(x, split.images)


def test_shuffle_is_seeded_and_changes_between_epochs():
    def order(seed: int, epochs: int = 2) -> list[list[int]]:
        loader = BatchLoader(
            make_split(), 50, shuffle=True, generator=torch.Generator().manual_seed(seed)
        )
        return [ids(x) for _ in range(epochs) for x, _ in loader]

    a, b, c = order(1), order(1), order(2)
    assert a == b and a != c
    assert a[0] != a[1]  # a new permutation every epoch


def test_augmentation_is_applied_and_reproducible():
    spec = AugmentSpec(crop_padding=2, flip=True, cutout=2)
    split = make_split()

    def first(seed: int) -> torch.Tensor:
        loader = BatchLoader(split, 50, augment=spec, generator=torch.Generator().manual_seed(seed))
        return next(iter(loader))[0]

    assert torch.equal(first(3), first(3))
    assert not torch.allclose(first(3), split.images)
    x, _ = next(iter(BatchLoader(split, 50, augment=AugmentSpec())))
    assert torch.allclose(x, split.images)  # a disabled spec is no augmentation


def test_channels_last_and_dtype_options():
    spec = AugmentSpec(crop_padding=1, flip=True)
    split = make_split()
    ref = next(iter(BatchLoader(split, 50, augment=spec)))[0]
    loader = BatchLoader(split, 50, augment=spec, channels_last=True, dtype=torch.bfloat16)
    x, y = next(iter(loader))
    assert x.dtype == torch.bfloat16 and y.dtype == torch.long
    assert x.is_contiguous(memory_format=torch.channels_last)
    assert torch.equal(x, ref.to(torch.bfloat16))


def test_empty_split_and_bad_batch_size():
    empty = TensorSplit(
        torch.zeros(0, 1, 4, 4, dtype=torch.uint8),
        torch.zeros(0, dtype=torch.long),
        torch.zeros(1),
        torch.ones(1),
    )
    assert list(BatchLoader(empty, 8, shuffle=True)) == []
    with pytest.raises(DatasetError):
        BatchLoader(make_split(), 0)


@pytest.mark.skipif(not torch.cuda.is_available(), reason="needs CUDA")
def test_loader_on_cuda_matches_cpu():
    spec = AugmentSpec(crop_padding=2, flip=True, cutout=2)
    split = make_split()
    kwargs = {"shuffle": True, "augment": spec}
    cpu = list(BatchLoader(split, 16, generator=torch.Generator().manual_seed(0), **kwargs))
    gpu = list(
        BatchLoader(split, 16, device="cuda", generator=torch.Generator().manual_seed(0), **kwargs)
    )
    for (xc, yc), (xg, yg) in zip(cpu, gpu, strict=True):
        assert xg.device.type == "cuda"
        assert torch.allclose(xg.cpu(), xc) and torch.equal(yg.cpu(), yc)


def test_moving_splits_to_a_device_keeps_everything():
    from nascli.data import load_dataset

    d = load_dataset("synthetic", num_samples=100)
    same = d.to("cpu")
    assert same.train is d.train and same.fingerprint == d.fingerprint
    if torch.cuda.is_available():
        moved = d.to("cuda")
        assert moved.train.raw.is_cuda and moved.test.labels.is_cuda
        assert torch.equal(moved.val.raw.cpu(), d.val.raw)
