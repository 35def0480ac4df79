"""What a search maximises (``objective=score|mnas|pareto``) and the live ``pareto.json``.

- ``score``: the estimator's score (validation accuracy for ``proxy=train``).
- ``mnas``: MnasNet's scalarised reward ``score * (cost / target) ** w`` with ``w = alpha``
  when the cost is within the target and ``beta`` above it (Tan et al. 2019: ``alpha = beta =
  -0.07`` is a soft constraint, ``alpha = 0, beta = -1`` a hard one). The row's ``score`` is
  the reward and ``raw_score`` the estimator's.
- ``pareto``: the score stays the estimator's; the set of candidates that no other beats on
  both score and cost is rewritten in ``pareto.json`` after every evaluation (``mnas`` keeps
  one too). ``strategy=nsga2`` searches along that front.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Any

from nascli.config import check
from nascli.pareto import pareto_front

KINDS = ("score", "mnas", "pareto")
COSTS = ("params", "macs", "latency_ms")
PARETO_VERSION = 1


@dataclass
class Objective:
    """``objective.*`` (configs/objective/)."""

    kind: str = "score"
    cost: str = "macs"
    target: float | None = None
    alpha: float = -0.07
    beta: float = -0.07

    def __post_init__(self) -> None:
        check(self.kind in KINDS, "objective.kind", self.kind, " or ".join(KINDS))
        check(self.cost in COSTS, "objective.cost", self.cost, " or ".join(COSTS))
        if self.kind == "mnas":
            check(self.target is not None and math.isfinite(self.target) and self.target > 0,
                  "objective.target", self.target,
                  f"the {self.cost} target T of the MnasNet reward, a positive number")
        for key in ("alpha", "beta"):
            value = getattr(self, key)
            check(math.isfinite(value) and value <= 0, f"objective.{key}", value,
                  "an exponent <= 0")

    @property
    def needs_costs(self) -> bool:
        """True when candidates' costs must be counted for the objective."""
        return self.kind != "score"

    def reward(self, score: float, costs: dict[str, float]) -> float:
        """The value the search maximises for a candidate of ``score`` and ``costs``."""
        if self.kind != "mnas":
            return score
        ratio = costs[self.cost] / self.target
        return score * ratio ** (self.alpha if ratio <= 1 else self.beta)


def score(cost: str = "macs") -> Objective:
    """``objective=score``: the estimator's score (``cost`` is what ``strategy=nsga2`` and the
    report weigh)."""
    return Objective("score", cost)


def mnas(target: float, cost: str = "macs", alpha: float = -0.07, beta: float = -0.07
         ) -> Objective:
    """``objective=mnas``: MnasNet's reward with cost target ``target``."""
    return Objective("mnas", cost, target, alpha, beta)


def pareto(cost: str = "macs") -> Objective:
    """``objective=pareto``: the score, and the front of score against ``cost``."""
    return Objective("pareto", cost)


def cost_of(row: dict[str, Any], cost: str) -> float | None:
    """A history row's ``cost``: counted by the constraints' meter when it ran, else the
    estimator's own count (``params``, ``macs``)."""
    value = (row.get("costs") or {}).get(cost, row.get(cost))
    return None if value is None else float(value)


def raw_score(row: dict[str, Any]) -> float:
    """The estimator's score of a history row (before a scalarised reward)."""
    return float(row["raw_score"] if row.get("raw_score") is not None else row["score"])


def pareto_rows(rows: list[dict[str, Any]], cost: str) -> list[dict[str, Any]]:
    """The finished rows that no other finished row beats on score and ``cost``, by cost."""
    ok = [r for r in rows if r["status"] == "ok" and cost_of(r, cost) is not None]
    points = [(cost_of(r, cost), raw_score(r)) for r in ok]
    return [ok[i] for i in pareto_front(points)]


def pareto_document(rows: list[dict[str, Any]], cost: str, network: str) -> dict[str, Any]:
    """The content of ``pareto.json``: the front of score against ``cost``."""
    front = pareto_rows(rows, cost)
    return {
        "version": PARETO_VERSION,
        "objectives": {"score": "max", cost: "min"},
        "network": network,
        "evaluations": sum(r["status"] == "ok" for r in rows),
        "front": [{"id": r["id"], "hash": r["hash"], "score": raw_score(r),
                   cost: cost_of(r, cost), "arch": r["arch"], "genotype": r["genotype"]}
                  for r in front],
    }
