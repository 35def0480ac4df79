"""Batched augmentation on whatever device the batch lives on, with no per-sample Python loop.

Every random draw comes from a ``torch.Generator`` the caller passes, so a run is reproducible.
Draws are made on the generator's device and then moved to the batch: a CPU generator gives the
same crops, flips and cutouts on CPU and GPU. Functions take a float batch (N, C, H, W) in any
memory format and return a new tensor; the input is never changed.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import Tensor

from nascli.data.splits import AugmentSpec


def _randint(high: int, n: int, generator: torch.Generator, device: torch.device) -> Tensor:
    return torch.randint(high, (n,), generator=generator, device=generator.device).to(device)


def _rand(n: int, generator: torch.Generator, device: torch.device) -> Tensor:
    return torch.rand(n, generator=generator, device=generator.device).to(device)


def crop_at(
    x: Tensor, top: Tensor, left: Tensor, size: tuple[int, int], mirror: Tensor | None = None
) -> Tensor:
    """Per-sample crops: window ``size`` (h, w) of x (N, C, H, W) at ``top``/``left`` (N,).

    ``mirror`` (N,) bool reads a sample's window right to left, i.e. flips it, in the same gather.
    """
    n, c, _, width = x.shape
    h, w = size
    rows = top.view(n, 1, 1) + torch.arange(h, device=x.device).view(1, h, 1)
    steps = torch.arange(w, device=x.device).view(1, 1, w)
    if mirror is not None:
        steps = torch.where(mirror.view(n, 1, 1), w - 1 - steps, steps)
    cols = left.view(n, 1, 1) + steps
    # One gather over flattened pixels; measured 2-4x faster on CPU than advanced indexing
    # with three broadcast index tensors, and the index is shared by the channels (expand).
    flat = (rows * width + cols).view(n, 1, h * w).expand(n, c, h * w)
    return x.reshape(n, c, -1).gather(2, flat).view(n, c, h, w)


def crop_and_flip(x: Tensor, padding: int, flip_p: float, generator: torch.Generator) -> Tensor:
    """Random crop after zero padding, then a left-right flip with probability ``flip_p``.

    Both are one gather; the random draws (top, left, then flip) match ``random_crop`` followed
    by ``random_flip`` with the same generator, so the fused and separate forms agree exactly.
    """
    n, _, h, w = x.shape
    if padding > 0:
        src = F.pad(x, (padding, padding, padding, padding))
        top = _randint(2 * padding + 1, n, generator, x.device)
        left = _randint(2 * padding + 1, n, generator, x.device)
    else:
        src, top = x, torch.zeros(n, dtype=torch.long, device=x.device)
        left = top
    mirror = _rand(n, generator, x.device) < flip_p if flip_p > 0 else None
    return crop_at(src, top, left, (h, w), mirror)


def random_crop(x: Tensor, padding: int, generator: torch.Generator) -> Tensor:
    """Zero-pad by ``padding`` on each side, then crop back to (H, W) at a random offset each."""
    return crop_and_flip(x, padding, 0.0, generator) if padding > 0 else x


def random_flip(x: Tensor, generator: torch.Generator, p: float = 0.5) -> Tensor:
    """Mirror each image left-right with probability ``p``."""
    return crop_and_flip(x, 0, p, generator)


def cutout_mask(
    n: int, size: tuple[int, int], side: int, generator: torch.Generator, device: torch.device
) -> Tensor:
    """Boolean (N, H, W) masks of a ``side`` x ``side`` square per sample, clipped at borders.

    Centres are uniform over the image (DeVries and Taylor, 2017), so a square near a border
    covers less than side**2 pixels.
    """
    h, w = size
    cy = _randint(h, n, generator, device).view(n, 1)
    cx = _randint(w, n, generator, device).view(n, 1)
    ys = torch.arange(h, device=device).view(1, h) - (cy - side // 2)
    xs = torch.arange(w, device=device).view(1, w) - (cx - side // 2)
    in_y = (ys >= 0) & (ys < side)
    in_x = (xs >= 0) & (xs < side)
    return in_y.view(n, h, 1) & in_x.view(n, 1, w)


def cutout(x: Tensor, side: int, generator: torch.Generator) -> Tensor:
    """Zero a random square per sample (zero is the channel mean on normalised images)."""
    if side <= 0:
        return x
    mask = cutout_mask(x.shape[0], (x.shape[2], x.shape[3]), side, generator, x.device)
    # A multiply broadcasts over channels about 3x faster than masked_fill on CPU.
    return x * (~mask).unsqueeze(1).to(x.dtype)


def augment_batch(x: Tensor, spec: AugmentSpec, generator: torch.Generator) -> Tensor:
    """Crop, flip, then cutout, as ``spec`` asks; the NASNet/DARTS CIFAR order."""
    if spec.crop_padding > 0 or spec.flip:
        x = crop_and_flip(x, spec.crop_padding, 0.5 if spec.flip else 0.0, generator)
    if spec.cutout > 0:
        x = cutout(x, spec.cutout, generator)
    return x
