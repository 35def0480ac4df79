"""The ask/tell contract every built strategy keeps: registry, options, user spaces, parallel
asks, tells in any order, failures, duplicates, seeding and exact resumes from state dicts."""

from __future__ import annotations

import json
import math
from pathlib import Path

import numpy as np
import pytest
import yaml
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

from nascli.registry import UnknownNameError
from nascli.spaces import NASNetSpace
from nascli.strategies import (
    STRATEGIES,
    Deduplicate,
    SearchExhausted,
    Strategy,
    StrategyError,
    build,
    option_parameters,
    register_strategy,
)
from nascli.strategies.synthetic import GridSpace

LOOKUP = LookupSpace()
NASNET = NASNetSpace()
GRID = GridSpace([4] * 12)
CONFIGS = Path(__file__).resolve().parents[2] / "configs"


# -- registry ----------------------------------------------------------------------------------
def test_registry_lists_the_built_in_strategies():
    assert set(ALL) <= set(STRATEGIES)
    for name in ALL:
        assert build(name, GRID, 0).name == name


def test_registry_is_the_shared_registry_type():
    assert STRATEGIES.kind == "strategy"
    assert STRATEGIES.names() == sorted(STRATEGIES)


def test_unknown_strategy_lists_valid_names():
    with pytest.raises(UnknownNameError, match=r"unknown strategy 'evolutoin'.*evolution.*ppo"):
        build("evolutoin", GRID, 0)
    with pytest.raises(ValueError):  # UnknownNameError is a ValueError (and a KeyError)
        build("evolutoin", GRID, 0)


@pytest.mark.parametrize("name", ALL)
def test_unknown_option_names_it_and_the_valid_ones(name):
    with pytest.raises(StrategyError, match=r"unknown option\(s\) populaton_size; valid: .*max_r"):
        build(name, GRID, 0, populaton_size=10)


def test_unknown_option_message_lists_the_constructor_options():
    with pytest.raises(StrategyError) as info:
        build("evolution", GRID, 0, populaton_size=10)
    message = str(info.value)
    assert "\n" not in message
    assert "valid: identity_prob, population_size, sample_size " in message


@pytest.mark.parametrize(
    ("name", "options", "message"),
    [
        ("evolution", {"population_size": 1},
         "evolution: population_size=1 is invalid; expected an integer >= 2"),
        ("evolution", {"population_size": 2.5}, "population_size=2.5 is invalid"),
        ("evolution", {"sample_size": 0}, "sample_size=0 is invalid; expected an integer in 1.."),
        ("evolution", {"sample_size": 9}, "sample_size=9 is invalid"),  # more than P = 8
        ("evolution", {"identity_prob": 1.0}, "identity_prob=1.0 is invalid; expected a prob"),
        ("ppo", {"clip": 0.0}, "ppo: clip=0.0 is invalid; expected a number in \\(0, 1\\)"),
        ("ppo", {"epochs": 0}, "ppo: epochs=0 is invalid"),
        ("ppo", {"batch_size": 0}, "ppo: batch_size=0 is invalid; expected an integer >= 1"),
        ("ppo", {"hidden_size": 0}, "hidden_size=0 is invalid"),
        ("ppo", {"entropy_weight": -1}, "entropy_weight=-1 is invalid"),
        ("ppo", {"temperature": 0.0}, "temperature=0.0 is invalid"),
        ("ppo", {"tanh_constant": -1.0}, "tanh_constant=-1.0 is invalid"),
        ("ppo", {"num_threads": 0}, "num_threads=0 is invalid"),
        ("reinforce", {"baseline_decay": 1.0}, "reinforce: baseline_decay=1.0 is invalid"),
        ("reinforce", {"lr": -1.0}, "reinforce: lr=-1.0 is invalid; expected a positive number"),
        ("reinforce", {"lr": "fast"}, "lr='fast' is invalid"),
        ("random", {"max_retries": 0}, "random: max_retries=0 is invalid; expected an integer"),
    ],
)
def test_bad_options_fail_with_the_option_value_and_what_is_valid(name, options, message):
    with pytest.raises(StrategyError, match=message):
        build(name, GRID, 0, **options)


def test_max_retries_belongs_to_the_deduplicate_wrapper():
    with pytest.raises(StrategyError, match="needs dedup=True"):
        build("random", GRID, 0, dedup=False, max_retries=5)
    assert build("random", GRID, 0, max_retries=5).max_retries == 5


@pytest.mark.parametrize("name", ALL)
def test_options_are_annotated_keyword_only_constructor_parameters(name):
    plain = {"int", "float", "bool", "str", "int | None", "float | None", "str | None"}
    params = option_parameters(STRATEGIES[name])
    for p in params.values():
        assert p.annotation in plain, (name, p.name, p.annotation)
        assert p.default is not p.empty
    s = build(name, GRID, 0, dedup=False)
    assert set(s.options()) == set(params)


@pytest.mark.parametrize("name", ALL)
def test_constructor_defaults_are_the_shipped_configs(name):
    # one fact, one place: the class holds the measured defaults the configs ship; a config
    # value that is null means "unset", i.e. the constructor's default
    config = yaml.safe_load((CONFIGS / "strategy" / f"{name}.yaml").read_text())
    params = option_parameters(STRATEGIES[name])
    shared = {k: v for k, v in config.items() if k in params and v is not None}
    for key, value in shared.items():
        assert params[key].default == value, (name, key)
    if name != "random":
        assert shared  # the comparison is not vacuous


