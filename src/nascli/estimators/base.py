"""The estimator interface (a callable from genotype to :class:`Estimate`) and the skeleton that
every network-based estimator shares: a seeded build, cost counts, failures as data, cleanup."""

from __future__ import annotations

import gc
import math
import time
from dataclasses import asdict, dataclass, field
from typing import Any, Protocol

import torch
from torch import nn


@dataclass
class Estimate:
    """What one evaluation found: a score (higher is better) plus metrics and cost.

    ``status`` is ``"ok"`` or ``"failed"``; a failed estimate has ``score=None`` and an
    ``error`` line (diverged training, out of memory, a model that cannot be built). ``macs``
    counts multiply-adds of one forward pass of one image.
    """

    score: float | None
    metrics: dict[str, Any] = field(default_factory=dict)
    params: int | None = None
    macs: int | None = None
    seconds: float = 0.0
    epochs: float = 0.0
    status: str = "ok"
    error: str | None = None

    @classmethod
    def failed(cls, error: str, **kwargs: Any) -> Estimate:
        """A failed estimate with a one-line reason."""
        return cls(score=None, status="failed", error=error.splitlines()[0][:500], **kwargs)

    @property
    def ok(self) -> bool:
        """True when the estimate has a finite score."""
        return self.status == "ok" and self.score is not None and math.isfinite(self.score)

    def to_dict(self) -> dict[str, Any]:
        """JSON-ready dict."""
        return asdict(self)


class Estimator(Protocol):
    """Anything that maps a genotype (and a seed) to an :class:`Estimate`.

    Estimators that train may also take ``steps`` (a training length chosen by a multi-fidelity
    schedule) and say so with a class attribute ``supports_steps = True``.
    """

    name: str

    def __call__(self, genotype: Any, seed: int | None = None) -> Estimate:  # pragma: no cover
        ...


def estimate(estimator: Any, genotype: Any, seed: int | None, steps: int | None) -> Estimate:
    """``estimator(genotype, seed=seed)``, with ``steps=steps`` when a schedule chose a
    training length (estimators without one are called as before)."""
    if steps is None:
        return estimator(genotype, seed=seed)
    return estimator(genotype, seed=seed, steps=steps)


class ModelEstimator:
    """Base of estimators that build the candidate's network and score it.

    Subclasses implement :meth:`score`. The base seeds torch with the evaluation's seed, builds
    the network through the space's builder (``nascli.models.build_model``), counts parameters
    and multiply-adds, turns divergence, out-of-memory and non-finite scores into failed
    estimates, and frees the model afterwards so memory stays flat over a long search.

    Args:
        space: the search space (its builder and search-time network settings).
        data: :class:`~nascli.data.DataSplits`.
        device: where networks are built and run.
        amp: ``none``, ``bf16`` or ``fp16`` mixed precision (CUDA only).
        channels_last: NHWC memory format for networks and batches.
        seed: the run seed; each call's seed is ``seed`` plus the call's ``seed`` offset.
    """

    name = "model"

    def __init__(
        self, space: Any, data: Any, device: torch.device | str = "cpu", amp: str = "none",
        channels_last: bool = False, seed: int = 0,
    ) -> None:
        self.space, self.data = space, data
        self.device = torch.device(device)
        self.amp, self.channels_last, self.seed = amp, bool(channels_last), int(seed)
        self.calls = 0
        self._costs: dict[str, tuple[int, int]] = {}
        from nascli.training.device import ThreadGovernor, warm_up

        self.warm_up_seconds = warm_up(self.device, self.channels_last, amp)
        self.threads = ThreadGovernor(self.device)

    def build(self, genotype: Any) -> nn.Module:
        """The search-time network of ``genotype`` on the estimator's device."""
        from nascli.models import build_model

        model = build_model(self.space, genotype, num_classes=self.data.num_classes,
                            in_channels=self.data.in_channels).to(self.device)
        if self.channels_last:
            model = model.to(memory_format=torch.channels_last)
        return model

    def cost(self, genotype: Any, model: nn.Module | None = None) -> tuple[int, int]:
        """``(parameters, multiply-adds)`` of ``genotype``'s network, counted once per genotype
        (on ``model`` when given, else on a fresh CPU build).

        Counting is one forward pass of one image (14 ms for a search-time network on 2 CPU
        cores; a ``meta``-device count took 100-300 ms); searches run it with cuDNN
        autotuning off, so it adds no autotuning of its own on a GPU.
        """
        from nascli.models import build_model, count_macs, count_parameters

        key = self.space.hash(genotype)
        if key not in self._costs:
            if model is None:
                with torch.random.fork_rng(devices=[]):
                    model = build_model(self.space, genotype, num_classes=self.data.num_classes,
                                        in_channels=self.data.in_channels)
            size = (self.data.in_channels, *self.data.image_size)
            self._costs[key] = count_parameters(model), count_macs(model, size)
        return self._costs[key]

    def score(self, model: nn.Module, genotype: Any, seed: int) -> tuple[float, dict[str, Any],
                                                                         float]:
        """``(score, metrics, epochs of training)`` of a freshly built, seeded network."""
        raise NotImplementedError(f"{type(self).__name__} must define score()")

    def __call__(self, genotype: Any, seed: int | None = None,
                 steps: int | None = None) -> Estimate:
        """Estimate ``genotype``; ``seed`` defaults to the run seed plus the call count;
        ``steps`` (estimators with ``supports_steps``) sets the training length."""
        from nascli.training import DivergedError
        from nascli.training.device import memory_short

        seed = self.seed + self.calls if seed is None else int(seed)
        self.calls += 1
        # fewer threads while other processes hold cores (recorded: the last digits of a
        # score depend on the thread count)
        threads = self.threads.adjust()
        t0 = time.perf_counter()
        torch.manual_seed(seed)
        model = None
        params = macs = None
        try:
            model = self.build(genotype)
            params, macs = self.cost(genotype, model)
            value, metrics, epochs = (self.score(model, genotype, seed) if steps is None
                                      else self.score(model, genotype, seed, steps=steps))
            if threads is not None:
                metrics = {**metrics, "threads": threads}
            if not math.isfinite(value):
                return Estimate.failed(f"{self.name} score is {value}", params=params, macs=macs,
                                       seconds=time.perf_counter() - t0)
            return Estimate(score=value, metrics=metrics, params=params, macs=macs,
                            seconds=time.perf_counter() - t0, epochs=epochs)
        except DivergedError as exc:
            return Estimate.failed(f"diverged: {exc}", params=params, macs=macs,
                                   seconds=time.perf_counter() - t0)
        except torch.OutOfMemoryError:
            return Estimate.failed("out of memory", params=params, macs=macs,
                                   seconds=time.perf_counter() - t0)
        finally:
            # the network has no reference cycles: dropping it frees it. gc.collect found
            # nothing and cost 85 ms per candidate, empty_cache makes the next candidate
            # allocate from the driver again; both run only when a GPU is short of memory
            del model
            if memory_short(self.device):
                gc.collect()
                torch.cuda.empty_cache()
