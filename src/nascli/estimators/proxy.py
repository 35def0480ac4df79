"""Zero-cost estimation: score a freshly initialised network with a proxy, no training."""

from __future__ import annotations

import gc
import math
import time
from typing import Any

import torch

from nascli.data import DataSplits
from nascli.estimators.base import Estimate
from nascli.estimators.train import NetworkSettings
from nascli.models import build_network, count_macs, count_parameters


class ProxyEstimator:
    """Score = ``nascli.proxies.compute(proxy, model, x, y)`` on a fixed training batch.

    Synflow is reported as ``log_synflow`` (its raw value spans 1e30..1e60 and can overflow);
    the raw value is kept in the metrics where finite.
    """

    def __init__(
        self, proxy: str, data: DataSplits, network: NetworkSettings | None = None,
        device: torch.device | str = "cpu", batch_size: int = 64, seed: int = 0,
    ) -> None:
        from nascli import proxies

        if proxy not in proxies.PROXIES:
            raise ValueError(
                f"unknown proxy {proxy!r}; valid: train, {', '.join(sorted(proxies.PROXIES))}"
            )
        self.name = proxy
        self.data = data
        self.network = network or NetworkSettings()
        self.device = torch.device(device)
        self.seed = seed
        n = min(batch_size, len(data.train))
        gen = torch.Generator().manual_seed(seed)
        idx = torch.randperm(len(data.train), generator=gen)[:n]
        train = data.train
        self.inputs = train.normalize(train.raw[idx.to(train.raw.device)]).to(self.device)
        self.targets = train.labels[idx.to(train.labels.device)].to(self.device)
        self.calls = 0

    def __call__(self, genotype: Any, seed: int | None = None) -> Estimate:
        """Build the network with a seeded init and score it."""
        from nascli import proxies

        seed = self.seed + self.calls if seed is None else seed
        self.calls += 1
        t0 = time.perf_counter()
        torch.manual_seed(seed)
        model = None
        try:
            model = build_network(
                genotype, num_classes=self.data.num_classes, in_channels=self.data.in_channels,
                cells_per_stage=self.network.cells_per_stage, channels=self.network.channels,
                stem=self.network.stem,
            ).to(self.device)
            params = count_parameters(model)
            c, (h, w) = self.data.in_channels, self.data.image_size
            flops = count_macs(model, (c, h, w))
            name = "log_synflow" if self.name == "synflow" else self.name
            score = float(proxies.compute(name, model, self.inputs, self.targets))
            metrics: dict[str, Any] = {name: score}
            if not math.isfinite(score):
                return Estimate.failed(f"{name} is {score}", params=params, flops=flops,
                                       seconds=time.perf_counter() - t0)
            return Estimate(score=score, metrics=metrics, params=params, flops=flops,
                            seconds=time.perf_counter() - t0, epochs=0.0)
        except torch.OutOfMemoryError:
            return Estimate.failed("out of memory", seconds=time.perf_counter() - t0)
        finally:
            del model
            gc.collect()
