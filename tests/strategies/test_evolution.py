"""Regularized evolution: defaults, warm-up, aging, tournament, identity children, and how it
behaves inside the Deduplicate wrapper."""

from __future__ import annotations

import numpy as np
from strategy_helpers import score_of

from nascli.strategies import RegularizedEvolution, build
from nascli.strategies.synthetic import GridSpace

GRID = GridSpace([5] * 10)


class CountingGrid(GridSpace):
    """Counts mutations, to tell evolved children from random ones."""

    def __init__(self, sizes):
        super().__init__(sizes)
        self.mutations = 0

    def mutate(self, genotype, rng=None):
        self.mutations += 1
        return super().mutate(genotype, rng)


def _hamming(a, b) -> int:
    return sum(x != y for x, y in zip(a, b, strict=True))


def test_defaults_are_the_measured_ones_not_the_papers():
    # the paper's P = 100, S = 25 live in configs/experiment/nasnet_evolution_paper.yaml
    s = RegularizedEvolution(GRID, 0)
    assert (s.population_size, s.sample_size, s.identity_prob) == (8, 3, 0.0)


def test_random_until_population_size_models_have_finished():
    space = CountingGrid([5] * 10)
    s = RegularizedEvolution(space, 0, population_size=4, sample_size=2)
    gs = [s.ask() for _ in range(6)]  # in flight: nothing finished, so all random
    assert space.mutations == 0
    for g in gs[:3]:
        s.tell(g, 1.0)
    s.ask()
    assert space.mutations == 0  # 3 finished < P = 4
    s.tell(gs[3], None)  # a failure does not join
    s.ask()
    assert space.mutations == 0 and len(s.population) == 3
    s.tell(gs[4], 0.5)
    s.ask()
    assert space.mutations >= 1


def test_only_successes_join_and_the_oldest_dies():
    s = RegularizedEvolution(GRID, 0, population_size=3, sample_size=2)
    gs = [s.ask() for _ in range(6)]
    scores = [0.9, None, 0.1, 0.2, float("nan"), 0.3]
    for g, sc in zip(gs, scores, strict=True):
        s.tell(g, sc)
    # the best (0.9) was the oldest and died: aging, not elitism
    assert [m[2] for m in s.population] == [0.1, 0.2, 0.3]
    assert [m[1] for m in s.population] == [gs[2], gs[3], gs[5]]


def test_child_is_one_mutation_of_the_tournament_winner():
    s = RegularizedEvolution(GRID, 0, population_size=5, sample_size=5)
    gs = [s.ask() for _ in range(5)]
    for k, g in enumerate(gs):
        s.tell(g, float(k))
    best = gs[-1]
    children = [s.ask() for _ in range(60)]
    # every child is one mutation of a member; the best wins 1 - (4/5)^5 = 67% of tournaments
    assert all(min(_hamming(c, m) for m in gs) == 1 for c in children)
    assert 30 <= sum(_hamming(c, best) == 1 for c in children) <= 52


def test_tournament_draws_with_replacement():
    s = RegularizedEvolution(GRID, 0, population_size=3, sample_size=3)
    for k, g in enumerate([s.ask() for _ in range(3)]):
        s.tell(g, float(k))
    winners = [GRID.hash(s._tournament()) for _ in range(200)]
    # without replacement S = P would always pick the best; with it, the best wins 19/27
    assert len(set(winners)) >= 2
    assert 0.55 < winners.count(GRID.hash(s.population[-1][1])) / 200 < 0.85


def test_tournament_of_one_picks_uniformly():
    s = RegularizedEvolution(GRID, 0, population_size=4, sample_size=1)
    for k, g in enumerate([s.ask() for _ in range(4)]):
        s.tell(g, float(k))
    counts = {}
    for _ in range(400):
        h = GRID.hash(s._tournament())
        counts[h] = counts.get(h, 0) + 1
    assert len(counts) == 4 and min(counts.values()) > 60


def test_identity_children_copy_the_parent():
    s = RegularizedEvolution(GRID, 0, population_size=3, sample_size=2, identity_prob=0.99)
    members = [s.ask() for _ in range(3)]
    for g in members:
        s.tell(g, score_of(GRID, g))
    assert sum(s.ask() in members for _ in range(20)) >= 15  # the paper's re-evaluated copies


def test_deduplicated_identity_children_re_age_the_parent_from_the_cache():
    s = build("evolution", GRID, 0, population_size=3, sample_size=2, identity_prob=0.9)
    members = [s.ask() for _ in range(3)]
    for g in members:
        s.tell(g, score_of(GRID, g))
    child = s.ask()
    assert child not in members and s.num_cached >= 1
    # the cached copy joined as the youngest member, with its told score
    _, g, score = s.population[-1]
    assert g in members and score == score_of(GRID, g)


def test_duplicate_children_are_redrawn_when_the_neighbourhood_is_used_up():
    space = GridSpace([2] * 6)  # every genotype has only 6 neighbours
    s = build("evolution", space, 0, population_size=2, sample_size=2)
    asked = []
    for _ in range(40):
        g = s.ask()
        asked.append(space.hash(g))
        s.tell(g, score_of(space, g))
    assert len(set(asked)) == 40
    assert s.num_cached > 0


def test_evolution_improves_on_a_hidden_target():
    target = np.zeros(10, dtype=int)
    s = build("evolution", GRID, 0, population_size=10, sample_size=5)
    best = 0.0
    for _ in range(250):
        g = s.ask()
        score = float(np.mean(np.asarray(GRID.encode(g)) == target))
        best = max(best, score)
        s.tell(g, score)
    assert best >= 0.8  # random search: P(>= 8 of 10 at 1/5 each) is about 1e-4 per draw
