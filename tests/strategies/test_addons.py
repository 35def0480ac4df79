"""The add-ons that wrap any ask/tell strategy: Deduplicate and ChildFilter, alone, composed,
around strategies without the base class, and through exact resumes."""

from __future__ import annotations

import json
import math

import pytest
from strategy_helpers import ALL, LookupSpace, make, score_of, torch_round_trip

from nascli.spaces import NASNetSpace
from nascli.strategies import (
    PPO,
    ChildFilter,
    Deduplicate,
    RandomSearch,
    RegularizedEvolution,
    SearchExhausted,
    StrategyError,
    build,
)
from nascli.strategies.synthetic import GridSpace

LOOKUP = LookupSpace()
NASNET = NASNetSpace()
GRID = GridSpace([5] * 10)


class Cycle:
    """A strategy without the base class: proposes a fixed list round and round, and logs."""

    name = "cycle"

    def __init__(self, space, genotypes):
        self.space, self.genotypes, self.k = space, list(genotypes), 0
        self.told, self.discarded = [], []

    def ask(self):
        self.k += 1
        return self.genotypes[(self.k - 1) % len(self.genotypes)]

    def tell(self, genotype, score, metrics=None):
        self.told.append((genotype, score, metrics))

    def discard(self, genotype):
        self.discarded.append(genotype)

    def state_dict(self):
        return {"k": self.k}

    def load_state_dict(self, state):
        self.k = state["k"]


def _genotypes(space, n, seed=0):
    """``n`` architectures with distinct hashes."""
    out, hashes, k = [], set(), seed
    while len(out) < n:
        g = space.sample(k)
        k += 1
        if space.hash(g) not in hashes:
            hashes.add(space.hash(g))
            out.append(g)
    return out


def proxy(space):
    """A deterministic child scorer that disagrees with the objective ``score_of``."""
    return lambda gs: [(7 * score_of(space, g)) % 1.0 for g in gs]


# -- Deduplicate -------------------------------------------------------------------------------
def test_build_wraps_every_strategy_and_reads_through_to_it():
    s = build("evolution", GRID, 0)
    assert isinstance(s, Deduplicate) and isinstance(s.inner, RegularizedEvolution)
    assert s.name == "evolution" and s.population_size == 8 and s.population is s.inner.population
    assert isinstance(build("random", GRID, 0, dedup=False), RandomSearch)


def test_max_retries_defaults_to_the_strategys_duplicate_retries():
    assert build("random", GRID, 0).max_retries == 100
    assert build("evolution", GRID, 0).max_retries == 100
    assert build("ppo", GRID, 0).max_retries == 20
    assert build("reinforce", GRID, 0).max_retries == 20
    ppo = PPO(GRID, 0)
    assert Deduplicate(ChildFilter(ppo, proxy(GRID), children=2)).max_retries == 20
    assert Deduplicate(Cycle(GRID, _genotypes(GRID, 1))).max_retries == 100
    with pytest.raises(StrategyError, match="cycle: max_retries=0 is invalid"):
        Deduplicate(Cycle(GRID, _genotypes(GRID, 1)), max_retries=0)


def test_told_re_proposals_are_answered_from_the_cache_failures_as_failures():
    a, b = _genotypes(LOOKUP, 2)
    inner = Cycle(LOOKUP, [a, b])
    s = Deduplicate(inner, max_retries=3)
    assert [s.ask(), s.ask()] == [a, b]
    s.tell(a, 0.5, {"loss": 1.0})
    s.tell(b, math.nan)
    g = s.ask()  # a, b, a are answered; then a fallback the inner never proposed
    assert inner.told[0] == (a, 0.5, {"loss": 1.0})
    assert inner.told[1][0] == b and math.isnan(inner.told[1][1])  # forwarded as told
    assert inner.told[2:] == [
        (a, 0.5, {"cached": True}),
        (b, None, {"cached": True}),
        (a, 0.5, {"cached": True}),
    ]
    assert LOOKUP.hash(g) not in {LOOKUP.hash(a), LOOKUP.hash(b)}
    assert (s.num_cached, s.num_fallbacks, s.num_told, s.num_failed) == (3, 1, 2, 1)
    s.tell(g, 0.7)  # the inner strategy gets it as a tell without an ask
    assert inner.told[-1] == (g, 0.7, None)


def test_pending_re_proposals_are_handed_back():
    a, b = _genotypes(LOOKUP, 2)
    inner = Cycle(LOOKUP, [a, b])
    s = Deduplicate(inner, max_retries=4)
    assert [s.ask(), s.ask()] == [a, b]
    fallback = s.ask()
    assert inner.discarded == [a, b, a, b] and inner.told == []
    assert s.num_returned == 4 and s.num_pending == 3
    s.discard(fallback)  # never asked of the inner strategy: not forwarded
    assert inner.discarded == [a, b, a, b] and not s.seen(LOOKUP.hash(fallback))
    s.discard(a)
    assert inner.discarded[-1] == a and not s.seen(LOOKUP.hash(a))
    with pytest.raises(StrategyError, match="not pending"):
        s.discard(a)


