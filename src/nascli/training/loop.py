"""One training epoch and an evaluation pass, with AMP, aux head, drop-path and clipping."""

from __future__ import annotations

import math
from collections.abc import Callable, Iterable

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from nascli.training.device import autocast


class DivergedError(RuntimeError):
    """The training loss became NaN or infinite."""


def train_epoch(
    model: nn.Module,
    batches: Iterable[tuple[Tensor, Tensor]],
    optimizer: torch.optim.Optimizer,
    scheduler: torch.optim.lr_scheduler.LRScheduler | None = None,
    *,
    device: torch.device,
    amp: str = "none",
    scaler: torch.amp.GradScaler | None = None,
    grad_clip: float | None = None,
    aux_weight: float = 0.0,
    label_smoothing: float = 0.0,
    max_steps: int | None = None,
    channels_last: bool = False,
    on_step: Callable[[int, float], None] | None = None,
) -> tuple[float, int]:
    """Train for one pass over ``batches``; returns (mean loss, steps).

    Raises :class:`DivergedError` as soon as a loss is not finite.
    """
    model.train()
    total, steps = 0.0, 0
    for x, y in batches:
        if max_steps is not None and steps >= max_steps:
            break
        x = x.to(device, non_blocking=True)
        y = y.to(device, non_blocking=True)
        if channels_last:
            x = x.contiguous(memory_format=torch.channels_last)
        with autocast(device, amp):
            loss = _loss(model(x), y, aux_weight, label_smoothing)
        value = float(loss.detach())
        if not math.isfinite(value):
            raise DivergedError(f"training loss is {value} at step {steps}")
        _step(model, loss, optimizer, scaler, grad_clip)
        if scheduler is not None:
            scheduler.step()
        total += value
        steps += 1
        if on_step is not None:
            on_step(steps, value)
    return (total / steps if steps else float("nan")), steps


def _loss(out: Tensor | tuple[Tensor, Tensor | None], y: Tensor, aux_weight: float,
          label_smoothing: float) -> Tensor:
    """Cross-entropy of the logits, plus ``aux_weight`` times that of an auxiliary head."""
    if not isinstance(out, tuple):
        return F.cross_entropy(out, y, label_smoothing=label_smoothing)
    logits, aux = out
    loss = F.cross_entropy(logits, y, label_smoothing=label_smoothing)
    if aux is not None and aux_weight > 0:
        loss = loss + aux_weight * F.cross_entropy(aux, y, label_smoothing=label_smoothing)
    return loss


def _step(model: nn.Module, loss: Tensor, optimizer: torch.optim.Optimizer,
          scaler: torch.amp.GradScaler | None, grad_clip: float | None) -> None:
    """Backward, optional gradient-norm clipping (unscaled first under fp16) and the update."""
    optimizer.zero_grad(set_to_none=True)
    if scaler is not None:
        scaler.scale(loss).backward()
        scaler.unscale_(optimizer)
    else:
        loss.backward()
    if grad_clip:
        nn.utils.clip_grad_norm_(model.parameters(), grad_clip)
    if scaler is not None:
        scaler.step(optimizer)
        scaler.update()
    else:
        optimizer.step()


@torch.no_grad()
def evaluate(
    model: nn.Module,
    batches: Iterable[tuple[Tensor, Tensor]],
    *,
    device: torch.device,
    amp: str = "none",
    channels_last: bool = False,
) -> tuple[float, float]:
    """Top-1 accuracy (fraction) and mean cross-entropy over ``batches`` in eval mode."""
    was_training = model.training
    model.eval()
    correct, seen, loss_sum = 0, 0, 0.0
    for x, y in batches:
        x = x.to(device, non_blocking=True)
        y = y.to(device, non_blocking=True)
        if channels_last:
            x = x.contiguous(memory_format=torch.channels_last)
        with autocast(device, amp):
            logits = model(x)
        if isinstance(logits, tuple):
            logits = logits[0]
        logits = logits.float()
        loss_sum += float(F.cross_entropy(logits, y, reduction="sum"))
        correct += int((logits.argmax(1) == y).sum())
        seen += int(y.numel())
    model.train(was_training)
    if seen == 0:
        return float("nan"), float("nan")
    return correct / seen, loss_sum / seen


@torch.no_grad()
def recalibrate_batchnorm(
    model: nn.Module,
    batches: Iterable[tuple[Tensor, Tensor]],
    *,
    device: torch.device,
    max_batches: int = 8,
    amp: str = "none",
    channels_last: bool = False,
    norms: list[nn.Module] | None = None,
    forward: Callable[[Tensor], object] | None = None,
) -> int:
    """Recompute BatchNorm running statistics as a plain average over ``max_batches`` batches.

    After a short training run the running averages (momentum 0.1) still mix statistics of
    much earlier weights, and eval-mode accuracy can fall to chance while train-mode accuracy
    is high. Re-estimating them on the final weights fixes that (as one-shot NAS does).
    Returns the number of batches used; the model's train/eval mode is restored.

    ``norms`` limits the re-estimation to those BatchNorm layers (a supernet path's; only they
    are put in training mode, so the rest of the model must not depend on its mode) and
    ``forward(x)`` replaces ``model(x)`` (a supernet runs a path: ``supernet(x, genotype)``).
    Weights never change; only running statistics do.
    """
    explicit = norms is not None
    if norms is None:
        norms = [m for m in model.modules() if isinstance(m, nn.modules.batchnorm._BatchNorm)]
    if not norms:
        return 0
    saved = [(m, m.momentum) for m in norms]
    for m in norms:
        m.reset_running_stats()
        m.momentum = None  # cumulative moving average: every batch weighs the same
    # switching a whole supernet's thousands of modules would cost more than the batches
    switched = [(m, m.training) for m in (norms if explicit else [model])]
    for m, _ in switched:
        m.train()
    used = 0
    try:
        for x, _ in batches:
            if used >= max_batches:
                break
            x = x.to(device, non_blocking=True)
            if channels_last:
                x = x.contiguous(memory_format=torch.channels_last)
            with autocast(device, amp):
                (forward or model)(x)
            used += 1
    finally:
        for m, momentum in saved:
            m.momentum = momentum
        for m, training in switched:
            m.train(training)
    return used
