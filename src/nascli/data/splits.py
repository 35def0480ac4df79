"""Tensor splits of a dataset: storage, normalisation, seeded stratified splitting, fingerprint.

Images are stored as ``uint8`` tensors (N, C, H, W) and normalised on the fly: a CIFAR-10 train
set is 150 MB as bytes and 600 MB as float32, and on a GPU the bytes move and sit in memory four
times cheaper. ``TensorSplit.images`` gives the normalised float32 view for callers that want it
(computed once, then cached); :class:`~nascli.data.loader.BatchLoader` normalises per batch.
"""

from __future__ import annotations

import hashlib
from dataclasses import dataclass, field, replace
from functools import cached_property

import numpy as np
import torch
import torch.nn.functional as F
from torch import Tensor


class DatasetError(ValueError):
    """A dataset cannot be loaded (missing files, bad option); the message is one clear line."""


@dataclass(frozen=True)
class AugmentSpec:
    """Training-time augmentation: random crop after zero padding (pixels), flip, cutout side."""

    crop_padding: int = 0
    flip: bool = False
    cutout: int = 0

    @property
    def enabled(self) -> bool:
        return self.crop_padding > 0 or self.flip or self.cutout > 0


@dataclass(frozen=True, eq=False)
class TensorSplit:
    """One split: ``raw`` uint8 (N, C, H, W), ``labels`` long (N,), per-channel ``mean``/``std``.

    ``mean`` and ``std`` (C,) are in raw pixel units and come from the train part, so every split
    of one dataset is normalised the same way.
    """

    raw: Tensor
    labels: Tensor
    mean: Tensor
    std: Tensor

    def __len__(self) -> int:
        return int(self.labels.shape[0])

    def normalize(self, raw: Tensor) -> Tensor:
        """Normalised float32 images from raw ones (any device; mean/std follow it)."""
        mean = self.mean.to(raw.device).view(1, -1, 1, 1)
        std = self.std.to(raw.device).view(1, -1, 1, 1)
        return (raw.float() - mean) / std

    def to(self, device: str | torch.device) -> TensorSplit:
        """This split on ``device`` (itself when already there); BatchLoaders then copy nothing."""
        if self.raw.device == torch.device(device):
            return self
        return TensorSplit(*(t.to(device) for t in (self.raw, self.labels, self.mean, self.std)))

    @cached_property
    def images(self) -> Tensor:
        """Normalised float32 images (N, C, H, W); computed on first use, then kept."""
        return self.normalize(self.raw)


@dataclass(frozen=True, eq=False)
class DataSplits:
    """A loaded dataset: train and val (both from the training data) and test.

    The search trains on ``train`` and scores on ``val``; ``test`` is for final evaluation only.
    ``fingerprint`` is 16 hex chars of a sha256 over every split's pixels and labels, for run
    manifests: same data and split, same fingerprint.
    """

    name: str
    train: TensorSplit
    val: TensorSplit
    test: TensorSplit
    num_classes: int
    in_channels: int
    image_size: tuple[int, int]
    fingerprint: str
    augment: AugmentSpec
    classes: tuple[str, ...] = field(default=())

    @property
    def mean(self) -> Tensor:
        return self.train.mean

    @property
    def std(self) -> Tensor:
        return self.train.std

    def to(self, device: str | torch.device) -> DataSplits:
        """All three splits on ``device``, e.g. once per search rather than once per candidate."""
        moved = {k: getattr(self, k).to(device) for k in ("train", "val", "test")}
        return replace(self, **moved)

    def summary(self) -> dict[str, object]:
        """JSON-friendly description for manifests and logs."""
        return {
            "name": self.name,
            "fingerprint": self.fingerprint,
            "num_classes": self.num_classes,
            "in_channels": self.in_channels,
            "image_size": list(self.image_size),
            "sizes": {"train": len(self.train), "val": len(self.val), "test": len(self.test)},
            "mean": [round(float(m), 4) for m in self.mean],
            "std": [round(float(s), 4) for s in self.std],
        }