def test_a_discarded_architecture_may_be_asked_again():
    a, b = _genotypes(LOOKUP, 2)
    s = Deduplicate(Cycle(LOOKUP, [a, b]))
    assert s.ask() == a
    s.discard(a)
    assert s.ask() == b and s.ask() == a


def test_record_caches_without_telling_the_inner_strategy():
    a, b = _genotypes(LOOKUP, 2)
    inner = Cycle(LOOKUP, [a, b])
    s = Deduplicate(inner)
    s.record(a, 0.25)
    s.record(b, None)
    assert inner.told == [] and s.num_told == 0
    assert s.seen(LOOKUP.hash(a)) and s.cached(LOOKUP.hash(a)) == 0.25
    assert s.cached(LOOKUP.hash(b)) is None
    with pytest.raises(KeyError):
        s.cached("0" * 16)
    s.ask()
    assert inner.told[:2] == [(a, 0.25, {"cached": True}), (b, None, {"cached": True})]


def test_reserved_architectures_are_pending_but_unknown_to_the_inner_strategy():
    a, b = _genotypes(LOOKUP, 2)
    inner = Cycle(LOOKUP, [a, b])
    s = Deduplicate(inner)
    assert s.reserve(a) and not s.reserve(a)
    assert s.num_pending == 1 and s.ask() == b  # the inner's a is handed back
    assert inner.discarded == [a]
    s.tell(a, 0.4)
    assert inner.told == [(a, 0.4, None)] and s.num_pending == 1
    assert not s.reserve(a)  # told: seen
    c = _genotypes(LOOKUP, 3)[2]
    s.reserve(c)
    s.discard(c)  # never forwarded: the inner strategy never asked it
    assert inner.discarded == [a] and not s.seen(LOOKUP.hash(c))


def test_a_small_space_is_exhausted_with_a_clear_message():
    s = Deduplicate(Cycle(LOOKUP, _genotypes(LOOKUP, 1)), max_retries=2)
    asked = {LOOKUP.hash(s.ask()) for _ in range(54)}
    assert len(asked) == 54
    with pytest.raises(SearchExhausted, match="cycle: all 54 distinct architectures of space "):
        s.ask()


def test_a_large_space_of_only_seen_draws_says_so():
    class Stuck(GridSpace):
        def sample(self, rng=None):
            return self.decode([0] * 20)

    space = Stuck([2] * 20)  # 2**20 encodings: too many to enumerate
    s = Deduplicate(Cycle(space, [space.decode([0] * 20)]), max_retries=7)
    s.ask()
    with pytest.raises(SearchExhausted, match="7 random draws from space 'grid' were all"):
        s.ask()


def test_fallbacks_use_the_wrappers_own_rng():
    g = _genotypes(GRID, 1)
    a = Deduplicate(Cycle(GRID, g), seed=1, max_retries=1)
    b = Deduplicate(Cycle(GRID, g), seed=1, max_retries=1)
    c = Deduplicate(Cycle(GRID, g), seed=2, max_retries=1)
    run = [[GRID.hash(s.ask()) for _ in range(10)] for s in (a, b, c)]
    assert run[0] == run[1] != run[2]
    assert len(set(run[0])) == 10


def test_state_of_a_wrapped_duck_typed_strategy_is_plain_json():
    g = _genotypes(GRID, 2)
    s = Deduplicate(Cycle(GRID, g), seed=3, max_retries=2)
    for _ in range(4):
        s.tell(s.ask(), 0.5)
    pending = s.ask()
    state = json.loads(json.dumps(s.state_dict()))
    t = Deduplicate(Cycle(GRID, g), seed=99, max_retries=2)
    t.load_state_dict(state)
    assert t.state_dict() == s.state_dict()
    assert t.seen(GRID.hash(pending))
    assert [GRID.hash(t.ask()) for _ in range(5)] == [GRID.hash(s.ask()) for _ in range(5)]


# -- ChildFilter -------------------------------------------------------------------------------
def test_the_highest_scored_child_is_asked_first_on_ties():
    gs = _genotypes(GRID, 4)
    inner = Cycle(GRID, gs)
    f = ChildFilter(inner, lambda cs: [1.0, 3.0, 3.0, 2.0], children=4)
    assert f.ask() == gs[1]
    assert inner.discarded == [gs[0], gs[2], gs[3]]
    assert f.num_filtered == 1


@pytest.mark.parametrize(
    ("scores", "winner"),
    [
        ([math.nan, -math.inf, 0.1], 2),
        ([math.nan, 5.0, math.nan], 1),
        ([-math.inf, math.nan, -5.0], 2),
        ([math.nan, math.nan, -math.inf], 0),  # nothing usable: the first
    ],
)
def test_nan_and_minus_infinity_never_win(scores, winner):
    gs = _genotypes(GRID, 3)
    assert ChildFilter(Cycle(GRID, gs), lambda cs: scores, children=3).ask() == gs[winner]


