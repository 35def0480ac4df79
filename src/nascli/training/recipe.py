"""The one training recipe (SGD with Nesterov momentum and a cosine schedule) and its fit loop.

:class:`TrainRecipe` holds every knob and its bounds once; the low-fidelity search recipe of
the train-and-test estimator and the full recipe of ``train-final`` differ only in their
defaults (and a few fields of their own). :func:`fit` is the loop both run (and the supernet).
"""

from __future__ import annotations

import math
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import torch
from torch import nn

from nascli.training.loop import train_epoch


class RecipeError(ValueError):
    """A training option out of range; the message names it."""


def _need(ok: bool, key: str, value: Any, valid: str) -> None:
    if not ok:
        raise RecipeError(f"{key}={value!r} is invalid; expected {valid}")


@dataclass
class TrainRecipe:
    """SGD + cosine training: every option of a training run, with its bounds.

    ``max_steps`` caps the optimisation steps (over all epochs for the search recipe, per
    epoch for train-final's quick checks); ``grad_clip=None`` disables clipping.
    """

    epochs: int = 1
    batch_size: int = 64
    lr: float = 0.2
    momentum: float = 0.9
    nesterov: bool = True
    weight_decay: float = 0.0003
    label_smoothing: float = 0.0
    grad_clip: float | None = 5.0
    max_steps: int | None = None
    eval_batch_size: int = 256

    def __post_init__(self) -> None:
        for key in ("epochs", "batch_size", "eval_batch_size"):
            value = getattr(self, key)
            _need(isinstance(value, int) and not isinstance(value, bool) and value >= 1, key,
                  value, "an integer >= 1")
        _need(self.max_steps is None or (isinstance(self.max_steps, int) and self.max_steps >= 1),
              "max_steps", self.max_steps, "an integer >= 1 or null")
        _need(math.isfinite(self.lr) and self.lr > 0, "lr", self.lr, "a positive number")
        _need(0.0 <= self.momentum < 1.0, "momentum", self.momentum, "a number in [0, 1)")
        _need(math.isfinite(self.weight_decay) and self.weight_decay >= 0, "weight_decay",
              self.weight_decay, "a number >= 0")
        _need(0.0 <= self.label_smoothing < 1.0, "label_smoothing", self.label_smoothing,
              "a number in [0, 1)")
        _need(self.grad_clip is None or (math.isfinite(self.grad_clip) and self.grad_clip > 0),
              "grad_clip", self.grad_clip, "a positive number or null")

    def optimizer(self, params: Any) -> torch.optim.SGD:
        """SGD with the recipe's momentum, Nesterov flag and weight decay."""
        return torch.optim.SGD(params, lr=self.lr, momentum=self.momentum,
                               nesterov=self.nesterov and self.momentum > 0,
                               weight_decay=self.weight_decay)

    @staticmethod
    def scheduler(optimizer: torch.optim.Optimizer, total_steps: int
                  ) -> torch.optim.lr_scheduler.CosineAnnealingLR:
        """Cosine decay over ``total_steps`` optimisation steps."""
        return torch.optim.lr_scheduler.CosineAnnealingLR(optimizer, T_max=max(1, total_steps))


@dataclass
class FitResult:
    """What :func:`fit` did: the mean training loss of each epoch and the steps taken."""

    losses: list[float]
    steps: int


def fit(
    model: nn.Module,
    batches: Any,
    recipe: TrainRecipe,
    *,
    device: torch.device,
    steps_per_epoch: int,
    optimizer: torch.optim.Optimizer | None = None,
    scheduler: torch.optim.lr_scheduler.LRScheduler | None = None,
    start_epoch: int = 0,
    amp: str = "none",
    scaler: torch.amp.GradScaler | None = None,
    channels_last: bool = False,
    aux_weight: float = 0.0,
    before_epoch: Callable[[int], None] | None = None,
    after_epoch: Callable[[int, float, int], None] | None = None,
    on_step: Callable[[int, float], None] | None = None,
) -> FitResult:
    """Train ``model`` for epochs ``start_epoch .. recipe.epochs - 1`` with the recipe.

    The optimizer and scheduler are made from the recipe unless given (a resumed run passes
    its restored ones). ``before_epoch(epoch)`` runs first in each epoch (drop-path schedules);
    ``after_epoch(epoch, loss, steps)`` after it (validation, checkpoints); ``on_step(step,
    loss)`` after every optimisation step (progress bars). Raises
    :class:`~nascli.training.DivergedError` when a loss is not finite.
    """
    if optimizer is None:
        optimizer = recipe.optimizer(model.parameters())
    if scheduler is None:
        scheduler = recipe.scheduler(optimizer, steps_per_epoch * recipe.epochs)
    losses, total = [], 0
    for epoch in range(start_epoch, recipe.epochs):
        if before_epoch is not None:
            before_epoch(epoch)
        loss, n = train_epoch(
            model, batches, optimizer, scheduler, device=device, amp=amp, scaler=scaler,
            grad_clip=recipe.grad_clip, aux_weight=aux_weight,
            label_smoothing=recipe.label_smoothing, max_steps=steps_per_epoch,
            channels_last=channels_last, on_step=on_step,
        )
        losses.append(loss)
        total += n
        if after_epoch is not None:
            after_epoch(epoch, loss, n)
    return FitResult(losses, total)
