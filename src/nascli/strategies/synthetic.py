"""Synthetic objectives with known structure, for testing and benchmarking strategies.

They cost microseconds, so a strategy's sample efficiency can be measured over many seeds:
a strategy that exploits structure should reach a given score in fewer evaluations than random
search.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Sequence
from typing import Any

import numpy as np

from nascli.spaces import Decision, Genotype, NASNetSpace, SearchSpace
from nascli.strategies.base import AskTell


class GridSpace(SearchSpace):
    """A space that only lists decisions: ``sizes[k]`` integer choices for decision ``k``."""

    name = "grid"

    def __init__(self, sizes: Sequence[int]) -> None:
        self._decisions = [Decision(f"d{k}", tuple(range(n))) for k, n in enumerate(sizes)]

    @property
    def decisions(self) -> list[Decision]:
        """One decision per entry of ``sizes``."""
        return self._decisions


def _objective_rngs(seed: int) -> tuple[np.random.Generator, np.random.Generator]:
    # streams apart from a strategy's default_rng(seed), which would otherwise draw the target
    return np.random.default_rng([0x5EA7C4, seed, 0]), np.random.default_rng([0x5EA7C4, seed, 1])


class HiddenTarget:
    """Score = fraction of decisions that match a hidden target genotype, plus Gaussian noise.

    Args:
        space: any space.
        seed: draws the target and seeds the noise.
        noise: standard deviation of the noise added to each evaluation.
    """

    def __init__(self, space: SearchSpace, seed: int = 0, noise: float = 0.01) -> None:
        rng, self._noise_rng = _objective_rngs(seed)
        self.space = space
        self.target = np.array([int(rng.integers(len(d))) for d in space.decisions])
        self.noise = float(noise)

    def true_score(self, genotype: Genotype) -> float:
        """The noise-free score in [0, 1]."""
        return float(np.mean(np.asarray(self.space.encode(genotype)) == self.target))

    def __call__(self, genotype: Genotype) -> float:
        return self.true_score(genotype) + self.noise * float(self._noise_rng.normal())


class AdditiveOps:
    """NASNet-style additive quality model: each op and each input state has a hidden quality.

    Raw score = ``op_weight`` x mean quality of the chosen ops + (1 - ``op_weight``) x mean
    quality of the chosen input states; it is rescaled so the worst architecture of the space
    scores 0 and the best 1, then Gaussian noise is added. The qualities are evenly spaced in
    [0, 1] and shuffled by the seed, so every seed poses a problem of the same difficulty.
    """

    def __init__(
        self, space: NASNetSpace, seed: int = 0, noise: float = 0.01, op_weight: float = 0.8
    ) -> None:
        rng, self._noise_rng = _objective_rngs(seed)
        self.space = space
        op_q = rng.permutation(np.linspace(0.0, 1.0, len(space.ops)))
        self.op_quality = dict(zip(space.ops, op_q, strict=True))
        self.input_quality = rng.permutation(np.linspace(0.0, 1.0, space.blocks + 2))
        self.noise = float(noise)
        self.op_weight = float(op_weight)
        # block b reads states 0..b+1, so the extremes of the input term depend on b
        q_in = self.input_quality
        ops = list(self.op_quality.values())
        self._low = self._raw(min(ops), np.mean([q_in[: b + 2].min() for b in range(space.blocks)]))
        self._high = self._raw(
            max(ops), np.mean([q_in[: b + 2].max() for b in range(space.blocks)])
        )

    def _raw(self, op_mean: float, input_mean: float) -> float:
        return self.op_weight * float(op_mean) + (1 - self.op_weight) * float(input_mean)

    def true_score(self, genotype: Genotype) -> float:
        """The noise-free score in [0, 1]."""
        ops, inputs = [], []
        for kind in ("normal", "reduce"):
            for block in genotype.cell(kind).blocks:
                ops += [self.op_quality[o] for o in block.ops]
                inputs += [self.input_quality[i] for i in block.inputs]
        raw = self._raw(np.mean(ops), np.mean(inputs))
        return (raw - self._low) / (self._high - self._low)

    def __call__(self, genotype: Genotype) -> float:
        return self.true_score(genotype) + self.noise * float(self._noise_rng.normal())


def run_search(
    strategy: AskTell, objective: Callable[[Genotype], float], budget: int, workers: int = 1
) -> tuple[list[Genotype], list[float]]:
    """Evaluate ``budget`` asks of ``strategy`` on ``objective``: genotypes and told scores, in
    tell order.

    With ``workers > 1``, that many asks are kept in flight and the oldest is told first, as a
    pool of equally fast workers would.
    """
    genotypes: list[Genotype] = []
    scores: list[float] = []
    in_flight: list[Genotype] = []
    asked = 0
    while len(scores) < budget:
        while asked < budget and len(in_flight) < workers:
            in_flight.append(strategy.ask())
            asked += 1
        genotype = in_flight.pop(0)
        score = objective(genotype)
        strategy.tell(genotype, score)
        genotypes.append(genotype)
        scores.append(score)
    return genotypes, scores


def evaluations_to_reach(scores: Sequence[float], target: float) -> int:
    """1-based index of the first score >= ``target``; ``len(scores) + 1`` if none."""
    hits = np.flatnonzero(np.asarray(scores) >= target)
    return int(hits[0]) + 1 if hits.size else len(scores) + 1


class MultiFidelity:
    """An estimator over a synthetic objective whose noise shrinks with training: a score after
    ``steps`` steps is ``objective.true_score(g) + noise * sqrt(max_steps / steps) * N(0, 1)``,
    seeded by the evaluation's seed. For benchmarking schedules (successive halving) without
    training networks; it counts the steps it was asked to train.

    Args:
        objective: anything with ``true_score(genotype)`` (:class:`HiddenTarget`,
            :class:`AdditiveOps`).
        max_steps: the full training length (the noise at full training is ``noise``).
        noise: standard deviation of the score at full training.
    """

    name = "multi_fidelity"
    supports_steps = True

    def __init__(self, objective: HiddenTarget | AdditiveOps, max_steps: int,
                 noise: float = 0.02) -> None:
        self.objective, self.max_steps, self.noise = objective, int(max_steps), float(noise)
        self.steps_trained = 0

    def __call__(self, genotype: Genotype, seed: int | None = None,
                 steps: int | None = None) -> Any:
        """An :class:`~nascli.estimators.base.Estimate` after ``steps`` (default: all)."""
        from nascli.estimators.base import Estimate

        steps = self.max_steps if steps is None else int(steps)
        self.steps_trained += steps
        rng = np.random.default_rng([0xF1DE, seed or 0])
        sigma = self.noise * math.sqrt(self.max_steps / steps)
        score = self.objective.true_score(genotype) + sigma * float(rng.normal())
        return Estimate(score=score, metrics={"steps": steps}, params=1, macs=1,
                        epochs=steps / self.max_steps)
