"""Kill the search at every write point, resume, and compare with an uninterrupted run.

Each run happens in a child process (the real process boundary), and
``NASCLI_FAULT=point@n`` (nascli.engine.faults) SIGKILLs it at the n-th pass through a write
point: before a history row, in the middle of a row (a torn line), after a row, while the
state file is written, while best.json is written. The resumed run must end with exactly the
rows of an uninterrupted one (ids, hashes, scores), no id missing or repeated, no temporary
file left and best.json naming the best row.
"""

from __future__ import annotations

import json
import multiprocessing as mp
import os
import signal
import time
from pathlib import Path

import numpy as np
import pytest

from nascli.engine import faults
from nascli.engine.executors import LocalExecutor, PoolExecutor
from nascli.engine.rundir import RunDir, read_history
from nascli.engine.search import Budget, Search
from nascli.estimators.base import Estimate
from nascli.genotypes import load_genotype
from nascli.spaces import NASNetSpace
from nascli.strategies import ChildFilter, build

SPACE = NASNetSpace(blocks=2)
BUDGET = 8
POINTS = ["history:before", "history:torn", "history:after", "write:state.pt",
          "write:best.json"]
OPTIONS = {"random": {}, "evolution": {"population_size": 3, "sample_size": 2},
           "ppo": {"batch_size": 3, "lr": 0.05},
           "evolution+filter": {"population_size": 3, "sample_size": 2}}


class Noisy:
    """A seed-dependent objective: the share of separable convolutions plus seeded noise, so
    a resume that re-seeds an evaluation differently gives a different score."""

    name = "noisy"

    def __call__(self, g, seed=None):
        ops = [o for cell in (g.normal, g.reduce) for b in cell.blocks for o in b.ops]
        noise = float(np.random.default_rng(seed).random())
        score = sum(o.startswith("sep_conv") for o in ops) / len(ops) + 0.2 * noise
        return Estimate(score=score, metrics={"noise": noise}, params=len(ops), macs=7,
                        seconds=0.001)


class NoisyFactory:
    def __call__(self):
        return Noisy()


def _filter_scores(genotypes):
    """A child filter's proxy, seeded per genotype as nascli's proxy_scorer does."""
    noisy = Noisy()
    return [noisy(g, seed=int(SPACE.hash(g)[:8], 16)).score for g in genotypes]


def _search(path: Path, strategy: str, executor: str) -> Search:
    run_dir = RunDir(path)
    run_dir.lock()
    ex = LocalExecutor.wrap(Noisy()) if executor == "local" else PoolExecutor(
        NoisyFactory(), workers=2, threads=1)
    name, _, addon = strategy.partition("+")
    inner = build(name, SPACE, seed=5, **OPTIONS[strategy])
    if addon == "filter":
        inner = ChildFilter(inner, _filter_scores, children=3)
    return Search(SPACE, inner, ex, Budget(BUDGET), run_dir=run_dir, seed=11)


def _run_search(path: Path, strategy: str, executor: str, fault: str, resume: bool) -> None:
    """The child process: run (or resume) the search, with the fault armed."""
    os.environ["NASCLI_FAULT"] = fault
    faults.reset()
    search = _search(path, strategy, executor)
    if resume:
        search.resume()
    try:
        search.run()
    finally:
        search.executor.shutdown()


#: children come from a fork server that never ran torch: forking a process whose torch
#: thread pool is running can deadlock the child, and spawning each one costs seconds
_CTX = mp.get_context("forkserver")
_CTX.set_forkserver_preload(["nascli.engine.search", "nascli.strategies", "numpy"])


def _child(path: Path, strategy: str, executor: str, fault: str, resume: bool) -> int:
    """Run (or resume) the search in a child process; returns its exit code (-9: killed)."""
    proc = _CTX.Process(target=_run_search, args=(path, strategy, executor, fault, resume))
    proc.start()
    proc.join(timeout=300)
    if proc.is_alive():
        proc.kill()
        raise AssertionError(f"the search hung ({strategy}, {executor}, {fault!r})")
    return proc.exitcode


def _rows(path: Path) -> list[tuple]:
    return [(r["id"], r["hash"], round(r["score"], 12), r["status"])
            for r in read_history(path / "history.jsonl")]


def _raw_ids(path: Path) -> list[int]:
    return [json.loads(line)["id"] for line in (path / "history.jsonl").read_text().splitlines()]


