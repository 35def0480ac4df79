"""Asked sequences that must not change: a default random search's hashes (and so its scores)
stay those of earlier releases."""

from __future__ import annotations

from strategy_helpers import drive, make

from nascli.spaces import NASNetSpace
from nascli.strategies import build

NASNET = NASNetSpace()

#: the first 30 hashes ``RandomSearch(NASNetSpace(), 0)`` asked before deduplication moved into
#: the ``Deduplicate`` wrapper (recorded from that code)
RANDOM_SEED0_NASNET = [
    "2b0259561f683a55",
    "36287eeea026c83d",
    "15f709264854f5ba",
    "6bafa63e9cdb8a23",
    "aab9f7f91cb84694",
    "14fb2aec7c35462f",
    "d11eb351b76aa2be",
    "2e1be557efaeedbd",
    "582a481f8011d136",
    "dc3f0b320b484a34",
    "5b935b79e6052968",
    "66b0dc24594c45e2",
    "740351847e450460",
    "eb213ae9dfeea872",
    "e379b44f450495b3",
    "58fc1e810c6d43fe",
    "6cd8bde0f5f32ddf",
    "a6ceacdacdbe2dc2",
    "235c7a04c9a89fdd",
    "e9863e6383f619b7",
    "8e62419e4beb72b5",
    "e09948a40144440b",
    "5f5bd2ab9ff3703e",
    "ecf185c9753346ae",
    "44a53ec4daae936c",
    "79e8860d96c81f9b",
    "8cd2027aeed8499f",
    "8676fdd892cc857e",
    "2300580efb8d4225",
    "0026bc82077dcedb",
]


def test_random_asks_the_recorded_sequence_with_tells_in_between():
    assert drive(build("random", NASNET, 0), 30) == RANDOM_SEED0_NASNET


def test_random_asks_the_recorded_sequence_when_asks_run_ahead():
    s = build("random", NASNET, 0)
    assert [NASNET.hash(s.ask()) for _ in range(30)] == RANDOM_SEED0_NASNET


def test_other_strategies_are_reproducible_with_a_synthetic_score():
    for name in ("evolution", "ppo", "reinforce"):
        a = drive(make(name, NASNET, 0), 30, ahead=3, fail_every=7)
        assert a == drive(make(name, NASNET, 0), 30, ahead=3, fail_every=7)
        assert len(set(a)) == 30