def test_evolution_defaults_are_the_measured_ones():
    s = build("evolution", GRID, 0)
    assert (s.population_size, s.sample_size, s.identity_prob) == (8, 3, 0.0)


def test_the_paper_presets_hold_the_papers_values():
    experiments = CONFIGS / "experiment"
    evolution = yaml.safe_load((experiments / "nasnet_evolution_paper.yaml").read_text())
    assert (evolution["strategy"]["population_size"], evolution["strategy"]["sample_size"]) == (
        100,
        25,
    )  # Real et al. 2019
    ppo = yaml.safe_load((experiments / "nasnet_ppo_paper.yaml").read_text())
    assert {"override /strategy": "ppo"} in ppo["defaults"]
    # Zoph et al. 2018 (the defaults are measured: tests/strategies/test_controller_defaults.py)
    assert {k: ppo["strategy"][k] for k in ("hidden_size", "lr", "batch_size", "entropy_weight",
                                            "baseline_decay", "clip", "epochs")} == {
        "hidden_size": 100, "lr": 0.00035, "batch_size": 20, "entropy_weight": 1e-5,
        "baseline_decay": 0.95, "clip": 0.2, "epochs": 4}
    reinforce = yaml.safe_load((experiments / "nas_reinforce_paper.yaml").read_text())
    assert reinforce["strategy"]["lr"] == 0.0006  # Zoph and Le 2017


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
        assert s.ask() != (1, 16, "relu", 3)  # the wrapper falls back to an unseen one
        assert s.num_returned == s.max_retries == 100
        assert build("first_choice", LOOKUP, 0, dedup=False).ask() == (1, 16, "relu", 3)
    finally:
        STRATEGIES.unregister("first_choice")
    assert "first_choice" not in STRATEGIES


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
    s = build("random", LOOKUP, seed=0)
    asked = {LOOKUP.hash(s.ask()) for _ in range(LOOKUP.size())}
    assert len(asked) == 54
    with pytest.raises(SearchExhausted, match="all 54 distinct architectures"):
        s.ask()


def test_random_respects_the_canonical_hash():
    space = NASNetSpace(ops=("identity", "sep_conv_3x3"), blocks=1)
    s = build("random", space, seed=0, max_retries=5)
    asked = []
    with pytest.raises(SearchExhausted):
        while True:
            asked.append(space.hash(s.ask()))
    assert len(asked) == len(set(asked))
    assert len(asked) < space.size()  # operand order does not make a new cell


@pytest.mark.parametrize("name", ALL)
def test_without_dedup_a_strategy_may_repeat(name):
    s = make(name, LOOKUP, seed=0, dedup=False)
    assert not isinstance(s, Deduplicate)
    asked = []
    for _ in range(100):
        g = s.ask()
        asked.append(LOOKUP.hash(g))
        s.tell(g, score_of(LOOKUP, g))
    assert len(set(asked)) < 100  # 54 architectures


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
    bare = make("random", GRID, dedup=False)
    with pytest.raises(StrategyError, match=r"not a deduplicate wrapper.*dedup=False"):
        make("random", GRID).load_state_dict(bare.state_dict())
    with pytest.raises(StrategyError, match="a deduplicate wrapper, not strategy 'random'"):
        bare.load_state_dict(state)


def test_an_old_state_version_is_refused_with_the_version():
    state = make("evolution", GRID).state_dict()
    state["inner"]["version"] = 1
    with pytest.raises(StrategyError, match=r"version 1 .*reads version 2"):
        make("evolution", GRID).load_state_dict(state)


def test_small_options_are_the_test_defaults():
    assert set(SMALL) == set(ALL)


# -- any interleaving of asks, tells and discards ----------------------------------------------
@settings(max_examples=25, deadline=None)
@given(
    name=st.sampled_from(["random", "evolution"]),
    ops=st.lists(
        st.tuples(
            st.sampled_from(["ask", "ask", "tell", "discard"]),
            st.integers(0, 50),
            st.sampled_from([0.3, 0.9, None]),
        )
    ),
)
def test_any_interleaving_keeps_the_books(name, ops):
    s = make(name, GRID, seed=0)
    in_flight, told, asked = [], set(), []
    for op, pick, score in ops:
        if op == "ask" or not in_flight:
            g = s.ask()
            h = GRID.hash(g)
            assert h not in told and h not in {GRID.hash(x) for x in in_flight}
            asked.append(h)
            in_flight.append(g)
        elif op == "tell":
            g = in_flight.pop(pick % len(in_flight))
            s.tell(g, score)
            told.add(GRID.hash(g))
        else:  # a discarded ask is forgotten: it may be asked again later
            s.discard(in_flight.pop(pick % len(in_flight)))
        assert s.num_pending == s.inner.num_pending == len(in_flight)
        assert s.num_told == len(told)  # never a told architecture again
        assert all(s.seen(h) for h in told)
    if name == "evolution":
        assert len(s.population) <= SMALL["evolution"]["population_size"]
        assert all(m[2] is not None for m in s.population)
