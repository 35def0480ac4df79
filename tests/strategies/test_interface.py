"""The ask/tell contract every strategy keeps: registry, user spaces, parallel asks, tells in
any order, failures, duplicates, seeding and exact resumes from state dicts."""

from __future__ import annotations

import json
import math

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from strategy_helpers import (
    ALL,
    SMALL,
    LookupSpace,
    drive,
    lookup_table,
    make,
    score_of,
    torch_round_trip,
)

from nascli.spaces import NASNetSpace
from nascli.strategies import (
    STRATEGIES,
    RandomSearch,
    SearchExhausted,
    Strategy,
    StrategyError,
    build,
    register_strategy,
)
from nascli.strategies.synthetic import GridSpace

LOOKUP = LookupSpace()
NASNET = NASNetSpace()
GRID = GridSpace([4] * 12)


# -- registry ----------------------------------------------------------------------------------
def test_registry_lists_the_built_in_strategies():
    assert set(ALL) <= set(STRATEGIES)
    for name in ALL:
        assert build(name, GRID, 0).name == name


def test_unknown_strategy_lists_valid_names():
    with pytest.raises(StrategyError, match=r"unknown strategy 'evolutoin'.*evolution.*ppo"):
        build("evolutoin", GRID, 0)


@pytest.mark.parametrize("name", ALL)
def test_unknown_option_names_it_and_the_valid_ones(name):
    with pytest.raises(StrategyError, match=r"unknown option\(s\) populaton_size; valid: .*max_r"):
        build(name, GRID, 0, populaton_size=10)


@pytest.mark.parametrize(
    ("name", "options"),
    [
        ("evolution", {"population_size": 0}),
        ("evolution", {"sample_size": 0}),
        ("evolution", {"identity_prob": 1.5}),
        ("evolution", {"children_per_step": 3}),  # needs score_children
        ("ppo", {"clip": 0.0}),
        ("ppo", {"epochs": 0}),
        ("ppo", {"batch_size": 0}),
        ("reinforce", {"baseline_decay": 1.0}),
        ("reinforce", {"lr": -1.0}),
        ("random", {"max_retries": 0}),
    ],
)
def test_bad_options_fail_with_the_option_name(name, options):
    with pytest.raises(StrategyError, match=next(iter(options))):
        build(name, GRID, 0, **options)


def test_a_user_strategy_registers_and_builds():
    @register_strategy("first_choice")
    class FirstChoice(Strategy):
        name = "first_choice"

        def _propose(self):
            g = self.space.decode([0] * len(self.space.decisions))
            return g, self.space.hash(g)

    try:
        s = build("first_choice", LOOKUP, 0)
        assert s.ask() == (1, 16, "relu", 3)
    finally:
        del STRATEGIES["first_choice"]


# -- any space ---------------------------------------------------------------------------------
@pytest.mark.parametrize("name", ALL)
def test_every_strategy_searches_a_user_lookup_table_space(name):
    table = lookup_table(LOOKUP)
    s = make(name, LOOKUP, seed=1)
    seen = []
    for _ in range(30):
        g = s.ask()
        assert g in table  # a plain tuple of choice values
        seen.append(LOOKUP.hash(g))
        s.tell(g, table[g])
    assert len(set(seen)) == 30  # never re-asked
    best_g, best_score = s.best
    assert best_score == max(table[g] for g in table if LOOKUP.hash(g) in seen)
    assert table[best_g] == best_score


@pytest.mark.parametrize("name", ALL)
def test_every_strategy_searches_the_nasnet_space(name):
    s = make(name, NASNET, seed=2)
    asked = drive(s, 25)
    assert len(set(asked)) == 25
    assert s.num_told == 25 and s.num_pending == 0


# -- parallel asks, order of tells, failures ---------------------------------------------------
@pytest.mark.parametrize("name", ALL)
def test_many_asks_before_any_tell_are_distinct(name):
    s = make(name, GRID, seed=3)
    gs = [s.ask() for _ in range(40)]
    assert len({GRID.hash(g) for g in gs}) == 40
    assert s.num_pending == 40
    for g in gs:
        s.tell(g, score_of(GRID, g))
    assert s.num_pending == 0
    assert len({GRID.hash(s.ask()) for _ in range(10)} & {GRID.hash(g) for g in gs}) == 0


@pytest.mark.parametrize("name", ALL)
def test_tells_in_any_order(name):
    s = make(name, GRID, seed=4)
    rng = np.random.default_rng(0)
    all_hashes = set()
    for _ in range(4):
        gs = [s.ask() for _ in range(12)]
        all_hashes |= {GRID.hash(g) for g in gs}
        for i in rng.permutation(len(gs)):
            s.tell(gs[i], score_of(GRID, gs[i]))
    assert len(all_hashes) == 48
    assert s.num_told == 48 and s.num_pending == 0


@pytest.mark.parametrize("name", ALL)
@pytest.mark.parametrize("failure", [None, math.nan, math.inf])
def test_failed_tells_are_recorded_not_skipped(name, failure):
    s = make(name, GRID, seed=5)
    g = s.ask()
    s.tell(g, failure)
    assert s.num_failed == 1 and s.num_told == 1 and s.best is None
    gs = [s.ask() for _ in range(30)]
    assert GRID.hash(g) not in {GRID.hash(x) for x in gs}  # a failure is not retried
    for x in gs:
        s.tell(x, score_of(GRID, x))
    assert s.best is not None and s.num_failed == 1


