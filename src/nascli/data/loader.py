"""``BatchLoader``: mini-batches from tensors that live on the training device.

Small-image datasets fit in device memory, so the split moves there once (as uint8) and each batch
is an index, a normalisation and a batched augmentation: no worker processes, no host-to-device
copy per step, and the data pipeline stays a small fraction of a training step.
"""

from __future__ import annotations

from collections.abc import Iterator

import torch
from torch import Tensor

from nascli.data.augment import augment_batch
from nascli.data.splits import AugmentSpec, DatasetError, TensorSplit


class BatchLoader:
    """Iterate (x, y) batches of ``split`` on ``device``; each pass over it is one epoch.

    x: (B, C, H, W) normalised, augmented when ``augment`` is given, in ``dtype`` and (with
    ``channels_last``) NHWC memory format; y: (B,) long. Shuffling and augmentation draw from
    ``generator`` (a seeded CPU generator by default), so a seeded loader repeats exactly. Each
    epoch visits every sample once; ``drop_last`` skips a final short batch.

    ``shard=(rank, world)`` (data-parallel training, needs ``drop_last``): ``batch_size`` is
    the global batch and this loader yields rank's contiguous ``batch_size // world`` samples
    of each. Every rank passes an equally seeded generator, so all agree on the shuffle; the
    global batch is augmented whole before it is cut, so each sample gets the crop, flip and
    cutout it would get in one process (augmentation is a gather, cheap next to a step).
    """

    def __init__(
        self,
        split: TensorSplit,
        batch_size: int,
        *,
        shuffle: bool = False,
        augment: AugmentSpec | None = None,
        device: str | torch.device = "cpu",
        generator: torch.Generator | None = None,
        drop_last: bool = False,
        channels_last: bool = False,
        dtype: torch.dtype = torch.float32,
        shard: tuple[int, int] | None = None,
    ) -> None:
        if batch_size < 1:
            raise DatasetError(f"batch_size must be >= 1, got {batch_size}")
        if shard is not None and not (0 <= shard[0] < shard[1] and batch_size % shard[1] == 0
                                      and drop_last):
            raise DatasetError(f"shard={shard} needs 0 <= rank < world, a batch_size "
                               f"({batch_size}) divisible by world, and drop_last")
        self.shard = shard
        self.device = torch.device(device)
        self.raw = split.raw.to(self.device)
        self.labels = split.labels.to(self.device)
        self.mean = split.mean.to(self.device).view(1, -1, 1, 1)
        self.std = split.std.to(self.device).view(1, -1, 1, 1)
        self.batch_size = batch_size
        self.shuffle = shuffle
        self.augment = augment if augment is not None and augment.enabled else None
        self.generator = generator if generator is not None else torch.Generator().manual_seed(0)
        self.drop_last = drop_last
        self.memory_format = torch.channels_last if channels_last else torch.contiguous_format
        self.dtype = dtype

    def __len__(self) -> int:
        n = self.labels.shape[0]
        return n // self.batch_size if self.drop_last else -(-n // self.batch_size)

    @property
    def num_samples(self) -> int:
        return int(self.labels.shape[0])

    def __iter__(self) -> Iterator[tuple[Tensor, Tensor]]:
        n = self.num_samples
        if self.shuffle:
            g = self.generator
            order = torch.randperm(n, generator=g, device=g.device).to(self.device)
        else:
            order = None
        for b in range(len(self)):
            lo, hi = b * self.batch_size, min((b + 1) * self.batch_size, n)
            if order is None:  # a slice is a view: no gather needed
                raw, y = self.raw[lo:hi], self.labels[lo:hi]
            else:
                idx = order[lo:hi]
                raw, y = self.raw[idx], self.labels[idx]
            if self.shard is None:
                yield self._prepare(raw), y
                continue
            rank, world = self.shard
            part = slice(rank * (hi - lo) // world, (rank + 1) * (hi - lo) // world)
            if self.augment is None:  # no random draws: prepare this rank's part only
                yield self._prepare(raw[part]), y[part]
            else:
                yield self._prepare(raw)[part], y[part]

    def _prepare(self, raw: Tensor) -> Tensor:
        # Augment in float32 after normalising, so cutout's zero is the channel mean and padding
        # is mean colour; cast to a low-precision dtype only at the end.
        x = (raw.float() - self.mean) / self.std
        if self.augment is not None:
            x = augment_batch(x, self.augment, self.generator)
        return x.to(dtype=self.dtype, memory_format=self.memory_format)
