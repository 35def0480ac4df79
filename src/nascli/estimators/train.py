"""Train-and-test: low-fidelity training on the train split, accuracy on the validation split."""

from __future__ import annotations

import math
from dataclasses import asdict, dataclass, replace
from typing import Any

import torch
from torch import nn

from nascli.data.loader import BatchLoader
from nascli.data.splits import stratified_subset
from nascli.estimators.base import ModelEstimator
from nascli.training import DivergedError, evaluate, recalibrate_batchnorm
from nascli.training.recipe import RecipeError, TrainRecipe, fit


@dataclass
class SearchTraining(TrainRecipe):
    """The low-fidelity recipe of search-time candidates (configs/proxy/train.yaml).

    ``max_steps`` caps the optimisation steps of the whole run; ``data_fraction`` of the train
    split is used; BatchNorm statistics are re-estimated on ``bn_recalibration_batches`` batches
    before validation (after a short run the running averages still mix much earlier weights,
    and eval-mode accuracy fell to chance without it).
    """

    epochs: int = 1
    batch_size: int = 64
    lr: float = 0.2  # high, for a short cosine schedule (0.84 val acc for NASNet-A vs 0.53 at 0.05)
    data_fraction: float = 0.25  # measured: ranks like 0.5 in 0.55 of the time (docs/fidelity.md)
    augment: bool = False
    bn_recalibration_batches: int = 8

    def __post_init__(self) -> None:
        super().__post_init__()
        if not 0.0 < self.data_fraction <= 1.0:
            raise RecipeError(f"data_fraction={self.data_fraction!r} is invalid; expected a "
                              "fraction in (0, 1]")
        if self.bn_recalibration_batches < 0:
            raise RecipeError(f"bn_recalibration_batches={self.bn_recalibration_batches!r} is "
                              "invalid; expected an integer >= 0")


class TrainEstimator(ModelEstimator):
    """Score = validation accuracy after a short training run (higher is better).

    Options are the fields of :class:`SearchTraining`. A candidate whose loss diverges, or that
    runs out of memory, is returned as failed.
    """

    name = "train"
    Options = SearchTraining
    supports_steps = True

    def __init__(
        self, space: Any, data: Any, device: torch.device | str = "cpu", amp: str = "none",
        channels_last: bool = False, seed: int = 0, **options: Any,
    ) -> None:
        super().__init__(space, data, device, amp, channels_last, seed)
        self.recipe = SearchTraining(**options)
        self.train_split = stratified_subset(data.train, self.recipe.data_fraction, self.seed)
        # small datasets live on the device once, not once per candidate
        self.data = data.to(self.device)
        self.train_split = self.train_split.to(self.device)

    @property
    def settings(self) -> SearchTraining:
        """The recipe (kept under its old name for callers of the 0.1 API)."""
        return self.recipe

    @property
    def full_steps(self) -> int:
        """Optimisation steps of one evaluation with the recipe as configured."""
        from nascli.engine.schedule import full_training_steps

        return full_training_steps(self.recipe, len(self.train_split))

    def score(self, model: nn.Module, genotype: Any, seed: int, steps: int | None = None
              ) -> tuple[float, dict[str, Any], float]:
        """Train with the search recipe (for ``steps`` optimisation steps, with a schedule of
        that length, when given), recalibrate BatchNorm, validate."""
        r = self.recipe
        if steps is not None:  # a schedule's rung: whole epochs over the subset, then a cap
            epochs = max(1, math.ceil(steps / max(1, len(self.train_split) // r.batch_size)))
            r = replace(r, epochs=epochs, max_steps=steps)
        gen = torch.Generator(device="cpu").manual_seed(seed)
        train = BatchLoader(
            self.train_split, batch_size=min(r.batch_size, len(self.train_split)),
            shuffle=True, drop_last=True, augment=self.data.augment if r.augment else None,
            device=self.device, generator=gen, channels_last=self.channels_last,
        )
        steps_per_epoch = len(train)
        if r.max_steps is not None:
            steps_per_epoch = min(steps_per_epoch, max(1, math.ceil(r.max_steps / r.epochs)))
        result = fit(model, train, r, device=self.device, steps_per_epoch=steps_per_epoch,
                     amp=self.amp, channels_last=self.channels_last)
        if r.bn_recalibration_batches:
            plain = BatchLoader(self.train_split, batch_size=train.batch_size, shuffle=True,
                                device=self.device, generator=gen)
            recalibrate_batchnorm(model, plain, device=self.device, amp=self.amp,
                                  max_batches=r.bn_recalibration_batches,
                                  channels_last=self.channels_last)
        val = BatchLoader(self.data.val, batch_size=r.eval_batch_size, shuffle=False,
                          device=self.device)
        acc, val_loss = evaluate(model, val, device=self.device, amp=self.amp,
                                 channels_last=self.channels_last)
        if not math.isfinite(val_loss):
            raise DivergedError(f"validation loss is {val_loss}")
        metrics = {"val_acc": acc, "val_loss": val_loss, "train_loss": result.losses[-1],
                   "steps": result.steps, "seed": seed}
        return acc, metrics, result.steps / max(1, len(train))

    def options(self) -> dict[str, Any]:
        """The recipe as a dict (for logs)."""
        return asdict(self.recipe)
