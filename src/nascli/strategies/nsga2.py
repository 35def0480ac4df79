"""Pareto evolution: steady-state NSGA-II (Deb et al. 2002; Durillo et al. 2009) on score
against a cost.

A population of the ``population_size`` best models by non-dominated rank and crowding
distance. A child is a mutation of the winner of a tournament of ``sample_size`` members
(lower rank wins, then larger crowding distance); when a finished child joins a full
population, the member with the worst rank and the smallest crowding distance in its front
leaves. So the population spreads along the front of accuracy against parameters,
multiply-adds or latency instead of crowding at the most accurate, largest cells.

The cost of each candidate comes with its told metrics (the search passes ``params``,
``macs`` and, when measured, ``latency_ms``).
"""

from __future__ import annotations

from typing import Any

from nascli.pareto import crowding_distances, nondominated_ranks
from nascli.spaces import Genotype, SearchSpace
from nascli.strategies.base import Strategy, StrategyError, check_option, is_int

COSTS = ("params", "macs", "latency_ms")


class ParetoEvolution(Strategy):
    """NSGA-II selection, one child at a time (``strategy=nsga2``).

    Args:
        population_size: P, members kept (>= 2); until P models have finished, asks are random.
        sample_size: tournament size (1..P), drawn with replacement.
        cost: the metric to keep low: ``params``, ``macs`` or ``latency_ms``.
    """

    name = "nsga2"

    def __init__(self, space: SearchSpace, seed: int = 0, *, population_size: int = 16,
                 sample_size: int = 2, cost: str = "macs") -> None:
        super().__init__(space, seed)
        check_option(is_int(population_size) and population_size >= 2, self.name,
                     "population_size", population_size, "an integer >= 2")
        check_option(is_int(sample_size) and 1 <= sample_size <= population_size, self.name,
                     "sample_size", sample_size,
                     f"an integer in 1..population_size ({population_size})")
        check_option(cost in COSTS, self.name, "cost", cost, " or ".join(COSTS))
        self.population_size, self.sample_size = int(population_size), int(sample_size)
        self.cost = cost
        #: members: (hash, genotype, score, cost)
        self.population: list[tuple[str, Genotype, float, float]] = []

    def _points(self) -> list[tuple[float, float]]:
        return [(c, s) for _, _, s, c in self.population]

    def _order(self) -> list[tuple[int, float]]:
        """(rank, -crowding) of every member: lower is better."""
        points = self._points()
        ranks = nondominated_ranks(points)
        keys: list[tuple[int, float]] = [(0, 0.0)] * len(points)
        for rank in set(ranks):
            members = [i for i, r in enumerate(ranks) if r == rank]
            for i, d in zip(members, crowding_distances([points[i] for i in members]),
                            strict=True):
                keys[i] = (rank, -d)
        return keys

    def _propose(self) -> tuple[Genotype, str]:
        if len(self.population) < self.population_size:
            genotype = self.space.sample(self.rng)
        else:
            keys = self._order()
            picks = [int(i) for i in self.rng.integers(len(self.population),
                                                       size=self.sample_size)]
            winner = min(picks, key=lambda i: keys[i])  # the first drawn wins ties
            genotype = self.space.mutate(self.population[winner][1], self.rng)
        return genotype, self.space.hash(genotype)

    def _observe(self, genotype: Genotype, h: str, score: float | None,
                 metrics: dict[str, Any] | None, was_pending: bool) -> None:
        if score is None:
            return
        metrics = metrics or {}
        if self.cost not in metrics or metrics[self.cost] is None:
            if metrics.get("cached"):  # a repeat the wrapper answered: already judged
                return
            raise StrategyError(f"nsga2: the told metrics lack the cost {self.cost!r} (the "
                                "search passes params and macs; latency_ms needs "
                                "objective.cost=latency_ms or constraints.max_latency_ms)")
        if any(m[0] == h for m in self.population):
            return
        self.population.append((h, genotype, float(score), float(metrics[self.cost])))
        if len(self.population) > self.population_size:
            keys = self._order()
            worst = max(range(len(keys)), key=lambda i: (keys[i], -i))  # the oldest of equals
            del self.population[worst]

    def _extra_state(self) -> dict[str, Any]:
        return {"population": [{"hash": h, "genotype": self.space.to_json(g), "score": s,
                                "cost": c} for h, g, s, c in self.population]}

    def _load_extra_state(self, state: dict[str, Any]) -> None:
        self.population = [(m["hash"], self.space.from_json(m["genotype"]), float(m["score"]),
                            float(m["cost"])) for m in state["population"]]