def stratified_split(
    labels: np.ndarray, fraction: float, seed: int
) -> tuple[np.ndarray, np.ndarray]:
    """Seeded stratified split: (kept, taken) sorted index arrays, ``taken`` ~ fraction of N.

    Every class gives its share; per-class counts are rounded by largest remainder so that the
    total taken is exactly ``round(N * fraction)``.
    """
    labels = np.asarray(labels)
    if not 0.0 <= fraction <= 1.0:
        raise DatasetError(f"split fraction must be in [0, 1], got {fraction}")
    rng = np.random.default_rng(seed)
    classes = np.unique(labels)
    members = [np.flatnonzero(labels == c) for c in classes]
    quotas = np.array([len(m) * fraction for m in members])
    counts = np.floor(quotas).astype(int)
    short = round(len(labels) * fraction) - counts.sum()
    if short > 0:  # largest remainders first; ties broken by the seeded rng, not class order
        order = np.lexsort((rng.random(len(classes)), -(quotas - counts)))
        counts[order[:short]] += 1
    taken = [rng.permutation(m)[:k] for m, k in zip(members, counts, strict=True)]
    taken_idx = np.sort(np.concatenate(taken)) if taken else np.array([], dtype=int)
    mask = np.ones(len(labels), dtype=bool)
    mask[taken_idx] = False
    return np.flatnonzero(mask), taken_idx


def stratified_subset(split: TensorSplit, fraction: float, seed: int) -> TensorSplit:
    """A seeded, class-balanced ``fraction`` of ``split`` (the split itself at 1.0): the
    low-fidelity training set of candidates and of the supernet."""
    if fraction >= 1.0:
        return split
    _, kept = stratified_split(split.labels.cpu().numpy(), fraction, seed)
    return TensorSplit(split.raw[kept], split.labels[kept], split.mean, split.std)


def channel_stats(raw: Tensor) -> tuple[Tensor, Tensor]:
    """Per-channel mean and std (C,) of uint8 images (N, C, H, W), in float64 then float32."""
    if raw.shape[0] == 0:
        raise DatasetError("cannot compute normalisation statistics of an empty train split")
    x = raw.double().transpose(0, 1).reshape(raw.shape[1], -1)
    std = x.std(dim=1).clamp_min(1e-3)  # a constant channel must not divide by zero
    return x.mean(dim=1).float(), std.float()


def resize_images(raw: Tensor, size: tuple[int, int], mode: str = "bilinear") -> Tensor:
    """Resize uint8 images (N, C, H, W) to ``size`` (H, W); bilinear or nearest, rounded back."""
    if tuple(raw.shape[-2:]) == tuple(size):
        return raw
    if mode not in ("bilinear", "nearest"):
        raise DatasetError(f"resize mode must be 'bilinear' or 'nearest', got {mode!r}")
    out = []
    for chunk in raw.split(4096):  # bounded float memory for large sets
        kwargs = {"align_corners": False, "antialias": True} if mode == "bilinear" else {}
        y = F.interpolate(chunk.float(), size=size, mode=mode, **kwargs)
        out.append(y.round_().clamp_(0, 255).to(torch.uint8))
    return torch.cat(out) if out else raw.new_zeros((0, raw.shape[1], *size))


def as_size(value: int | tuple[int, int] | list[int] | None) -> tuple[int, int] | None:
    """``28`` or ``(28, 28)`` as an (H, W) tuple; None stays None."""
    if value is None:
        return None
    if isinstance(value, int):
        h = w = value
    else:
        if len(value) != 2:
            raise DatasetError(f"image_size must be an int or (H, W), got {value!r}")
        h, w = (int(v) for v in value)
    if h < 1 or w < 1:
        raise DatasetError(f"image_size must be positive, got {value!r}")
    return h, w


def fingerprint(name: str, splits: dict[str, tuple[Tensor, Tensor]]) -> str:
    """16 hex chars of sha256 over the name and each split's shape, pixels and labels, in order."""
    h = hashlib.sha256(name.encode())
    for key, (raw, labels) in splits.items():
        h.update(f"|{key}|{tuple(raw.shape)}|{raw.dtype}|".encode())
        h.update(raw.contiguous().numpy().tobytes())
        h.update(labels.to(torch.int64).contiguous().numpy().tobytes())
    return h.hexdigest()[:16]
