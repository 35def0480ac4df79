"""Sample efficiency on synthetic objectives where structure matters, over 10 seeds.

A strategy's cost is the number of evaluations until it first asks an architecture whose
noise-free score reaches the target (budget + 1 if it never does). Evolution and PPO must need
at least 25% fewer than random search on average; REINFORCE no more. The controllers use a
small-budget preset (the papers' learning rates suit budgets of thousands).
"""

from __future__ import annotations

import functools
import time

import numpy as np
import pytest

from nascli.spaces import NASNetSpace
from nascli.strategies import build
from nascli.strategies.synthetic import (
    AdditiveOps,
    GridSpace,
    HiddenTarget,
    evaluations_to_reach,
    run_search,
)

SEEDS = range(10)
BUDGET = 300
MARGIN = 0.25

#: objective name -> (space, objective factory, target noise-free score)
OBJECTIVES = {
    "hidden_target": (GridSpace([4] * 20), HiddenTarget, 0.6),
    "additive_ops": (NASNetSpace(), AdditiveOps, 0.7),
}

PRESETS = {
    "random": {},
    "evolution": {"population_size": 20, "sample_size": 5},
    "ppo": {"lr": 0.01, "tanh_constant": 1.5},
    "reinforce": {"lr": 0.01, "tanh_constant": 1.5},
}


@functools.cache
def mean_evaluations(strategy: str, objective: str) -> float:
    """Mean evaluations to reach the objective's target over ``SEEDS`` (censored at budget)."""
    space, make_objective, target = OBJECTIVES[objective]
    counts = []
    for seed in SEEDS:
        f = make_objective(space, seed)
        s = build(strategy, space, seed, **PRESETS[strategy])
        genotypes, _ = run_search(s, f, BUDGET)
        counts.append(evaluations_to_reach([f.true_score(g) for g in genotypes], target))
    return float(np.mean(counts))


def _margin(strategy: str, objective: str) -> float:
    ours, rand = mean_evaluations(strategy, objective), mean_evaluations("random", objective)
    margin = 1 - ours / rand
    print(f"{strategy} on {objective}: {ours:.1f} vs random {rand:.1f} ({margin:+.0%} fewer)")
    return margin


def test_random_rarely_reaches_the_targets_quickly():
    # guards the test's meaning: the targets must be hard for random search
    for objective in OBJECTIVES:
        assert mean_evaluations("random", objective) > BUDGET / 2


@pytest.mark.parametrize("objective", OBJECTIVES)
def test_evolution_needs_clearly_fewer_evaluations_than_random(objective):
    assert _margin("evolution", objective) >= MARGIN


@pytest.mark.slow
@pytest.mark.parametrize("objective", OBJECTIVES)
def test_ppo_needs_clearly_fewer_evaluations_than_random(objective):
    assert _margin("ppo", objective) >= MARGIN


@pytest.mark.slow
@pytest.mark.parametrize("objective", OBJECTIVES)
def test_reinforce_is_no_worse_than_random(objective):
    assert _margin("reinforce", objective) >= 0.0


@pytest.mark.slow
@pytest.mark.parametrize(("name", "limit_ms"), [("random", 5), ("evolution", 5), ("ppo", 50)])
def test_overhead_per_candidate_on_nasnet(name, limit_ms):
    # generous limits (measured about 6x lower on a busy 2-core machine); guards regressions
    # such as a controller update running on many threads
    space = NASNetSpace()
    s = build(
        name,
        space,
        0,
        **({"population_size": 50, "sample_size": 12} if name == "evolution" else {}),
    )
    rng = np.random.default_rng(0)
    start = time.perf_counter()
    for _ in range(200):
        g = s.ask()
        s.tell(g, float(rng.uniform()))
    per_ms = (time.perf_counter() - start) / 200 * 1e3
    print(f"{name}: {per_ms:.2f} ms per candidate")
    assert per_ms < limit_ms
