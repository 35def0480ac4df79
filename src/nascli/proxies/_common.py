"""Pieces shared by the proxies: logits, the scored layers, batch chunks, loss gradients."""

from __future__ import annotations

import itertools
from collections.abc import Callable, Sequence

import torch
import torch.nn.functional as F
from torch import nn
from torch.nn.modules.conv import _ConvNd

LossFn = Callable[[torch.Tensor, torch.Tensor], torch.Tensor]


def logits(output: object) -> torch.Tensor:
    """The logits of a classifier's output: the tensor itself, or the first of (logits, aux)."""
    while isinstance(output, tuple | list):
        output = output[0]
    if not isinstance(output, torch.Tensor):
        raise TypeError(
            f"model output must be a tensor or a tuple starting with one, "
            f"got {type(output).__name__}"
        )
    return output


def scored_layers(model: nn.Module) -> list[nn.Module]:
    """Convolution and linear layers, each weight once (the reference scores these only)."""
    seen: set[int] = set()
    layers = []
    for m in model.modules():
        if (
            isinstance(m, _ConvNd | nn.Linear)
            and isinstance(m.weight, torch.Tensor)
            and id(m.weight) not in seen
        ):
            seen.add(id(m.weight))
            layers.append(m)
    return layers


def scored_weights(model: nn.Module) -> list[torch.Tensor]:
    """The weights of :func:`scored_layers`, with gradients switched on.

    A frozen layer is still part of the architecture, so it is scored like the others;
    :func:`~nascli.proxies._state.preserved` puts its ``requires_grad`` back afterwards.
    """
    weights = [m.weight for m in scored_layers(model)]
    for w in weights:
        w.requires_grad_(True)
    return weights


def chunk_slices(n: int, chunks: int) -> list[slice]:
    """``chunks`` contiguous, nearly equal slices of ``range(n)`` (fewer if ``n`` is smaller)."""
    chunks = max(1, min(chunks, n))
    bounds = [i * n // chunks for i in range(chunks + 1)]
    return [slice(a, b) for a, b in itertools.pairwise(bounds)]


def require_targets(targets: torch.Tensor | None, proxy: str) -> torch.Tensor:
    """``targets``, or a clear error for the proxies that need labels."""
    if targets is None:
        raise ValueError(f"proxy {proxy!r} needs targets (class labels)")
    return targets


def loss_gradients(
    model: nn.Module,
    inputs: torch.Tensor,
    targets: torch.Tensor,
    weights: Sequence[torch.Tensor],
    chunks: int = 1,
    loss_fn: LossFn = F.cross_entropy,
) -> list[torch.Tensor]:
    """Gradients of the batch loss with respect to ``weights``, accumulated over chunks.

    Each chunk's loss is weighted by its share of the batch, so for a mean-reduced loss the
    sum over chunks is the full-batch gradient (exactly, unless BatchNorm's batch statistics
    differ between a chunk and the whole batch). Unused weights get zero gradients.
    """
    n = inputs.shape[0]
    total = [torch.zeros_like(w) for w in weights]
    for part in chunk_slices(n, chunks):
        out = logits(model(inputs[part]))
        loss = loss_fn(out, targets[part]) * ((part.stop - part.start) / n)
        grads = torch.autograd.grad(loss, list(weights), allow_unused=True)
        for acc, g in zip(total, grads, strict=True):
            if g is not None:
                acc.add_(g)
    return total
