"""executor=ray on a local Ray with 2 CPUs: the same results as executor=local, lost actors
replaced, names of node and worker in the history (issue 12, item 1)."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

ray = pytest.importorskip("ray")

from nascli.engine.ray_executor import RayExecutor  # noqa: E402
from nascli.engine.rundir import RunDir  # noqa: E402
from nascli.engine.search import Budget, Search  # noqa: E402
from nascli.errors import UserError  # noqa: E402
from nascli.spaces import NASNetSpace  # noqa: E402
from nascli.strategies import build  # noqa: E402

sys.path.insert(0, str(Path(__file__).parent))
import test_survival  # noqa: E402

SPACE = NASNetSpace(blocks=2)
ENV = {"RAY_AUTH_MODE": "disabled", "RAY_USAGE_STATS_ENABLED": "0"}
TINY_ZC = ["dataset=synthetic", "dataset.num_samples=240", "dataset.image_size=28",
           "dataset.channels=1", "search_space.channels=4", "device=cpu", "progress=off",
           "proxy=synflow", "budget.evaluations=6", "strategy=random", "seed=4"]


@pytest.fixture(scope="module")
def local_ray():
    os.environ.update(ENV)
    ray.init(num_cpus=2, include_dashboard=False, log_to_driver=False,
             configure_logging=False)
    ray.cloudpickle.register_pickle_by_value(test_survival)  # actors cannot import tests/
    yield
    ray.shutdown()


def _scores(root: Path) -> dict[str, float]:
    (history,) = root.rglob("history.jsonl")
    rows = [json.loads(line) for line in history.read_text().splitlines()]
    return {r["hash"]: r["score"] for r in rows}, rows


def test_ray_gives_the_results_of_the_local_executor(tmp_path):
    runs = {}
    for executor in ("local", "ray"):
        root = tmp_path / executor
        root.mkdir()
        extra = ["executor=ray", "executor.num_cpus=1"] if executor == "ray" else []
        proc = subprocess.run([sys.executable, "-m", "nascli", "search", *TINY_ZC, *extra],
                              cwd=root, capture_output=True, text=True, timeout=300,
                              env={**os.environ, **ENV})
        assert proc.returncode == 0, proc.stderr[-2000:]
        runs[executor] = _scores(root)
    (local, _), (remote, rows) = runs["local"], runs["ray"]
    assert set(remote) == set(local) and len(local) == 6
    for h, score in local.items():
        assert remote[h] == pytest.approx(score, rel=1e-9)
    names = {r["worker"] for r in rows}
    assert len(names) == 2  # two actors on 2 CPUs
    assert all("/pid" in n for n in names)  # node id / process


def test_a_lost_actor_is_a_failed_row_and_is_replaced(tmp_path, local_ray):
    factory = test_survival.Factory(tmp_path, crash=[2], once=[3])
    executor = RayExecutor(factory, num_cpus=1, retries=1)
    assert executor.workers == 2
    try:
        result = Search(SPACE, build("random", SPACE, seed=1), executor, Budget(6),
                        run_dir=RunDir(tmp_path / "run"), seed=0).run()
    finally:
        executor.shutdown()
    rows = {r["id"]: r for r in result.history}
    assert sorted(rows) == list(range(6))
    assert rows[2]["status"] == "failed" and "(2 attempts)" in rows[2]["error"]
    assert rows[3]["status"] == "ok"  # the retry on a fresh actor
    assert all(rows[i]["status"] == "ok" for i in (0, 1, 4, 5))
    assert ray.is_initialized()  # a Ray the executor did not start is left running


def test_an_actor_ray_loses_before_it_runs_is_started_again(tmp_path, local_ray):
    from nascli.engine.supervisor import WorkerStartError

    executor = RayExecutor(test_survival.Factory(tmp_path), num_cpus=1)
    try:
        first = executor._handles[0]
        lost = ray.exceptions.ActorDiedError()  # a system loss, not the constructor's error
        assert not lost.actor_init_failed
        with executor._lock:
            executor._lost(first, "ready", lost)
            assert not executor._ready(first)  # nothing is handed to it meanwhile
            executor._watch_slot(0)
        assert executor._handles[0] is not first
        estimate, name = executor.submit(None, seed=7).result(timeout=120)
        assert estimate.score == pytest.approx(0.93) and "/pid" in name
        executor._closed.set()  # no supervising thread: no new actor's readiness resets the count
        executor._thread.join()
        for _ in range(executor.start_attempts - 1):  # lost again and again: a one-line stop
            with executor._lock:
                executor._lost(executor._handles[1], "ready", lost)
                executor._watch_slot(1)
        with pytest.raises(WorkerStartError, match="a Ray actor could not start"):
            executor._lost(executor._handles[1], "ready", lost)
    finally:
        executor.shutdown(cancel=True)


def test_an_actor_that_cannot_start_and_bad_resources_are_one_line(local_ray):
    from nascli.engine.supervisor import WorkerStartError

    executor = RayExecutor(test_survival.Broken(), num_cpus=1)
    try:
        with pytest.raises(WorkerStartError, match=r"a Ray actor could not start: .*flowers"):
            for _ in range(200):
                executor.submit(None).result(timeout=60)
    finally:
        executor.shutdown(cancel=True)
    with pytest.raises(UserError, match=r"not enough for one evaluation"):
        RayExecutor(test_survival.Broken(), num_gpus=1)
    with pytest.raises(UserError, match=r"executor.num_cpus=-1 is invalid"):
        RayExecutor(test_survival.Broken(), num_cpus=-1)
