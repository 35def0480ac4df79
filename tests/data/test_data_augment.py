"""Batched augmentation: correctness, per-sample randomness, determinism, memory formats."""

from __future__ import annotations

import pytest
import torch
import torch.nn.functional as F

from nascli.data import AugmentSpec, augment_batch, cutout, cutout_mask, random_crop, random_flip
from nascli.data.augment import crop_at


def gen(seed: int = 0) -> torch.Generator:
    return torch.Generator().manual_seed(seed)


@pytest.fixture
def batch() -> torch.Tensor:
    return torch.randn(32, 3, 12, 10, generator=gen(123))


def test_crop_with_zero_padding_is_identity(batch):
    assert torch.equal(random_crop(batch, 0, gen()), batch)


def test_crop_at_matches_slicing_per_sample(batch):
    top = torch.randint(0, 5, (32,), generator=gen(1))
    left = torch.randint(0, 4, (32,), generator=gen(2))
    out = crop_at(batch, top, left, (8, 6))
    for i in range(32):
        t, lo = int(top[i]), int(left[i])
        assert torch.equal(out[i], batch[i, :, t : t + 8, lo : lo + 6])


def test_crop_is_a_shift_of_the_zero_padded_image(batch):
    out = random_crop(batch, 3, gen())
    padded = F.pad(batch, (3, 3, 3, 3))
    assert out.shape == batch.shape
    offsets = set()
    for i in range(len(batch)):  # each output is one window of its own padded input
        windows = padded[i].unfold(1, 12, 1).unfold(2, 10, 1)  # (C, 7, 7, 12, 10)
        hits = (windows == out[i].view(3, 1, 1, 12, 10)).flatten(3).all(3).all(0)
        assert hits.any()
        offsets.add(tuple(hits.nonzero()[0].tolist()))
    assert len(offsets) > 5  # samples are shifted independently


def test_flip_twice_is_identity_and_flips_some_samples(batch):
    once = random_flip(batch, gen(5))
    assert torch.equal(random_flip(once, gen(5)), batch)
    flipped = [not torch.equal(once[i], batch[i]) for i in range(len(batch))]
    assert 0 < sum(flipped) < len(batch)
    for i, f in enumerate(flipped):
        assert torch.equal(once[i], batch[i].flip(2) if f else batch[i])


def test_flip_probability_bounds(batch):
    assert torch.equal(random_flip(batch, gen(), p=0.0), batch)
    assert torch.equal(random_flip(batch, gen(), p=1.0), batch.flip(3))


def test_cutout_zeroes_exactly_the_mask(batch):
    g = gen(7)
    state = g.get_state()
    out = cutout(batch, 4, g)
    g.set_state(state)
    mask = cutout_mask(32, (12, 10), 4, g, batch.device).unsqueeze(1).expand_as(batch)
    assert torch.equal(out[mask], torch.zeros(int(mask.sum())))
    assert torch.equal(out[~mask], batch[~mask])
    assert len({tuple(m.nonzero()[0].tolist()) for m in mask[:, 0]}) > 1  # per-sample squares


def test_cutout_mask_is_a_square_clipped_at_the_border():
    mask = cutout_mask(500, (16, 16), 5, gen(3), torch.device("cpu"))
    area = mask.flatten(1).sum(1)
    assert area.max() == 25 and area.min() >= 9  # a centre on the border keeps 3 x 3
    for m in mask[:20]:
        ys, xs = m.nonzero().unbind(1)
        box = (ys.max() - ys.min() + 1) * (xs.max() - xs.min() + 1)
        assert box == m.sum()  # filled rectangle


def test_augment_is_deterministic_for_a_seeded_generator(batch):
    spec = AugmentSpec(crop_padding=2, flip=True, cutout=3)
    a = augment_batch(batch, spec, gen(11))
    b = augment_batch(batch, spec, gen(11))
    c = augment_batch(batch, spec, gen(12))
    assert torch.equal(a, b)
    assert not torch.equal(a, c)
    assert torch.equal(augment_batch(batch, AugmentSpec(), gen()), batch)


def test_augment_does_not_change_its_input(batch):
    before = batch.clone()
    augment_batch(batch, AugmentSpec(crop_padding=2, flip=True, cutout=3), gen())
    assert torch.equal(batch, before)


@pytest.mark.parametrize("dtype", [torch.float32, torch.float64, torch.bfloat16])
def test_augment_on_channels_last_and_other_dtypes_matches(batch, dtype):
    spec = AugmentSpec(crop_padding=2, flip=True, cutout=3)
    x = batch.to(dtype)
    ref = augment_batch(x, spec, gen(4))
    out = augment_batch(x.contiguous(memory_format=torch.channels_last), spec, gen(4))
    assert out.dtype == dtype
    assert torch.equal(out, ref)


@pytest.mark.skipif(not torch.cuda.is_available(), reason="needs CUDA")
def test_cpu_generator_gives_the_same_result_on_cuda(batch):
    spec = AugmentSpec(crop_padding=2, flip=True, cutout=3)
    ref = augment_batch(batch, spec, gen(9))
    out = augment_batch(batch.cuda(), spec, gen(9))
    assert out.device.type == "cuda"
    assert torch.equal(out.cpu(), ref)


def test_fused_crop_and_flip_equals_crop_then_flip(batch):
    spec = AugmentSpec(crop_padding=3, flip=True, cutout=0)
    g = gen(21)
    separate = random_flip(random_crop(batch, 3, g), g)
    assert torch.equal(augment_batch(batch, spec, gen(21)), separate)
