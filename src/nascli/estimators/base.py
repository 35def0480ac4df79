"""The estimator interface: a callable from genotype to an :class:`Estimate`."""

from __future__ import annotations

import math
from dataclasses import asdict, dataclass, field
from typing import Any, Protocol


@dataclass
class Estimate:
    """What one evaluation found: a score (higher is better) plus metrics and cost.

    ``status`` is ``"ok"`` or ``"failed"``; a failed estimate has ``score=None`` and an
    ``error`` line (diverged training, out of memory, a model that cannot be built).
    """

    score: float | None
    metrics: dict[str, Any] = field(default_factory=dict)
    params: int | None = None
    flops: int | None = None
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
    """Anything that maps a genotype to an :class:`Estimate`."""

    name: str

    def __call__(self, genotype: Any) -> Estimate:  # pragma: no cover - protocol
        ...
