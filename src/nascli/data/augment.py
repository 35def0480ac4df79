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


def crop_at(x: Tensor, top: Tensor, left: Tensor, size: tuple[int, int]) -> Tensor:
    """Per-sample crops: window ``size`` (h, w) of x (N, C, H, W) at ``top``/``left`` (N,)."""
    n, c, _, width = x.shape
    h, w = size
    rows = top.view(n, 1, 1) + torch.arange(h, device=x.device).view(1, h, 1)
    cols = left.view(n, 1, 1) + torch.arange(w, device=x.device).view(1, 1, w)
    # One gather over flattened pixels; measured 2-4x faster on CPU than advanced indexing
    # with three broadcast index tensors, and the index is shared by the channels (expand).
    flat = (rows * width + cols).view(n, 1, h * w).expand(n, c, h * w)
    return x.reshape(n, c, -1).gather(2, flat).view(n, c, h, w)


def random_crop(x: Tensor, padding: int, generator: torch.Generator) -> Tensor:
    """Zero-pad by ``padding`` on each side, then crop back to (H, W) at a random offset each."""
    if padding <= 0:
        return x
    n, _, h, w = x.shape
    padded = F.pad(x, (padding, padding, padding, padding))
    top = _randint(2 * padding + 1, n, generator, x.device)
    left = _randint(2 * padding + 1, n, generator, x.device)
    return crop_at(padded, top, left, (h, w))


def random_flip(x: Tensor, generator: torch.Generator, p: float = 0.5) -> Tensor:
    """Mirror each image left-right with probability ``p``."""
    flip = _rand(x.shape[0], generator, x.device) < p
    return torch.where(flip.view(-1, 1, 1, 1), x.flip(3), x)


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
    return x.masked_fill(mask.unsqueeze(1), 0.0)


def augment_batch(x: Tensor, spec: AugmentSpec, generator: torch.Generator) -> Tensor:
    """Crop, flip, then cutout, as ``spec`` asks; the NASNet/DARTS CIFAR order."""
    if spec.crop_padding > 0:
        x = random_crop(x, spec.crop_padding, generator)
    if spec.flip:
        x = random_flip(x, generator)
    if spec.cutout > 0:
        x = cutout(x, spec.cutout, generator)
    return x