def test_one_child_needs_no_scoring():
    def never(cs):
        raise AssertionError("scored")

    s = ChildFilter(RandomSearch(GRID, 0), never, children=1)
    assert s.ask() is not None and s.num_pending == 1


def test_a_scorer_with_the_wrong_count_fails_and_hands_every_child_back():
    inner = RandomSearch(GRID, 0)
    s = ChildFilter(inner, lambda cs: [1.0], children=3)
    with pytest.raises(StrategyError, match=r"\(1,\) scores for 3 children"):
        s.ask()
    assert inner.num_pending == 0 and inner.num_discarded == 3


def test_bad_filter_options():
    with pytest.raises(StrategyError, match="child_filter: children=0 is invalid; expected an"):
        ChildFilter(RandomSearch(GRID, 0), proxy(GRID), children=0)
    with pytest.raises(StrategyError, match="score must be callable"):
        ChildFilter(RandomSearch(GRID, 0), None, children=2)


def test_near_exhaustion_the_filter_chooses_among_the_children_there_are():
    space = GridSpace([2, 2])
    s = ChildFilter(build("random", space, 0), lambda cs: list(range(len(cs))), children=3)
    asked = [space.hash(s.ask()) for _ in range(4)]  # the last two asks find 2, then 1 child
    assert len(set(asked)) == 4 and s.inner.num_pending == 4
    assert s.num_filtered == 3
    with pytest.raises(SearchExhausted):
        s.ask()
    assert s.inner.num_pending == 4


def test_filter_around_dedup_scores_distinct_unseen_children():
    target = GRID.decode([0] * 10)
    calls = []

    def closeness(children):
        calls.append(children)
        return [-sum(x != y for x, y in zip(c, target, strict=True)) for c in children]

    dedup = build("evolution", GRID, 1, population_size=4, sample_size=2)
    s = ChildFilter(dedup, closeness, children=5)
    for g in [s.ask() for _ in range(4)]:
        s.tell(g, score_of(GRID, g))
    told = {GRID.hash(m[1]) for m in s.population}
    calls.clear()
    child = s.ask()
    assert len(calls) == 1 and len({GRID.hash(c) for c in calls[0]}) == 5
    assert not told & {GRID.hash(c) for c in calls[0]}  # none evaluated before
    assert child == max(calls[0], key=lambda c: closeness([c])[0])
    assert dedup.num_pending == 1 and dedup.inner.num_pending == 1  # losers handed back


def test_dedup_around_filter_never_marks_a_loser_seen():
    inner = RegularizedEvolution(GRID, 0, population_size=3, sample_size=2)
    seen_by_scorer = []

    def scorer(children):
        seen_by_scorer.append(children)
        return proxy(GRID)(children)

    s = Deduplicate(ChildFilter(inner, scorer, children=3))
    for _ in range(10):
        s.tell(s.ask(), 0.5)
    child = s.ask()
    losers = [g for g in seen_by_scorer[-1] if g != child]
    assert losers and not any(s.seen(GRID.hash(g)) for g in losers)
    assert inner.num_pending == s.num_pending == 1
    assert inner.num_discarded >= 2 * 11


def test_filtered_losers_drop_their_controller_samples():
    ppo = PPO(GRID, 0, batch_size=4)
    s = Deduplicate(ChildFilter(ppo, proxy(GRID), children=3))
    asked = [s.ask() for _ in range(3)]
    assert sorted(ppo._trajectories) == sorted(GRID.hash(g) for g in asked)
    for g in asked:
        s.tell(g, score_of(GRID, g))
    assert ppo._trajectories == {} and len(ppo._batch) == 3


# -- exact resumes through both wrappers ---------------------------------------------------------
STACKS = {
    "dedup": lambda name, space, seed: make(name, space, seed),
    "dedup(filter)": lambda name, space, seed: Deduplicate(
        ChildFilter(make(name, space, seed, dedup=False), proxy(space), children=3)
    ),
    "filter(dedup)": lambda name, space, seed: ChildFilter(
        make(name, space, seed), proxy(space), children=3
    ),
}


@pytest.mark.parametrize("name", ALL)
@pytest.mark.parametrize("stack", STACKS)
def test_resume_from_a_torch_saved_state_continues_exactly(name, stack):
    space = NASNET
    first = STACKS[stack](name, space, 11)
    in_flight = [first.ask() for _ in range(3)]
    for k in range(23):
        g = in_flight.pop(0)
        first.tell(g, None if k % 9 == 4 else score_of(space, g))
        in_flight.append(first.ask())
    state = torch_round_trip(first.state_dict())
    second = STACKS[stack](name, space, 999)  # the seeds come from the state
    second.load_state_dict(state)

    def continue_(s, queue):
        queue, out = list(queue), []
        for _ in range(30):
            g = queue.pop(0)
            s.tell(g, score_of(space, g))
            new = s.ask()
            out.append(space.hash(new))
            queue.append(new)
        return out

    assert continue_(first, in_flight) == continue_(second, in_flight)
    assert first.num_pending == second.num_pending == 3
