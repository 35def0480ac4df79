"""Successive halving across candidates (issue 14, item 3): rungs, promotions, synchronous
brackets and ASHA, fidelity in the history, resume continues the rungs, fewer training steps
than full-fidelity random search on a synthetic objective."""

from __future__ import annotations

import sys
from pathlib import Path

import numpy as np
import pytest

from nascli.config import ConfigError
from nascli.engine.executors import LocalExecutor
from nascli.engine.rundir import RunDir
from nascli.engine.schedule import Halving, Scheduler
from nascli.engine.search import Budget, Search
from nascli.spaces import NASNetSpace
from nascli.strategies import build
from nascli.strategies.synthetic import AdditiveOps, MultiFidelity

SPACE = NASNetSpace()


def test_rungs_are_eta_apart_and_bad_settings_are_one_line():
    assert Halving().steps(12) == [12, 36, 108]  # the usual score first, then more training
    assert Halving(min_steps=4, rungs=4).steps(12) == [4, 12, 36, 108]
    assert Halving(max_steps=31).steps(12) == [3, 10, 31]
    assert Halving(eta=2, rungs=4, max_steps=72).steps(0) == [9, 18, 36, 72]
    assert Halving(min_steps=8, max_steps=72).steps(0) == [8, 24, 72]
    with pytest.raises(ConfigError, match="no room for 5 rungs 3x apart"):
        Halving(rungs=5, max_steps=31).steps(0)
    with pytest.raises(ConfigError, match=r"schedule.eta=1 is invalid; expected an integer >= 2"):
        Halving(eta=1)
    with pytest.raises(ConfigError, match=r"schedule.mode='fast' is invalid"):
        Halving(mode="fast")


def _search(tmp_path, budget, asynchronous=False, max_steps=27, seed=0, estimator=None):
    f = AdditiveOps(SPACE, seed=seed)
    estimator = estimator or MultiFidelity(f, max_steps=max_steps)
    schedule = Scheduler(Halving(max_steps=max_steps).steps(0), 3, asynchronous)
    search = Search(SPACE, build("random", SPACE, seed), LocalExecutor.wrap(estimator),
                    Budget(budget), run_dir=RunDir(tmp_path), seed=seed, schedule=schedule)
    return search, estimator, f


def test_a_synchronous_bracket_promotes_the_best_third_to_each_rung(tmp_path):
    search, estimator, _ = _search(tmp_path, budget=13 + 9)
    rows = search.run().history
    rungs = [r["fidelity"]["rung"] for r in rows]
    assert rungs == [0] * 9 + [1] * 3 + [2] + [0] * 9  # then the next bracket
    assert [r["fidelity"]["steps"] for r in rows[8:13]] == [3, 9, 9, 9, 27]
    first = rows[:9]
    top3 = sorted(first, key=lambda r: (-r["score"], r["id"]))[:3]
    assert [r["fidelity"]["parent"] for r in rows[9:12]] == [r["id"] for r in top3]
    assert {r["hash"] for r in rows[9:12]} == {r["hash"] for r in top3}
    best_rung1 = max(rows[9:12], key=lambda r: (r["score"], -r["id"]))
    assert rows[12]["fidelity"]["parent"] == best_rung1["id"]
    assert all(r["fidelity"]["bracket"] == 1 for r in rows[13:])
    assert estimator.steps_trained == 18 * 3 + 3 * 9 + 27
    # the best is the best of the top rung reached, not a lucky cheap score
    assert search.best()["fidelity"]["rung"] == 2


def test_asha_promotes_without_waiting_for_a_rung(tmp_path):
    search, _, _ = _search(tmp_path, budget=30, asynchronous=True)
    rows = search.run().history
    by_id = {r["id"]: r for r in rows}
    first_promotion = next(r for r in rows if r["fidelity"]["rung"] == 1)
    assert first_promotion["id"] == 3  # after 3 finished at rung 0: the top 1/3 goes up
    for r in rows:
        f = r["fidelity"]
        if f["rung"] == 0:
            continue
        parent = by_id[f["parent"]]
        assert parent["hash"] == r["hash"] and parent["fidelity"]["rung"] == f["rung"] - 1
        # when promoted, the parent was in the top third of its rung so far
        peers = [p for p in rows if p["id"] < r["id"] and p["fidelity"]["rung"] == f["rung"] - 1]
        ranked = sorted(peers, key=lambda p: (-p["score"], p["id"]))
        assert parent in ranked[: len(peers) // 3]
    assert len({(r["hash"], r["fidelity"]["rung"]) for r in rows}) == len(rows)  # no repeats


@pytest.mark.parametrize("asynchronous", [False, True])
def test_a_resumed_search_continues_the_rungs(tmp_path, asynchronous):
    whole, _, _ = _search(tmp_path / "whole", budget=20, asynchronous=asynchronous)
    expected = [(r["hash"], r["fidelity"], r["score"]) for r in whole.run().history]

    class Interrupting(MultiFidelity):
        def __call__(self, genotype, seed=None, steps=None):
            if seed == 11:  # an evaluation of the second rung is cut off
                raise KeyboardInterrupt
            return super().__call__(genotype, seed, steps)

    f = AdditiveOps(SPACE, seed=0)
    cut, _, _ = _search(tmp_path / "cut", budget=20, asynchronous=asynchronous,
                        estimator=Interrupting(f, max_steps=27))
    with pytest.raises(KeyboardInterrupt):
        cut.run()
    resumed, _, _ = _search(tmp_path / "cut", budget=20, asynchronous=asynchronous)
    resumed.resume()
    assert resumed.redo and resumed.fidelity[11]["rung"] == (1 if not asynchronous else
                                                            expected[11][1]["rung"])
    got = [(r["hash"], r["fidelity"], r["score"]) for r in resumed.run().history]
    assert got == expected


def test_halving_reaches_the_target_with_fewer_training_steps_than_random_search():
    """The benchmark's measurement on a few seeds: steps until a candidate whose true score
    reaches the target has been trained at full fidelity."""
    sys.path.insert(0, str(Path(__file__).parents[2] / "benchmarks"))
    from bench_halving import steps_to_target

    halving = [steps_to_target("halving", seed) for seed in range(8)]
    asha = [steps_to_target("asha", seed) for seed in range(8)]
    full = [steps_to_target("random", seed) for seed in range(8)]
    assert np.mean(halving) < 0.7 * np.mean(full), (halving, full)
    assert np.mean(asha) < 0.7 * np.mean(full), (asha, full)
