"""Regularized evolution: warm-up, aging, tournament, identity, initial population and the
proxy hook for choosing among several children."""

from __future__ import annotations

import numpy as np
import pytest
from strategy_helpers import score_of

from nascli.spaces import NASNetSpace
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


def test_defaults_are_the_papers():
    s = build("evolution", GRID, 0)
    assert (s.population_size, s.sample_size) == (100, 25)


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
    s = RegularizedEvolution(GRID, 0, population_size=5, sample_size=60)
    gs = [s.ask() for _ in range(5)]
    for k, g in enumerate(gs):
        s.tell(g, float(k))
    best = gs[-1]
    # with 60 draws with replacement from 5, the best is all but surely in the sample
    for _ in range(5):
        assert _hamming(s.ask(), best) == 1


def test_tournament_draws_with_replacement():
    s = RegularizedEvolution(GRID, 0, population_size=3, sample_size=10)
    for k, g in enumerate([s.ask() for _ in range(3)]):
        s.tell(g, float(k))
    winners = {GRID.hash(s._tournament()) for _ in range(50)}
    assert len(winners) <= 2  # S > P is valid and nearly always finds the best


def test_tournament_of_one_picks_uniformly():
    s = RegularizedEvolution(GRID, 0, population_size=4, sample_size=1)
    for k, g in enumerate([s.ask() for _ in range(4)]):
        s.tell(g, float(k))
    counts = {}
    for _ in range(400):
        h = GRID.hash(s._tournament())
        counts[h] = counts.get(h, 0) + 1
    assert len(counts) == 4 and min(counts.values()) > 60


def test_identity_children_are_redrawn_unless_duplicates_are_allowed():
    s = RegularizedEvolution(GRID, 0, population_size=3, sample_size=2, identity_prob=1.0)
    members = [s.ask() for _ in range(3)]
    for g in members:
        s.tell(g, score_of(GRID, g))
    child = s.ask()
    assert child not in members  # only identity draws: falls back to an unseen random one

    s = RegularizedEvolution(
        GRID, 0, population_size=3, sample_size=2, identity_prob=1.0, allow_duplicates=True
    )
    members = [s.ask() for _ in range(3)]
    for g in members:
        s.tell(g, score_of(GRID, g))
    assert s.ask() in members  # the paper's re-evaluation of a copy


def test_duplicate_children_are_redrawn_when_the_neighbourhood_is_used_up():
    space = GridSpace([2] * 6)  # every genotype has only 6 neighbours
    s = RegularizedEvolution(space, 0, population_size=2, sample_size=2)
    asked = []
    for _ in range(40):
        g = s.ask()
        asked.append(space.hash(g))
        s.tell(g, score_of(space, g))
    assert len(set(asked)) == 40


def test_initial_population_is_asked_first_without_repeats():
    space = NASNetSpace()
    rng = np.random.default_rng(0)
    given = [space.sample(rng) for _ in range(3)]
    s = RegularizedEvolution(
        space, 5, population_size=4, sample_size=2, initial_population=[*given, given[0]]
    )
    asked = [s.ask() for _ in range(5)]
    assert asked[:3] == given
    assert space.hash(asked[3]) not in {space.hash(g) for g in given}


def test_initial_population_survives_a_resume():
    given = [GRID.decode([k] * 10) for k in range(4)]
    s = RegularizedEvolution(GRID, 0, population_size=4, sample_size=2, initial_population=given)
    assert s.ask() == given[0]
    t = RegularizedEvolution(GRID, 0, population_size=4, sample_size=2)
    t.load_state_dict(s.state_dict())
    assert [t.ask() for _ in range(3)] == given[1:]


def test_children_per_step_asks_the_best_scored_child():
    target = GRID.decode([0] * 10)
    calls = []

    def proxy(children):
        calls.append(children)
        return [-_hamming(c, target) for c in children]

    s = RegularizedEvolution(
        GRID, 1, population_size=4, sample_size=2, children_per_step=5, score_children=proxy
    )
    for g in [s.ask() for _ in range(4)]:
        s.tell(g, score_of(GRID, g))
    child = s.ask()
    assert len(calls) == 1 and len(calls[0]) == 5
    assert len({GRID.hash(c) for c in calls[0]}) == 5  # distinct, none evaluated before
    assert child == max(calls[0], key=lambda c: -_hamming(c, target))


def test_children_per_step_ignores_nan_proxy_scores():
    s = RegularizedEvolution(
        GRID,
        1,
        population_size=2,
        sample_size=2,
        children_per_step=3,
        score_children=lambda cs: [float("nan"), 1.0, float("nan")],
    )
    for g in [s.ask() for _ in range(2)]:
        s.tell(g, 0.0)
    seen = []
    s.score_children = lambda cs: seen.append(cs) or [float("nan"), 1.0, float("nan")]
    assert s.ask() == seen[0][1]


def test_score_children_must_give_one_score_per_child():
    s = RegularizedEvolution(
        GRID,
        1,
        population_size=2,
        sample_size=2,
        children_per_step=3,
        score_children=lambda cs: [1.0],
    )
    for g in [s.ask() for _ in range(2)]:
        s.tell(g, 0.0)
    with pytest.raises(ValueError, match="3 children"):
        s.ask()


def test_evolution_improves_on_a_hidden_target():
    target = np.zeros(10, dtype=int)
    s = RegularizedEvolution(GRID, 0, population_size=10, sample_size=5)
    best = 0.0
    for _ in range(250):
        g = s.ask()
        score = float(np.mean(np.asarray(GRID.encode(g)) == target))
        best = max(best, score)
        s.tell(g, score)
    assert best >= 0.8  # random search: P(>= 8 of 10 at 1/5 each) is about 1e-4 per draw
