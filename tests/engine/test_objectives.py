"""Constraints, the MnasNet reward, Pareto fronts and Pareto evolution (issue 14, items 1-2)."""

from __future__ import annotations

import itertools
import json

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from nascli.config import ConfigError
from nascli.engine.constraints import Constraints, CostMeter, CostNetwork
from nascli.engine.executors import LocalExecutor
from nascli.engine.objective import Objective, pareto_rows
from nascli.engine.rundir import RunDir
from nascli.engine.search import Budget, Search
from nascli.estimators.base import Estimate
from nascli.models import build_network, count_macs, count_parameters
from nascli.pareto import crowding_distances, dominates, nondominated_ranks, pareto_front
from nascli.spaces import NASNetSpace
from nascli.strategies import build
from nascli.strategies.synthetic import AdditiveOps

SPACE = NASNetSpace(blocks=2, cells_per_stage=1, channels=4)


class Data:
    """What a CostMeter reads of a dataset."""

    num_classes, in_channels, image_size = 10, 1, (16, 16)


class Quality:
    """A cheap estimator: AdditiveOps' quality of the cell, no training."""

    name = "quality"

    def __init__(self, space):
        self.f = AdditiveOps(space, seed=0, noise=0.0)
        self.calls = 0

    def __call__(self, genotype, seed=None):
        self.calls += 1
        return Estimate(score=self.f.true_score(genotype), params=1, macs=1)


def _search(tmp_path, budget, constraints=None, objective=None, strategy="random", **kw):
    estimator = Quality(SPACE)
    meter = CostMeter(SPACE, Data(), network=(constraints or Constraints()).network,
                      latency=(constraints or Constraints()).max_latency_ms is not None)
    search = Search(SPACE, build(strategy, SPACE, 0, **kw), LocalExecutor.wrap(estimator),
                    Budget(budget), run_dir=RunDir(tmp_path), constraints=constraints,
                    costs=meter, objective=objective)
    return search, estimator


def test_a_constrained_search_never_trains_a_candidate_over_a_limit(tmp_path):
    limits = Constraints(max_params=9000, max_macs=250_000)
    search, estimator = _search(tmp_path, 12, constraints=limits)
    rows = search.run().history
    ok = [r for r in rows if r["status"] == "ok"]
    rejected = [r for r in rows if r["status"] == "rejected"]
    assert len(ok) == 12 and rejected  # rejected rows do not use the budget
    assert estimator.calls == 12  # and were never trained
    for r in ok:
        assert r["costs"]["params"] <= 9000 and r["costs"]["macs"] <= 250_000
    for r in rejected:
        assert r["score"] is None and ("max_params" in r["error"] or "max_macs" in r["error"])
        over = r["costs"]["params"] > 9000 or r["costs"]["macs"] > 250_000
        assert over
    summary = search.summary()
    assert summary["evaluations"] == 12 and summary["rejected"] == len(rejected)
    assert [json.loads(x)["status"] for x in (tmp_path / "history.jsonl").read_text().split(
        "\n") if x] == [r["status"] for r in rows]


def test_rejections_count_when_asked_and_a_search_of_only_rejections_stops(tmp_path):
    counted, _ = _search(tmp_path / "a", 12, constraints=Constraints(
        max_params=9000, count_rejected=True))
    rows = counted.run().history
    assert len(rows) == 12 and any(r["status"] == "rejected" for r in rows)
    hopeless, estimator = _search(tmp_path / "b", 5, constraints=Constraints(
        max_params=10, max_rejected_in_a_row=7))
    result = hopeless.run()
    assert len(result.history) == 7 and estimator.calls == 0
    assert "7 candidates in a row were over the limits" in result.stopped_because


def test_limits_apply_to_the_deployed_network_when_its_size_is_named():
    g = SPACE.sample(np.random.default_rng(0))
    search_time = CostMeter(SPACE, Data())(g)
    final = CostMeter(SPACE, Data(), network=CostNetwork(cells_per_stage=2, channels=16,
                                                         image_size=32))(g)
    net = build_network(g, num_classes=10, in_channels=1, cells_per_stage=2, channels=16)
    assert final == {"params": count_parameters(net), "macs": count_macs(net, (1, 32, 32))}
    assert final["params"] > 4 * search_time["params"]
    with_latency = CostMeter(SPACE, Data(), latency=True, repeats=3)(g)
    assert with_latency["latency_ms"] > 0 and with_latency["params"] == search_time["params"]
    with pytest.raises(ConfigError, match=r"constraints.max_params=-1 is invalid"):
        Constraints(max_params=-1)
    with pytest.raises(ConfigError, match=r"constraints.network.stem='big' is invalid"):
        CostNetwork(stem="big")


