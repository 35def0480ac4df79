"""Train-and-test: low-fidelity training on the train split, accuracy on the validation split."""

from __future__ import annotations

import gc
import math
import time
from dataclasses import dataclass
from typing import Any

import torch

from nascli.data import DataSplits
from nascli.data.loader import BatchLoader
from nascli.data.splits import TensorSplit, stratified_split
from nascli.estimators.base import Estimate
from nascli.models import build_network, count_macs, count_parameters
from nascli.training import DivergedError, evaluate, recalibrate_batchnorm, train_epoch


@dataclass
class TrainSettings:
    """Low-fidelity training of search-time models (see configs/proxy/train.yaml)."""

    epochs: int = 1
    batch_size: int = 64
    lr: float = 0.2
    momentum: float = 0.9
    weight_decay: float = 3e-4
    nesterov: bool = True
    data_fraction: float = 1.0
    max_steps: int | None = None
    eval_batch_size: int = 256
    grad_clip: float | None = 5.0
    augment: bool = False
    bn_recalibration_batches: int = 8


@dataclass
class NetworkSettings:
    """Macro network of search-time models."""

    cells_per_stage: int = 1
    channels: int = 8
    stem: str = "cifar"


class TrainEstimator:
    """Score = validation accuracy after a short training run (higher is better).

    A candidate whose loss diverges, or that runs out of memory, is returned as failed.
    Each call frees its model, optimiser and graph, so memory stays flat over a long search.
    """

    name = "train"

    def __init__(
        self, data: DataSplits, settings: TrainSettings | None = None,
        network: NetworkSettings | None = None, device: torch.device | str = "cpu",
        amp: str = "none", channels_last: bool = False, seed: int = 0,
    ) -> None:
        self.data = data
        self.settings = settings or TrainSettings()
        self.network = network or NetworkSettings()
        self.device = torch.device(device)
        self.amp, self.channels_last, self.seed = amp, channels_last, seed
        self.calls = 0
        self.train_split = data.train
        if self.settings.data_fraction < 1.0:
            _, kept = stratified_split(data.train.labels.cpu().numpy(),
                                       self.settings.data_fraction, seed)
            t = data.train
            self.train_split = TensorSplit(t.raw[kept], t.labels[kept], t.mean, t.std)
        # small datasets live on the device once, not once per candidate
        self.data = data.to(self.device)
        self.train_split = self.train_split.to(self.device)

    def build(self, genotype: Any) -> torch.nn.Module:
        """The search-time network for ``genotype`` on the estimator's device."""
        model = build_network(
            genotype, num_classes=self.data.num_classes, in_channels=self.data.in_channels,
            cells_per_stage=self.network.cells_per_stage, channels=self.network.channels,
            stem=self.network.stem,
        )
        model = model.to(self.device)
        if self.channels_last:
            model = model.to(memory_format=torch.channels_last)
        return model

    def __call__(self, genotype: Any, seed: int | None = None) -> Estimate:
        """Train, validate and report accuracy, loss, parameters, multiply-adds and time."""
        s = self.settings
        seed = self.seed + self.calls if seed is None else seed
        self.calls += 1
        t0 = time.perf_counter()
        torch.manual_seed(seed)
        model = optimizer = None
        try:
            model = self.build(genotype)
            params = count_parameters(model)
            c, (h, w) = self.data.in_channels, self.data.image_size
            flops = count_macs(model, (c, h, w))
            gen = torch.Generator(device="cpu").manual_seed(seed)
            train = BatchLoader(
                self.train_split, batch_size=min(s.batch_size, len(self.train_split)),
                shuffle=True, drop_last=True, augment=self.data.augment if s.augment else None,
                device=self.device, generator=gen, channels_last=self.channels_last,
            )
            steps_per_epoch = len(train)
            if s.max_steps is not None:
                steps_per_epoch = min(steps_per_epoch, max(1, math.ceil(s.max_steps / s.epochs)))
            total = max(1, steps_per_epoch * s.epochs)
            optimizer = torch.optim.SGD(
                model.parameters(), lr=s.lr, momentum=s.momentum, nesterov=s.nesterov,
                weight_decay=s.weight_decay,
            )
            scheduler = torch.optim.lr_scheduler.CosineAnnealingLR(optimizer, T_max=total)
            losses, steps = [], 0
            for _ in range(s.epochs):
                loss, n = train_epoch(
                    model, train, optimizer, scheduler, device=self.device, amp=self.amp,
                    grad_clip=s.grad_clip, max_steps=steps_per_epoch,
                    channels_last=self.channels_last,
                )
                losses.append(loss)
                steps += n
            if s.bn_recalibration_batches:
                plain = BatchLoader(self.train_split, batch_size=train.batch_size, shuffle=True,
                                    device=self.device, generator=gen)
                recalibrate_batchnorm(model, plain, device=self.device, amp=self.amp,
                                      max_batches=s.bn_recalibration_batches,
                                      channels_last=self.channels_last)
            val = BatchLoader(self.data.val, batch_size=s.eval_batch_size, shuffle=False,
                              device=self.device)
            acc, val_loss = evaluate(model, val, device=self.device, amp=self.amp,
                                     channels_last=self.channels_last)
            if not math.isfinite(val_loss):
                raise DivergedError(f"validation loss is {val_loss}")
            seconds = time.perf_counter() - t0
            return Estimate(
                score=acc,
                metrics={"val_acc": acc, "val_loss": val_loss, "train_loss": losses[-1],
                         "steps": steps, "seed": seed},
                params=params, flops=flops, seconds=seconds,
                epochs=steps / max(1, len(train)),
            )
        except DivergedError as exc:
            return Estimate.failed(f"diverged: {exc}", seconds=time.perf_counter() - t0)
        except torch.OutOfMemoryError:
            return Estimate.failed("out of memory", seconds=time.perf_counter() - t0)
        finally:
            del model, optimizer
            gc.collect()
            if self.device.type == "cuda":
                torch.cuda.empty_cache()
