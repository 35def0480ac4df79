"""Searches that survive their workers: a killed worker, a hung evaluation, retries, a worker
that cannot start, in-process timeouts (issue 12, item 4)."""

from __future__ import annotations

import os
import signal
import time
from pathlib import Path

import pytest

from nascli.engine.executors import LocalExecutor, PoolExecutor
from nascli.engine.rundir import RunDir
from nascli.engine.search import Budget, Search
from nascli.engine.supervisor import WorkerStartError
from nascli.errors import UserError
from nascli.estimators.base import Estimate
from nascli.spaces import NASNetSpace
from nascli.strategies import build

SPACE = NASNetSpace(blocks=2)


class Troubled:
    """Scores 1 - seed / 100, except: ``crash`` seeds kill their worker every time, ``once``
    seeds kill it on the first attempt only (a marker file remembers), ``hang`` seeds sleep."""

    name = "troubled"

    def __init__(self, marker: Path, crash=(), once=(), hang=()):
        self.marker, self.crash, self.once, self.hang = marker, set(crash), set(once), set(hang)

    def __call__(self, genotype, seed=None):
        if seed in self.crash:
            os.kill(os.getpid(), signal.SIGKILL)
        if seed in self.once and not (self.marker / str(seed)).exists():
            (self.marker / str(seed)).touch()
            os.kill(os.getpid(), signal.SIGKILL)
        if seed in self.hang:
            time.sleep(120)
        return Estimate(score=1 - seed / 100, params=1, macs=1, seconds=0.01)


class Factory:
    """Picklable: each worker builds its own :class:`Troubled`."""

    def __init__(self, marker: Path, **kinds):
        self.marker, self.kinds = marker, kinds

    def __call__(self):
        return Troubled(self.marker, **self.kinds)


class Broken:
    """A factory whose estimator cannot be built (a missing dataset, say)."""

    def __call__(self):
        raise ValueError("dataset 'flowers' not found in /data")


def _run(tmp_path, executor, budget=8):
    try:
        return Search(SPACE, build("random", SPACE, seed=1), executor, Budget(budget),
                      run_dir=RunDir(tmp_path / "run"), seed=0).run()
    finally:
        executor.shutdown()


def test_killed_hung_and_retried_workers_leave_one_row_each_and_the_budget_is_reached(
        tmp_path):
    # seed i is evaluation i: 2 kills its worker every time, 3 only once, 5 hangs
    executor = PoolExecutor(Factory(tmp_path, crash=[2], once=[3], hang=[5]), workers=2,
                            threads=1, timeout_s=3, retries=1)
    result = _run(tmp_path, executor)
    rows = {r["id"]: r for r in result.history}
    assert sorted(rows) == list(range(8))  # the budget is reached, one row per evaluation
    assert rows[2]["status"] == "failed"
    assert "died (SIGKILL) (2 attempts)" in rows[2]["error"]
    assert rows[2]["worker"].startswith("pid")
    assert rows[3]["status"] == "ok" and rows[3]["score"] == pytest.approx(0.97)  # retried
    assert rows[5]["status"] == "failed" and rows[5]["error"] == "timed out after 3 s"
    assert all(rows[i]["status"] == "ok" for i in (0, 1, 4, 6, 7))
    workers = {r["worker"] for r in result.history}
    assert len(workers) >= 3  # replaced workers carry new names


def test_a_worker_that_cannot_start_stops_the_search_with_one_line(tmp_path):
    executor = PoolExecutor(Broken(), workers=2, threads=1)
    with pytest.raises(WorkerStartError) as info:
        _run(tmp_path, executor)
    message = str(info.value)
    assert message == "executor: a worker could not start: ValueError: dataset 'flowers' not " \
                      "found in /data"
    assert isinstance(info.value, UserError)


def test_an_in_process_evaluation_past_its_timeout_is_a_failed_row(tmp_path):
    class Slow:
        name = "slow"

        def __call__(self, genotype, seed=None):
            if seed == 1:
                time.sleep(30)
            return Estimate(score=0.5, seconds=0.0)

    executor = LocalExecutor(lambda: Slow(), timeout_s=0.5)
    t0 = time.monotonic()
    result = _run(tmp_path, executor, budget=3)
    assert time.monotonic() - t0 < 10
    rows = {r["id"]: r for r in result.history}
    assert rows[1]["status"] == "failed" and rows[1]["error"] == "timed out after 0.5 s"
    assert rows[0]["status"] == rows[2]["status"] == "ok"


@pytest.mark.parametrize(("options", "message"), [
    ({"timeout_s": 0}, "executor.timeout_s=0 is invalid; expected seconds > 0 or null"),
    ({"retries": -1}, "executor.retries=-1 is invalid; expected an integer >= 0"),
    ({"workers": 0}, "executor.workers=0 is invalid; expected an integer >= 1"),
])
def test_bad_survival_options_are_one_line(options, message):
    with pytest.raises(UserError) as info:
        PoolExecutor(Broken(), **options)
    assert str(info.value).startswith(message)
