"""Shared helpers for the strategy tests: a user-defined lookup-table space and drivers."""

from __future__ import annotations

import io
import itertools
from typing import Any

import numpy as np
import torch

from nascli.spaces import Decision, SearchSpace
from nascli.strategies import Strategy, build

ALL = ("random", "evolution", "ppo", "reinforce")

#: small options so every strategy leaves its warm-up phase within a few dozen evaluations
SMALL = {
    "random": {},
    "evolution": {"population_size": 6, "sample_size": 3},
    "ppo": {"batch_size": 5, "lr": 0.01},
    "reinforce": {"batch_size": 5, "lr": 0.01},
}


class LookupSpace(SearchSpace):
    """What a user writes: a space that only lists its decisions (54 architectures)."""

    name = "lookup"

    @property
    def decisions(self) -> list[Decision]:
        return [
            Decision("depth", (1, 2, 3)),
            Decision("width", (16, 32, 64)),
            Decision("act", ("relu", "gelu")),
            Decision("kernel", (3, 5, 7)),
        ]


def lookup_table(space: SearchSpace, seed: int = 0) -> dict[tuple, float]:
    """A score for every architecture of a small space (the "benchmark table")."""
    rng = np.random.default_rng(seed)
    grid = itertools.product(*(range(len(d)) for d in space.decisions))
    keys = [space.decode(list(i)) for i in grid]
    return {k: float(v) for k, v in zip(keys, rng.uniform(size=len(keys)), strict=True)}


def make(name: str, space: SearchSpace, seed: int = 0, **extra: Any) -> Strategy:
    """A strategy with the small test options."""
    return build(name, space, seed, **{**SMALL[name], **extra})


def score_of(space: SearchSpace, genotype) -> float:
    """A deterministic pseudo-score from the canonical hash (no structure)."""
    return int(space.hash(genotype)[:8], 16) / 16**8


def drive(strategy: Strategy, n: int, ahead: int = 1, fail_every: int = 0) -> list[str]:
    """Ask/tell ``n`` times keeping ``ahead`` asks in flight (oldest told first); every
    ``fail_every``-th tell is a failure. Returns the asked hashes in ask order."""
    space = strategy.space
    asked, in_flight, told = [], [], 0
    while told < n:
        while len(asked) < n and len(in_flight) < ahead:
            g = strategy.ask()
            asked.append(space.hash(g))
            in_flight.append(g)
        g = in_flight.pop(0)
        told += 1
        failed = fail_every and told % fail_every == 0
        strategy.tell(g, None if failed else score_of(space, g))
    return asked


def torch_round_trip(state: dict) -> dict:
    """Through ``torch.save`` and ``torch.load(weights_only=True)``."""
    buf = io.BytesIO()
    torch.save(state, buf)
    buf.seek(0)
    return torch.load(buf, weights_only=True)
