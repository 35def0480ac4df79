"""Resource limits on candidates (``constraints.*``) and the costs they are checked on.

A candidate over a limit is rejected before any training: the search records it as a
``rejected`` row with the reason, tells the strategy it failed, and asks again. Costs are
counted on the search-time network, or on the network the user deploys when
``constraints.network`` names its size (N, channels, stem, image size): a cell that fits at
search time may not fit at 6@768.
"""

from __future__ import annotations

import math
import time
from dataclasses import asdict, dataclass, field
from typing import Any

import torch

from nascli.config import check


@dataclass
class CostNetwork:
    """The network costs are counted on; every field left null keeps the search-time value
    (the space's N, channels and stem, the dataset's image size)."""

    cells_per_stage: int | None = None
    channels: int | None = None
    stem: str | None = None
    image_size: int | None = None
    num_classes: int | None = None

    def __post_init__(self) -> None:
        for key in ("cells_per_stage", "channels", "image_size", "num_classes"):
            value = getattr(self, key)
            check(value is None or value >= 1, f"constraints.network.{key}", value,
                  "an integer >= 1 or null (the search-time value)")
        check(self.stem in (None, "cifar", "imagenet"), "constraints.network.stem", self.stem,
              "cifar, imagenet or null")

    @property
    def final(self) -> bool:
        """True when any field names the deployed network's size."""
        return any(v is not None for v in asdict(self).values())


@dataclass
class Constraints:
    """``constraints.*``: limits on parameters, multiply-adds (one image) and latency.

    ``count_rejected``: whether rejected candidates use up the evaluation budget (they cost
    milliseconds, so by default they do not); ``max_rejected_in_a_row`` stops a search whose
    strategy keeps proposing candidates over the limits.
    """

    max_params: float | None = None
    max_macs: float | None = None
    max_latency_ms: float | None = None
    network: CostNetwork = field(default_factory=CostNetwork)
    latency_batch_size: int = 1
    latency_repeats: int = 10
    count_rejected: bool = False
    max_rejected_in_a_row: int = 1000

    def __post_init__(self) -> None:
        for key in ("max_params", "max_macs", "max_latency_ms"):
            value = getattr(self, key)
            check(value is None or (math.isfinite(value) and value > 0), f"constraints.{key}",
                  value, "a positive number or null (no limit)")
        check(self.latency_batch_size >= 1, "constraints.latency_batch_size",
              self.latency_batch_size, "an integer >= 1")
        check(self.latency_repeats >= 1, "constraints.latency_repeats", self.latency_repeats,
              "an integer >= 1")
        check(self.max_rejected_in_a_row >= 1, "constraints.max_rejected_in_a_row",
              self.max_rejected_in_a_row, "an integer >= 1")

    @property
    def active(self) -> bool:
        """True when any limit is set."""
        return any(v is not None for v in (self.max_params, self.max_macs,
                                           self.max_latency_ms))

    def violation(self, costs: dict[str, float]) -> str | None:
        """Why ``costs`` break a limit ("params 1.2M > max_params 1M"), or None."""
        over = []
        for key, limit in (("params", self.max_params), ("macs", self.max_macs),
                           ("latency_ms", self.max_latency_ms)):
            if limit is not None and costs[key] > limit:
                over.append(f"{key} {_fmt(costs[key])} > max_{key} {_fmt(limit)}")
        return "; ".join(over) or None


def _fmt(x: float) -> str:
    if x >= 1e6:
        return f"{x / 1e6:.3g}M"
    if x >= 1e3:
        return f"{x / 1e3:.3g}k"
    return f"{x:.3g}"


class CostMeter:
    """Parameters, multiply-adds and latency of candidates' networks, once per architecture.

    Args:
        space: the search space (its builder and search-time settings).
        data: the run's :class:`~nascli.data.DataSplits` (classes, channels, image size).
        device: where latency is measured (the search device).
        network: the network to count on (:class:`CostNetwork`; all null: search-time).
        latency: whether to measure latency (it runs the network; params and MACs do not).
        batch_size, repeats: latency is the median of ``repeats`` timed forward passes of
            ``batch_size`` images, after two untimed ones, in eval mode without gradients.
    """

    def __init__(self, space: Any, data: Any, device: torch.device | str = "cpu",
                 network: CostNetwork | None = None, latency: bool = False,
                 batch_size: int = 1, repeats: int = 10) -> None:
        self.space, self.device = space, torch.device(device)
        self.network = network or CostNetwork()
        self.latency, self.batch_size, self.repeats = latency, batch_size, repeats
        self.num_classes = self.network.num_classes or data.num_classes
        self.in_channels = data.in_channels
        side = self.network.image_size
        self.image_size = (side, side) if side else tuple(data.image_size)
        self._known: dict[str, dict[str, float]] = {}

    @property
    def where(self) -> str:
        """``final`` or ``search``: which network the costs are of."""
        return "final" if self.network.final else "search"

    def _build(self, genotype: Any) -> torch.nn.Module:
        from nascli.models import build_model

        overrides = {k: v for k, v in asdict(self.network).items()
                     if v is not None and k in ("cells_per_stage", "channels", "stem")}
        with torch.random.fork_rng(devices=[]):  # counting must not move the run's seeds
            return build_model(self.space, genotype, num_classes=self.num_classes,
                               in_channels=self.in_channels, **overrides)

    def __call__(self, genotype: Any) -> dict[str, float]:
        """``{"params", "macs"[, "latency_ms"]}`` of ``genotype``'s network."""
        from nascli.models import count_macs, count_parameters

        key = self.space.hash(genotype)
        if key not in self._known:
            model = self._build(genotype)
            costs: dict[str, float] = {
                "params": count_parameters(model),
                "macs": count_macs(model, (self.in_channels, *self.image_size))}
            if self.latency:
                costs["latency_ms"] = round(self.measure_latency(model), 4)
            self._known[key] = costs
        return dict(self._known[key])

    @torch.no_grad()
    def measure_latency(self, model: torch.nn.Module) -> float:
        """Median milliseconds of one forward pass of ``batch_size`` images on the device."""
        model = model.to(self.device).eval()
        x = torch.randn(self.batch_size, self.in_channels, *self.image_size, device=self.device)
        sync = torch.cuda.synchronize if self.device.type == "cuda" else (lambda: None)
        times = []
        for i in range(self.repeats + 2):
            sync()
            t0 = time.perf_counter()
            model(x)
            sync()
            if i >= 2:  # the first passes allocate and pick kernels
                times.append((time.perf_counter() - t0) * 1e3)
        times.sort()
        return times[len(times) // 2]