def test_the_mnas_reward_trades_score_against_the_cost_target():
    soft = Objective(kind="mnas", cost="macs", target=1e6)
    assert soft.reward(0.8, {"macs": 1e6}) == pytest.approx(0.8)
    assert soft.reward(0.8, {"macs": 2e6}) == pytest.approx(0.8 * 2 ** -0.07)
    assert soft.reward(0.8, {"macs": 5e5}) == pytest.approx(0.8 * 0.5 ** -0.07)
    hard = Objective(kind="mnas", cost="params", target=100, alpha=0.0, beta=-1.0)
    assert hard.reward(0.9, {"params": 50}) == pytest.approx(0.9)
    assert hard.reward(0.9, {"params": 300}) == pytest.approx(0.3)
    with pytest.raises(ConfigError, match=r"objective.target=None is invalid"):
        Objective(kind="mnas")
    with pytest.raises(ConfigError, match=r"objective.cost='flops' is invalid"):
        Objective(cost="flops")


def test_an_mnas_search_records_the_reward_and_the_raw_score(tmp_path):
    search, _ = _search(tmp_path, 6, objective=Objective(kind="mnas", cost="params",
                                                         target=8000))
    for r in search.run().history:
        ratio = r["costs"]["params"] / 8000
        assert r["score"] == pytest.approx(r["raw_score"] * ratio ** -0.07)
    assert json.loads((tmp_path / "pareto.json").read_text())["objectives"] == {
        "score": "max", "params": "min"}


points = st.lists(st.tuples(st.integers(0, 20), st.integers(0, 20)), min_size=1, max_size=40)


@settings(max_examples=200, deadline=None)
@given(points)
def test_the_pareto_front_equals_brute_force(pts):
    pts = [(float(c), float(s)) for c, s in pts]
    brute = {i for i, p in enumerate(pts) if not any(dominates(q, p) for q in pts)}
    front = pareto_front(pts)
    # one of each set of equal points is kept
    assert {pts[i] for i in front} == {pts[i] for i in brute}
    assert len(front) == len({pts[i] for i in front})
    assert [pts[i][0] for i in front] == sorted(pts[i][0] for i in front)
    ranks = nondominated_ranks(pts)
    for i, j in itertools.permutations(range(len(pts)), 2):
        if dominates(pts[i], pts[j]):
            assert ranks[i] < ranks[j]
    assert {i for i, r in enumerate(ranks) if r == 0} == brute


@settings(max_examples=100, deadline=None)
@given(st.lists(st.tuples(st.integers(0, 9), st.integers(0, 9), st.booleans()), max_size=30))
def test_pareto_json_rows_equal_brute_force_on_random_histories(rows):
    history = [{"id": i, "hash": f"h{i}", "arch": "", "genotype": {},
                "status": "ok" if ok else "failed", "score": float(s) if ok else None,
                "params": c, "macs": None} for i, (c, s, ok) in enumerate(rows)]
    ok = [r for r in history if r["status"] == "ok"]
    front = pareto_rows(history, "params")
    pts = {(r["params"], r["score"]) for r in ok
           if not any(dominates((q["params"], q["score"]), (r["params"], r["score"]))
                      for q in ok)}
    assert {(r["params"], r["score"]) for r in front} == pts


def test_crowding_gives_the_extremes_infinity():
    d = crowding_distances([(0.0, 0.0), (1.0, 0.5), (3.0, 0.6), (4.0, 1.0)])
    assert d[0] == d[3] == float("inf")
    assert d[1] == pytest.approx(3 / 4 + 0.6 / 1.0) and d[2] == pytest.approx(3 / 4 + 0.5)


def test_pareto_evolution_spreads_along_the_front_and_resumes_exactly(tmp_path):
    search, _ = _search(tmp_path, 40, objective=Objective(kind="pareto", cost="params"),
                        strategy="nsga2", population_size=8, cost="params")
    rows = search.run().history
    doc = json.loads((tmp_path / "pareto.json").read_text())
    expected = pareto_rows(rows, "params")
    assert [m["id"] for m in doc["front"]] == [r["id"] for r in expected]
    assert doc["evaluations"] == 40 and len(doc["front"]) >= 2
    strategy = search.strategy.inner
    assert len(strategy.population) == 8
    costs = sorted(c for *_, c in strategy.population)
    assert costs[0] < costs[-1]  # not all at one end of the front
    twin = build("nsga2", SPACE, 0, dedup=False, population_size=8, cost="params")
    twin.load_state_dict(strategy.state_dict())
    assert twin.population == strategy.population
    assert [SPACE.hash(twin.ask()) for _ in range(5)] == [SPACE.hash(strategy.ask())
                                                          for _ in range(5)]


def test_pareto_evolution_needs_the_cost_in_the_told_metrics():
    from nascli.strategies import StrategyError

    s = build("nsga2", SPACE, 0, dedup=False, cost="latency_ms")
    g = s.ask()
    with pytest.raises(StrategyError, match="lack the cost 'latency_ms'"):
        s.tell(g, 0.5, {"params": 3, "macs": 4})