def test_tell_without_ask_is_accepted():
    s = make("evolution", GRID, seed=6)
    g = GRID.sample(123)
    s.tell(g, 0.5, {"source": "earlier run"})
    assert s.num_told == 1 and s.num_pending == 0
    assert all(GRID.hash(s.ask()) != GRID.hash(g) for _ in range(20))


# -- duplicates --------------------------------------------------------------------------------
def test_random_exhausts_a_small_space_then_says_so():
    s = RandomSearch(LOOKUP, seed=0)
    asked = {LOOKUP.hash(s.ask()) for _ in range(LOOKUP.size())}
    assert len(asked) == 54
    with pytest.raises(SearchExhausted, match="all 54 distinct architectures"):
        s.ask()


def test_random_respects_the_canonical_hash():
    space = NASNetSpace(ops=("identity", "sep_conv_3x3"), blocks=1)
    s = RandomSearch(space, seed=0, max_retries=5)
    asked = []
    with pytest.raises(SearchExhausted):
        while True:
            asked.append(space.hash(s.ask()))
    assert len(asked) == len(set(asked))
    assert len(asked) < space.size()  # operand order does not make a new cell


def test_random_with_duplicates_allowed_samples_with_replacement():
    s = RandomSearch(LOOKUP, seed=0, allow_duplicates=True)
    asked = [LOOKUP.hash(s.ask()) for _ in range(200)]
    assert len(set(asked)) < 200


@pytest.mark.parametrize("name", ["evolution", "ppo", "reinforce"])
def test_no_duplicates_until_a_small_space_is_exhausted(name):
    table = lookup_table(LOOKUP, seed=2)
    s = make(name, LOOKUP, seed=0, max_retries=5)  # fewer cached re-proposals near the end
    asked = []
    with pytest.raises(SearchExhausted):
        for _ in range(100):
            g = s.ask()
            asked.append(LOOKUP.hash(g))
            s.tell(g, table[g])
    assert len(asked) == len(set(asked)) == 54


# -- seeding -----------------------------------------------------------------------------------
@pytest.mark.parametrize("name", ALL)
def test_same_seed_and_scores_give_the_same_architectures(name):
    a = drive(make(name, NASNET, seed=7), 40, ahead=3, fail_every=7)
    b = drive(make(name, NASNET, seed=7), 40, ahead=3, fail_every=7)
    c = drive(make(name, NASNET, seed=8), 40, ahead=3, fail_every=7)
    assert a == b
    assert a != c


# -- resume ------------------------------------------------------------------------------------
def _resume_matches(name, space, steps, through, ahead=3):
    """Run ``steps`` tells with asks in flight, snapshot, and compare the continuation of the
    original with that of a fresh strategy loaded from the (serialised) snapshot."""
    first = make(name, space, seed=11)
    in_flight = [first.ask() for _ in range(ahead)]
    for k in range(steps):
        g = in_flight.pop(0)
        first.tell(g, None if k % 9 == 4 else score_of(space, g))
        in_flight.append(first.ask())
    state = through(first.state_dict())
    second = make(name, space, seed=999)  # the seed comes from the state
    second.load_state_dict(state)
    assert second.state_dict().keys() == first.state_dict().keys()

    def continue_(s, queue):
        queue = list(queue)
        out = []
        for _ in range(30):
            g = queue.pop(0)
            s.tell(g, score_of(space, g))
            new = s.ask()
            out.append(space.hash(new))
            queue.append(new)
        return out

    assert continue_(first, in_flight) == continue_(second, in_flight)


@pytest.mark.parametrize("name", ALL)
@pytest.mark.parametrize("steps", [4, 23])
def test_resume_from_a_torch_saved_state_continues_exactly(name, steps):
    _resume_matches(name, NASNET, steps, torch_round_trip)


@pytest.mark.parametrize("name", ["random", "evolution"])
def test_random_and_evolution_states_are_plain_json(name):
    _resume_matches(name, NASNET, 23, lambda s: json.loads(json.dumps(s)))
    _resume_matches(name, LOOKUP, 10, lambda s: json.loads(json.dumps(s)))


@pytest.mark.parametrize("name", ["ppo", "reinforce"])
def test_controller_resume_on_a_user_space(name):
    _resume_matches(name, LOOKUP, 8, torch_round_trip)


def test_state_of_another_strategy_is_refused():
    state = make("random", GRID).state_dict()
    with pytest.raises(StrategyError, match="'random', not 'evolution'"):
        make("evolution", GRID).load_state_dict(state)
    with pytest.raises(StrategyError, match="decisions"):
        make("random", LOOKUP).load_state_dict(state)


def test_small_options_are_the_test_defaults():
    assert set(SMALL) == set(ALL)


# -- any interleaving of asks and tells --------------------------------------------------------
@settings(max_examples=25, deadline=None)
@given(
    name=st.sampled_from(["random", "evolution"]),
    ops=st.lists(st.tuples(st.booleans(), st.integers(0, 50), st.sampled_from([0.3, 0.9, None]))),
)
def test_any_interleaving_keeps_the_books(name, ops):
    s = make(name, GRID, seed=0)
    in_flight, asked = [], []
    for is_ask, pick, score in ops:
        if is_ask or not in_flight:
            g = s.ask()
            asked.append(GRID.hash(g))
            in_flight.append(g)
        else:
            s.tell(in_flight.pop(pick % len(in_flight)), score)
        assert s.num_pending == len(in_flight)
    assert len(asked) == len(set(asked))
    if name == "evolution":
        assert len(s.population) <= SMALL["evolution"]["population_size"]
        assert all(m[2] is not None for m in s.population)
