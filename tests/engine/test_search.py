"""The search loop: recording, budgets, failures, resume, parallel workers."""

from __future__ import annotations

import json
import math

import pytest

from nascli.engine.executors import LocalExecutor, PoolExecutor
from nascli.engine.rundir import RunDir, read_history
from nascli.engine.search import Budget, Search
from nascli.estimators.base import Estimate
from nascli.spaces import NASNetSpace
from nascli.strategies import build

SPACE = NASNetSpace(blocks=2)


class CountOps:
    """A deterministic objective: the share of separable convolutions in the genotype."""

    name = "count_ops"

    def __init__(self, fail_on: set[int] = frozenset(), interrupt_on: int | None = None):
        self.calls = 0
        self.fail_on, self.interrupt_on = set(fail_on), interrupt_on

    def __call__(self, g, seed=None):
        self.calls += 1
        if self.interrupt_on is not None and self.calls == self.interrupt_on:
            raise KeyboardInterrupt
        if self.calls in self.fail_on:
            return Estimate.failed("diverged: training loss is nan at step 3", seconds=0.1)
        ops = [o for cell in (g.normal, g.reduce) for b in cell.blocks for o in b.ops]
        score = sum(o.startswith("sep_conv") for o in ops) / len(ops)
        return Estimate(score=score, metrics={"val_acc": score}, params=1000 + self.calls,
                        macs=10_000, seconds=0.01, epochs=1.0)


def _search(tmp_path, strategy="evolution", budget=10, estimator=None, **kw):
    strat = build(strategy, SPACE, seed=3, **({"population_size": 4, "sample_size": 2}
                                              if strategy == "evolution" else {}))
    return Search(SPACE, strat, LocalExecutor.wrap(estimator or CountOps()), Budget(budget),
                  run_dir=RunDir(tmp_path), **kw)


def test_every_evaluation_is_recorded_and_flushed(tmp_path):
    seen = []
    result = _search(tmp_path, budget=12, on_evaluation=lambda row: seen.append(
        len(read_history(tmp_path / "history.jsonl")))).run()
    assert seen == list(range(1, 13))  # on disk before the next evaluation starts
    rows = read_history(tmp_path / "history.jsonl")
    assert [r["id"] for r in rows] == list(range(12))
    assert len({r["hash"] for r in rows}) == 12
    assert result.best == max(rows, key=lambda r: r["score"])
    best = json.loads((tmp_path / "best.json").read_text())
    assert best["hash"] == result.best["hash"] and best["meta"]["score"] == result.best["score"]
    assert result.stopped_because == "evaluation budget reached"


def test_failed_evaluations_are_recorded_and_the_search_goes_on(tmp_path):
    result = _search(tmp_path, budget=6, estimator=CountOps(fail_on={2, 4})).run()
    rows = result.history
    assert [r["status"] for r in rows] == ["ok", "failed", "ok", "failed", "ok", "ok"]
    assert rows[1]["score"] is None and rows[1]["error"].startswith("diverged")


def test_an_estimator_crash_is_a_failed_evaluation(tmp_path):
    class Crashes(CountOps):
        def __call__(self, g, seed=None):
            if self.calls == 1:
                self.calls += 1
                raise RuntimeError("CUDA error: an illegal memory access")
            return super().__call__(g)

    rows = _search(tmp_path, budget=3, estimator=Crashes()).run().history
    assert rows[1]["status"] == "failed" and "illegal memory access" in rows[1]["error"]
    assert rows[2]["status"] == "ok"


def test_time_budget(tmp_path):
    strat = build("random", SPACE, seed=0)
    result = Search(SPACE, strat, LocalExecutor.wrap(CountOps()), Budget(seconds=0.3),
                    run_dir=RunDir(tmp_path)).run()
    assert result.stopped_because == "time budget reached" and len(result.history) > 3


@pytest.mark.parametrize("strategy", ["random", "evolution", "ppo"])
def test_resume_after_a_kill_continues_exactly(tmp_path, strategy):
    straight = _search(tmp_path / "a", strategy=strategy, budget=12).run()
    # killed during the 8th evaluation: 7 finished, one pending
    with pytest.raises(KeyboardInterrupt):
        _search(tmp_path / "b", strategy=strategy, budget=12,
                estimator=CountOps(interrupt_on=8)).run()
    assert len(read_history(tmp_path / "b" / "history.jsonl")) == 7
    resumed = _search(tmp_path / "b", strategy=strategy, budget=12)
    assert resumed.resume() == 7 and len(resumed.redo) == 1  # the unfinished one runs again
    result = resumed.run()
    assert [r["id"] for r in result.history] == list(range(12))
    assert [r["hash"] for r in result.history] == [r["hash"] for r in straight.history]


def test_a_torn_history_line_is_ignored(tmp_path):
    _search(tmp_path, budget=3).run()
    with open(tmp_path / "history.jsonl", "a") as f:
        f.write('{"id": 3, "hash": "ab')
    assert len(read_history(tmp_path / "history.jsonl")) == 3


def test_queued_genotypes_run_first(tmp_path):
    first = [SPACE.sample(100 + i) for i in range(3)]
    result = _search(tmp_path, strategy="random", budget=5, queue=first).run()
    assert [r["hash"] for r in result.history[:3]] == [SPACE.hash(g) for g in first]


class _Factory:
    def __call__(self):
        return CountOps()


def test_pool_executor_runs_candidates_in_worker_processes(tmp_path):
    strat = build("random", SPACE, seed=1)
    executor = PoolExecutor(_Factory(), workers=2)
    try:
        result = Search(SPACE, strat, executor, Budget(8), run_dir=RunDir(tmp_path)).run()
    finally:
        executor.shutdown()
    rows = result.history
    assert len(rows) == 8 and sorted(r["id"] for r in rows) == list(range(8))
    assert all(r["worker"].startswith("pid") for r in rows)
    assert all(math.isfinite(r["score"]) for r in rows)


def test_a_used_run_directory_is_not_overwritten(tmp_path):
    _search(tmp_path, budget=2).run()
    with pytest.raises(ValueError, match="already holds evaluations"):
        _search(tmp_path, budget=2).run()
    assert len(read_history(tmp_path / "history.jsonl")) == 2