_REFERENCE: dict[tuple[str, str], list[tuple]] = {}


def _reference(tmp_path_factory, strategy: str, executor: str) -> list[tuple]:
    key = (strategy, executor)
    if key not in _REFERENCE:
        path = tmp_path_factory.mktemp(f"ref-{strategy}-{executor}")
        assert _child(path, strategy, executor, "", resume=False) == 0
        _REFERENCE[key] = _rows(path)
    return _REFERENCE[key]


def _crash_and_resume(path: Path, strategy: str, executor: str, fault: str) -> None:
    code = _child(path, strategy, executor, fault, resume=False)
    assert code == -signal.SIGKILL, (fault, code)
    assert _child(path, strategy, executor, "", resume=True) == 0


def _check_integrity(path: Path) -> None:
    ids = _raw_ids(path)
    assert sorted(ids) == list(range(BUDGET)), ids  # none missing, none repeated in the file
    assert not list(path.glob(".*.tmp"))
    rows = read_history(path / "history.jsonl")
    best = max((r for r in rows if r["status"] == "ok"), key=lambda r: r["score"])
    genotype, space = load_genotype(path / "best.json")
    assert space.hash(genotype) == best["hash"]
    manifest_free = json.loads((path / "best.json").read_text())["meta"]
    assert manifest_free["evaluation"] == best["id"]


@pytest.mark.parametrize("strategy", sorted(OPTIONS))
@pytest.mark.parametrize("point", POINTS)
def test_kill_at_every_write_point_then_resume_gives_the_same_rows(tmp_path, tmp_path_factory,
                                                                   strategy, point):
    reference = _reference(tmp_path_factory, strategy, "local")
    # the 4th pass (2nd for best.json, which is written only on a new best and at the end):
    # some rows, a best.json and several state saves exist already
    nth = 2 if point == "write:best.json" else 4
    _crash_and_resume(tmp_path, strategy, "local", f"{point}@{nth}")
    assert _rows(tmp_path) == reference
    _check_integrity(tmp_path)


@pytest.mark.parametrize("point", POINTS)
def test_pool_executor_kill_and_resume(tmp_path, tmp_path_factory, point):
    # random's asks do not depend on the order results come back in, so the rows must match
    reference = _reference(tmp_path_factory, "random", "pool")
    assert reference == _reference(tmp_path_factory, "random", "local")
    _crash_and_resume(tmp_path, "random", "pool", f"{point}@{2 if 'best' in point else 3}")
    assert _rows(tmp_path) == reference
    _check_integrity(tmp_path)


def test_pool_executor_evolution_keeps_the_books(tmp_path):
    _crash_and_resume(tmp_path, "evolution", "pool", "history:after@3")
    _check_integrity(tmp_path)
    noisy = Noisy()
    for r in read_history(tmp_path / "history.jsonl"):  # each score is its id's seed
        g = SPACE.from_json(r["genotype"])
        assert r["score"] == pytest.approx(noisy(g, seed=11 + r["id"]).score)


def test_two_kills_in_a_row_then_resume(tmp_path, tmp_path_factory):
    reference = _reference(tmp_path_factory, "evolution", "local")
    assert _child(tmp_path, "evolution", "local", "history:torn@2", resume=False) == -9
    # the resumed run itself is killed, and resumed again
    assert _child(tmp_path, "evolution", "local", "write:state.pt@3", resume=True) == -9
    assert _child(tmp_path, "evolution", "local", "", resume=True) == 0
    assert _rows(tmp_path) == reference
    _check_integrity(tmp_path)


def test_pool_workers_die_with_a_killed_search(tmp_path):
    assert _child(tmp_path, "random", "pool", "history:after@2", resume=False) == -9
    workers = {int(r["worker"].split("-")[0][3:]) for r in read_history(
        tmp_path / "history.jsonl") if str(r["worker"]).startswith("pid")}
    assert workers
    deadline = time.monotonic() + 15
    alive = set(workers)
    while alive and time.monotonic() < deadline:
        for pid in list(alive):
            try:
                os.kill(pid, 0)
                state = Path(f"/proc/{pid}/stat").read_text().split()[2]
                if state == "Z":
                    alive.discard(pid)
            except (ProcessLookupError, FileNotFoundError):
                alive.discard(pid)
        time.sleep(0.2)
    assert not alive, f"orphaned workers {alive}"
