"""Zero-cost estimation: score a freshly initialised network with a proxy, no training."""

from __future__ import annotations

from typing import Any

import torch
from torch import nn

from nascli.estimators.base import ModelEstimator


class ProxyEstimator(ModelEstimator):
    """Score = ``nascli.proxies.compute(name, model, x, y)`` on a fixed training batch.

    Synflow is reported as ``log_synflow`` (its raw value spans 1e30..1e60 and can overflow).

    Args:
        name: a registered proxy (``nascli.proxies.PROXIES``).
        batch_size: training images the proxy sees (the same seeded batch for every candidate).
    """

    def __init__(
        self, space: Any, data: Any, device: torch.device | str = "cpu", amp: str = "none",
        channels_last: bool = False, seed: int = 0, *, name: str, batch_size: int = 64,
    ) -> None:
        from nascli import proxies

        proxies.PROXIES.get(name)  # an unknown name fails here, listing the valid ones
        if int(batch_size) < 1:
            raise ValueError(f"batch_size={batch_size!r} is invalid; expected an integer >= 1")
        # proxies define their own precision and layout: no autocast, NCHW
        super().__init__(space, data, device, "none", False, seed)
        self.name = name
        self.batch_size = int(batch_size)
        n = min(self.batch_size, len(data.train))
        gen = torch.Generator().manual_seed(self.seed)
        idx = torch.randperm(len(data.train), generator=gen)[:n]
        train = data.train
        self.inputs = train.normalize(train.raw[idx.to(train.raw.device)]).to(self.device)
        self.targets = train.labels[idx.to(train.labels.device)].to(self.device)

    def score(self, model: nn.Module, genotype: Any, seed: int) -> tuple[float, dict[str, Any],
                                                                         float]:
        """The proxy's value on the fixed batch (no training: 0 epochs)."""
        from nascli import proxies

        name = "log_synflow" if self.name == "synflow" else self.name
        value = float(proxies.compute(name, model, self.inputs, self.targets))
        return value, {name: value}, 0.0
