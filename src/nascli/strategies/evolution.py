"""Regularized (aging) evolution, Real et al. 2019 ("AmoebaNet").

A population of the P most recently finished models; each new child is a mutation of the best
of S members drawn with replacement, and the oldest member dies when a child joins. Only
finished, successful evaluations join the population, so asks issued before their tells do not
block: until P models have finished, asks are random (or the given initial population).
"""

from __future__ import annotations

from collections import deque
from collections.abc import Callable, Sequence
from typing import Any

import numpy as np

from nascli.spaces import Genotype, SearchSpace
from nascli.strategies.base import Strategy, StrategyError

#: Scores a list of candidate children (e.g. by a zero-cost proxy); higher is better.
ChildScorer = Callable[[list[Genotype]], Sequence[float]]


class RegularizedEvolution(Strategy):
    """Aging evolution with tournament selection.

    Args:
        population_size: P, models kept alive (paper: 100).
        sample_size: S, tournament size, drawn with replacement (paper: 25).
        identity_prob: chance that a child is an unmutated copy of its parent (paper: small).
            Such a copy is a duplicate, so unless ``allow_duplicates`` it is re-drawn like any
            child that repeats an asked architecture.
        initial_population: genotypes asked first, in order (e.g. picked by a proxy), instead of
            random ones; duplicates among them are skipped.
        children_per_step: K candidate children per ask, each from its own tournament; with
            K > 1, ``score_children`` picks the one to ask (highest score, first on ties).
        score_children: callable from a list of K genotypes to K scores. Not part of the state
            dict: pass it again when resuming. Must be deterministic for exact resumes.
        max_retries: re-draws of a child that repeats an asked architecture. The first half
            mutate the parent afresh; the rest keep mutating the last child (a random walk, to
            leave a fully explored neighbourhood); then a random unseen genotype is asked.
        allow_duplicates: ask repeats as the paper did (for noisy scores).
    """

    name = "evolution"

    def __init__(
        self,
        space: SearchSpace,
        seed: int = 0,
        *,
        population_size: int = 100,
        sample_size: int = 25,
        identity_prob: float = 0.0,
        initial_population: Sequence[Genotype] | None = None,
        children_per_step: int = 1,
        score_children: ChildScorer | None = None,
        max_retries: int = 100,
        allow_duplicates: bool = False,
    ) -> None:
        super().__init__(space, seed, max_retries=max_retries, allow_duplicates=allow_duplicates)
        if int(population_size) < 1:
            raise StrategyError(f"population_size must be >= 1, got {population_size}")
        if int(sample_size) < 1:
            raise StrategyError(f"sample_size must be >= 1, got {sample_size}")
        if not 0.0 <= float(identity_prob) <= 1.0:
            raise StrategyError(f"identity_prob must be in [0, 1], got {identity_prob}")
        if int(children_per_step) < 1:
            raise StrategyError(f"children_per_step must be >= 1, got {children_per_step}")
        if int(children_per_step) > 1 and score_children is None:
            raise StrategyError("children_per_step > 1 needs a score_children callable")
        self.population_size = int(population_size)
        self.sample_size = int(sample_size)
        self.identity_prob = float(identity_prob)
        self.children_per_step = int(children_per_step)
        self.score_children = score_children
        self._initial: deque[Genotype] = deque(
            space.validate(g) for g in (initial_population or ())
        )
        #: (hash, genotype, score), oldest first
        self.population: deque[tuple[str, Genotype, float]] = deque()

    def options(self) -> dict[str, Any]:
        """Constructor options (without the callable and the initial population)."""
        return {
            **super().options(),
            "population_size": self.population_size,
            "sample_size": self.sample_size,
            "identity_prob": self.identity_prob,
            "children_per_step": self.children_per_step,
        }

    # -- ask ----------------------------------------------------------------------------------
    def _propose(self) -> tuple[Genotype, str]:
        while self._initial:
            genotype = self._initial.popleft()
            h = self.space.hash(genotype)
            if self._is_new(h):
                return genotype, h
        if len(self.population) < self.population_size:
            return self._sample_unique()
        if self.children_per_step == 1:
            return self._child()
        children: list[tuple[Genotype, str]] = []
        taken: set[str] = set()
        for _ in range(self.children_per_step):
            child = self._child(taken)
            children.append(child)
            taken.add(child[1])
        assert self.score_children is not None
        scores = np.asarray(self.score_children([g for g, _ in children]), dtype=float)
        if scores.shape != (len(children),):
            raise StrategyError(
                f"score_children returned {scores.shape} scores for {len(children)} children"
            )
        # NaN proxies (failed) must never win
        return children[int(np.argmax(np.nan_to_num(scores, nan=-np.inf)))]

    def _tournament(self) -> Genotype:
        """Best of ``sample_size`` members drawn with replacement (first drawn wins ties)."""
        picks = self.rng.integers(len(self.population), size=self.sample_size)
        scores = np.fromiter((self.population[i][2] for i in picks), float, len(picks))
        return self.population[int(picks[int(np.argmax(scores))])][1]

    def _child(self, taken: set[str] | frozenset[str] = frozenset()) -> tuple[Genotype, str]:
        parent = self._tournament()
        child = parent
        for attempt in range(self.max_retries):
            start = parent if attempt < (self.max_retries + 1) // 2 else child
            if self.identity_prob > 0 and self.rng.random() < self.identity_prob:
                child = start
            else:
                child = self.space.mutate(start, self.rng)
            h = self.space.hash(child)
            if self._is_new(h, taken):
                return child, h
        return self._sample_unique(taken)

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
            "initial": [to_json(g) for g in self._initial],
        }

    def _load_extra_state(self, state: dict[str, Any]) -> None:
        from_json = self.space.from_json
        self.population = deque(
            (m["hash"], from_json(m["genotype"]), float(m["score"])) for m in state["population"]
        )
        self._initial = deque(from_json(g) for g in state["initial"])
