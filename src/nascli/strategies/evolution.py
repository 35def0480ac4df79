"""Regularized (aging) evolution, Real et al. 2019 ("AmoebaNet").

A population of the P most recently finished models; each new child is a mutation of the best
of S members drawn with replacement, and the oldest member dies when a child joins. Only
finished, successful evaluations join the population, so asks issued before their tells do not
block: until P models have finished, asks are random samples.
"""

from __future__ import annotations

from collections import deque
from typing import Any

import numpy as np

from nascli.spaces import Genotype, SearchSpace
from nascli.strategies.base import Strategy, check_option, is_int, is_number


class RegularizedEvolution(Strategy):
    """Aging evolution with tournament selection.

    The defaults are the shipped ``strategy=evolution`` config's, sized for short searches
    (docs/strategies.md gives P and S for a budget); the paper's P = 100, S = 25 for 20,000
    models are the ``experiment=nasnet_evolution_paper`` preset.

    Args:
        population_size: P, models kept alive (>= 2).
        sample_size: S, tournament size, drawn with replacement (1..P).
        identity_prob: chance in [0, 1) that a child is an unmutated copy of its parent. Under
            a :class:`~nascli.strategies.addons.Deduplicate` wrapper such a copy is answered
            from the cache, so the parent joins the population again (it is re-aged, as a
            re-trained copy was in the paper).
    """

    name = "evolution"

    def __init__(
        self,
        space: SearchSpace,
        seed: int = 0,
        *,
        population_size: int = 8,
        sample_size: int = 3,
        identity_prob: float = 0.0,
    ) -> None:
        super().__init__(space, seed)
        check_option(
            is_int(population_size) and population_size >= 2,
            self.name, "population_size", population_size, "an integer >= 2",
        )
        check_option(
            is_int(sample_size) and 1 <= sample_size <= population_size,
            self.name, "sample_size", sample_size,
            f"an integer in 1..population_size ({population_size})",
        )
        check_option(
            is_number(identity_prob) and 0.0 <= identity_prob < 1.0,
            self.name, "identity_prob", identity_prob, "a probability in [0, 1)",
        )
        self.population_size = int(population_size)
        self.sample_size = int(sample_size)
        self.identity_prob = float(identity_prob)
        #: (hash, genotype, score), oldest first
        self.population: deque[tuple[str, Genotype, float]] = deque()

    # -- ask ----------------------------------------------------------------------------------
    def _propose(self) -> tuple[Genotype, str]:
        if len(self.population) < self.population_size:
            genotype = self.space.sample(self.rng)
        else:
            parent = self._tournament()
            if self.identity_prob > 0 and self.rng.random() < self.identity_prob:
                genotype = parent
            else:
                genotype = self.space.mutate(parent, self.rng)
        return genotype, self.space.hash(genotype)

    def _tournament(self) -> Genotype:
        """Best of ``sample_size`` members drawn with replacement (first drawn wins ties)."""
        picks = self.rng.integers(len(self.population), size=self.sample_size)
        scores = np.fromiter((self.population[i][2] for i in picks), float, len(picks))
        return self.population[int(picks[int(np.argmax(scores))])][1]

    # -- tell ---------------------------------------------------------------------------------
    def _observe(
        self,
        genotype: Genotype,
        h: str,
        score: float | None,
        metrics: dict[str, Any] | None,
        was_pending: bool,
    ) -> None:
        if score is None:
            return
        self.population.append((h, genotype, score))
        while len(self.population) > self.population_size:
            self.population.popleft()  # aging: the oldest dies, not the worst

    # -- state --------------------------------------------------------------------------------
    def _extra_state(self) -> dict[str, Any]:
        to_json = self.space.to_json
        return {
            "population": [
                {"hash": h, "genotype": to_json(g), "score": s} for h, g, s in self.population
            ],
        }

    def _load_extra_state(self, state: dict[str, Any]) -> None:
        from_json = self.space.from_json
        self.population = deque(
            (m["hash"], from_json(m["genotype"]), float(m["score"])) for m in state["population"]
        )
