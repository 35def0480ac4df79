"""Inheritance estimation (``proxy=supernet``): a candidate takes the supernet's weights.

For each genotype the BatchNorm layers of its path are re-estimated on a few fixed training
batches (shared weights leave running statistics that fit no single path), then its accuracy is
measured on fixed validation batches. No weight changes. The same images serve every
candidate, so scores differ only by architecture.
"""

from __future__ import annotations

import math
import time
from pathlib import Path
from typing import Any

import torch
import torch.nn.functional as F

from nascli.estimators.base import Estimate
from nascli.oneshot.supernet import SuperNet
from nascli.oneshot.train import SupernetError, read_checkpoint
from nascli.training.device import autocast
from nascli.training.loop import recalibrate_batchnorm


def _positive(key: str, value: Any) -> int:
    if isinstance(value, bool) or not isinstance(value, int) or value < 1:
        raise ValueError(f"{key}={value!r} is invalid; expected an integer >= 1")
    return int(value)


class SupernetEstimator:
    """Score = validation accuracy of the genotype's path with inherited weights.

    Args:
        space, data, device, amp, channels_last, seed: as every estimator (run time).
        supernet: a trained supernet checkpoint (``supernet.pt``). ``nascli search`` fills it
            in: ``oneshot.supernet`` when given, else the supernet it trains in the run
            directory first.
        bn_batches: training batches that re-estimate the path's BatchNorm statistics (0: keep
            the supernet's running statistics).
        bn_batch_size: images per such batch.
        val_batches: validation batches the accuracy is measured on.
        val_batch_size: images per validation batch.
    """

    name = "supernet"

    def __init__(
        self, space: Any, data: Any, device: torch.device | str = "cpu", amp: str = "none",
        channels_last: bool = False, seed: int = 0, *, supernet: str | None = None,
        bn_batches: int = 1, bn_batch_size: int = 32, val_batches: int = 1,
        val_batch_size: int = 64,
    ) -> None:
        if isinstance(bn_batches, bool) or not isinstance(bn_batches, int) or bn_batches < 0:
            raise ValueError(f"bn_batches={bn_batches!r} is invalid; expected an integer >= 0")
        self.bn_batches = int(bn_batches)
        self.bn_batch_size = _positive("bn_batch_size", bn_batch_size)
        self.val_batches = _positive("val_batches", val_batches)
        self.val_batch_size = _positive("val_batch_size", val_batch_size)
        if supernet is None:
            raise SupernetError("proxy=supernet needs a trained supernet: run strategy=oneshot "
                                "(it trains one first), or set oneshot.supernet=PATH")
        self.space, self.data = space, data
        self.device = torch.device(device)
        self.amp, self.channels_last, self.seed = amp, bool(channels_last), int(seed)
        self.path = Path(supernet)
        self.supernet = SuperNet(space, data.num_classes, data.in_channels)
        saved = read_checkpoint(self.path, self.supernet, data)
        #: the checkpoint's facts (epochs, recipe, losses); weights and optimizer state dropped
        self.checkpoint = {k: v for k, v in saved.items()
                           if k not in ("model", "optimizer", "scheduler", "generator")}
        if not self.checkpoint["finished"]:
            raise SupernetError(f"{self.path}: the supernet trained {self.checkpoint['epoch']} "
                                f"of {self.checkpoint['recipe']['epochs']} epochs; resume its "
                                "run to finish training first")
        self.supernet.to(self.device)
        if self.channels_last:
            self.supernet.to(memory_format=torch.channels_last)
        self.supernet.eval()
        gen = torch.Generator().manual_seed(self.seed)
        self.bn_inputs = self._batches(data.train, self.bn_batches, self.bn_batch_size, gen)
        self.val = self._batches(data.val, self.val_batches, self.val_batch_size, gen,
                                 labels=True)
        self.calls = 0

    def _batches(self, split: Any, count: int, size: int, gen: torch.Generator,
                 labels: bool = False) -> list[Any]:
        """``count`` fixed batches of ``size`` distinct images of ``split`` (fewer if small)."""
        n = len(split)
        order = torch.randperm(n, generator=gen)[: min(n, count * size)]
        out = []
        fmt = torch.channels_last if self.channels_last else torch.contiguous_format
        for i in range(0, len(order), size):
            idx = order[i: i + size].to(split.raw.device)
            x = split.normalize(split.raw[idx]).to(self.device, memory_format=fmt)
            out.append((x, split.labels[idx].to(self.device)) if labels else x)
        return out

    def options(self) -> dict[str, Any]:
        """The settings (for logs and the run's manifest)."""
        return {"supernet": str(self.path), "bn_batches": self.bn_batches,
                "bn_batch_size": self.bn_batch_size, "val_batches": self.val_batches,
                "val_batch_size": self.val_batch_size}

    @torch.no_grad()
    def accuracy(self, genotype: Any) -> tuple[float, float]:
        """(validation accuracy, mean loss) of ``genotype``'s path after recalibration."""
        net = self.supernet
        if self.bn_batches:
            recalibrate_batchnorm(net, [(x, None) for x in self.bn_inputs], device=self.device,
                                  max_batches=self.bn_batches, amp=self.amp,
                                  norms=net.path_norms(genotype),
                                  forward=lambda x: net(x, genotype))
        # not training.evaluate: it switches the model's mode, which for a supernet's thousands
        # of modules costs more than this loop (the supernet stays in eval mode)
        correct, seen, loss = 0, 0, 0.0
        for x, y in self.val:
            with autocast(self.device, self.amp):
                logits = net(x, genotype).float()
            loss += float(F.cross_entropy(logits, y, reduction="sum"))
            correct += int((logits.argmax(1) == y).sum())
            seen += int(y.numel())
        return correct / seen, loss / seen

    def __call__(self, genotype: Any, seed: int | None = None) -> Estimate:
        """Estimate ``genotype`` by inheritance (``seed`` is unused: nothing is random)."""
        t0 = time.perf_counter()
        self.calls += 1
        genotype = self.space.validate(genotype)
        try:
            params, macs = self.supernet.cost(genotype, self.data.image_size)
            acc, loss = self.accuracy(genotype)
        except torch.OutOfMemoryError:
            return Estimate.failed("out of memory", seconds=time.perf_counter() - t0)
        if not math.isfinite(loss):
            return Estimate.failed(f"validation loss is {loss}", params=params, macs=macs,
                                   seconds=time.perf_counter() - t0)
        return Estimate(score=acc, metrics={"inherited_acc": acc, "inherited_loss": loss},
                        params=params, macs=macs, seconds=time.perf_counter() - t0)
