"""The evaluation cache shared by runs (``cache=DIR``): hits without training, the key, damaged
entries, several processes at once, exact resume, and the real command."""

from __future__ import annotations

import json
import logging
import os
import shutil
import subprocess
import sys
import threading
from pathlib import Path

import pytest
import torch
from hydra import compose, initialize_config_dir

from nascli.config import config_dir
from nascli.data import AugmentSpec, DataSplits
from nascli.data.splits import TensorSplit
from nascli.engine.cache import EvalCache, cache_settings, check_entry
from nascli.engine.executors import LocalExecutor
from nascli.engine.rundir import RunDir, read_history
from nascli.engine.search import Budget, Search
from nascli.estimators.base import Estimate
from nascli.spaces import NASNetSpace
from nascli.strategies import build

SPACE = NASNetSpace(blocks=2)
SETTINGS = {"proxy": {"name": "count_ops"}}


class CountOps:
    """A deterministic objective that counts its calls (a call is a training)."""

    name = "count_ops"

    def __init__(self, fail_on: set[int] = frozenset()) -> None:
        self.calls = 0
        self.fail_on = set(fail_on)

    def __call__(self, g, seed=None):
        self.calls += 1
        if self.calls in self.fail_on:
            return Estimate.failed("diverged: training loss is nan", seconds=0.1)
        ops = [o for cell in (g.normal, g.reduce) for b in cell.blocks for o in b.ops]
        score = sum(o.startswith("sep_conv") for o in ops) / len(ops)
        return Estimate(score=score, metrics={"val_acc": score}, params=1000, macs=10_000,
                        seconds=0.5, epochs=1.0)


def _search(path: Path, cache_dir: Path | None, budget: int, estimator=None,
            strategy: str = "evolution") -> Search:
    strat = build(strategy, SPACE, seed=3, **({"population_size": 4, "sample_size": 2}
                                              if strategy == "evolution" else {}))
    run_dir = RunDir(path)
    cache = None if cache_dir is None else EvalCache(cache_dir, SETTINGS, run=str(path))
    return Search(SPACE, strat, LocalExecutor.wrap(estimator or CountOps()), Budget(budget),
                  run_dir=run_dir, seed=7, cache=cache)


def _rows(rows):
    return [(r["id"], r["hash"], r["score"], r["status"], bool(r.get("cached"))) for r in rows]


def test_a_second_run_records_cached_rows_without_training(tmp_path):
    first = _search(tmp_path / "a", tmp_path / "cache", 6).run().history
    plain = _search(tmp_path / "plain", None, 9).run().history
    estimator = CountOps()
    second = _search(tmp_path / "b", tmp_path / "cache", 9, estimator).run().history
    assert estimator.calls == 3  # six answered by the cache: no training
    assert len(second) == 9  # a hit counts toward the budget
    assert [r["id"] for r in second] == list(range(9))
    for hit, src in zip(second[:6], first, strict=True):
        assert hit["cached"] is True and hit["worker"] == "cache" and hit["seconds"] == 0
        assert hit["score"] == src["score"] and hit["hash"] == src["hash"]
        assert hit["source"]["run"] == str(tmp_path / "a") and hit["source"]["id"] == src["id"]
        assert hit["source"]["seed"] == 7 + src["id"] and hit["source"]["seconds"] == 0.5
    assert not any(r.get("cached") for r in second[6:])
    # the strategy was told the hits like evaluations: it asks what an uncached run asks
    assert [r["hash"] for r in second] == [r["hash"] for r in plain]
    on_disk = read_history(tmp_path / "b" / "history.jsonl")
    assert [bool(r.get("cached")) for r in on_disk] == [True] * 6 + [False] * 3


def test_failed_evaluations_are_not_cached(tmp_path):
    first = _search(tmp_path / "a", tmp_path / "cache", 4, CountOps(fail_on={2})).run().history
    assert first[1]["status"] == "failed"
    estimator = CountOps()
    second = _search(tmp_path / "b", tmp_path / "cache", 4, estimator).run().history
    assert estimator.calls == 1 and second[1]["status"] == "ok"
    assert [bool(r.get("cached")) for r in second] == [True, False, True, True]


def test_damaged_or_hand_edited_entries_are_ignored_with_one_warning_each(tmp_path, caplog):
    first = _search(tmp_path / "a", tmp_path / "cache", 5).run().history
    cache = EvalCache(tmp_path / "cache", SETTINGS)
    paths = [cache.path_of(r["hash"]) for r in first]
    paths[0].write_text(paths[0].read_text()[:40])  # a torn write
    edited = json.loads(paths[1].read_text())
    edited["score"] = 0.99  # a hand edit that still parses
    paths[1].write_text(json.dumps(edited))
    paths[2].write_text("[1, 2]")
    paths[3].write_bytes(b"\xff\xfe\x00")
    estimator = CountOps()
    with caplog.at_level(logging.WARNING, logger="nascli.cache"):
        second = _search(tmp_path / "b", tmp_path / "cache", 5, estimator).run().history
    assert estimator.calls == 4  # the four damaged ones are evaluated again
    assert [r["score"] for r in second] == [r["score"] for r in first]
    warnings = [r.getMessage() for r in caplog.records]
    assert len(warnings) == 4 and all(w.count("\n") == 0 for w in warnings)
    assert any("checksum" in w for w in warnings)
    for r in second:  # and stored again, intact
        check_entry(cache.path_of(r["hash"]).read_text(), cache.key, r["hash"])


def test_resume_records_the_hit_the_interrupted_run_saved(tmp_path):
    """Killed after a hit was decided (state saved) but before its row: the resumed run
    records that very entry, even if another process has rewritten it meanwhile."""
    _search(tmp_path / "a", tmp_path / "cache", 5).run()
    shutil.copytree(tmp_path / "cache", tmp_path / "copy")  # the reference must not fill it
    reference = _search(tmp_path / "ref", tmp_path / "copy", 8).run().history
    cut = _search(tmp_path / "b", tmp_path / "cache", 8)
    append, calls = cut.run_dir.append, []

    def killed_at_the_third_row(row):
        calls.append(row["id"])
        if len(calls) == 3:
            raise KeyboardInterrupt
        append(row)

    cut.run_dir.append = killed_at_the_third_row
    with pytest.raises(KeyboardInterrupt):
        cut.run()
    cut.run_dir.unlock()
    # another run overwrites the entry of the pending hit (last writer wins)
    cache = EvalCache(tmp_path / "cache", SETTINGS)
    pending = reference[2]
    cache.put({**pending, "score": -1.0}, seed=0)
    resumed = _search(tmp_path / "b", tmp_path / "cache", 8)
    assert resumed.resume() == 2 and len(resumed.redo) == 1
    assert _rows(resumed.run().history) == _rows(reference)


def test_the_key_follows_estimator_space_data_and_precision():
    raw = torch.randint(0, 255, (64, 1, 8, 8), dtype=torch.uint8)
    labels = torch.arange(64) % 4

    def data(pixels: torch.Tensor) -> DataSplits:
        split = TensorSplit(pixels, labels, torch.zeros(1), torch.ones(1))
        return DataSplits("toy", split, split, split, 4, 1, (8, 8), "f", AugmentSpec())

    base = {"space": {"blocks": 2}, "proxy": {"name": "synflow", "batch_size": 64},
            "dataset": {"name": "toy", "root": "/data", "download": False},
            "precision": {"amp": "none", "tf32": False}}

    def key(**change) -> str:
        pixels = change.pop("pixels", raw)
        return EvalCache.key_of(cache_settings(**{**base, **change}, data=data(pixels)))

    edited = raw.clone()
    edited[5, 0, 3, 3] += 1  # one pixel of a sampled image
    same = key()
    assert key() == same
    assert key(dataset={**base["dataset"], "root": "/elsewhere", "download": True}) == same
    assert key(proxy={"name": "synflow", "batch_size": 32}) != same
    assert key(proxy={"name": "snip", "batch_size": 64}) != same
    assert key(space={"blocks": 3}) != same
    assert key(dataset={**base["dataset"], "fraction": 0.5}) != same
    assert key(pixels=edited) != same
    assert key(precision={"amp": "bf16", "tf32": True}) != same


def test_the_key_of_a_composed_config(tmp_path):
    from nascli.commands.common import build_space, load_data
    from nascli.commands.search import open_cache
    from nascli.config import instantiate

    def key(*overrides: str) -> str:
        with initialize_config_dir(config_dir=str(config_dir()), version_base=None):
            cfg = compose("search", overrides=[
                "dataset=synthetic", "dataset.num_samples=120", "dataset.image_size=8",
                "dataset.channels=1", "device=cpu", "proxy=synflow",
                f"cache={tmp_path / 'cache'}", *overrides])
        built = (build_space(cfg), load_data(cfg, int(cfg.seed)),
                 instantiate(cfg.device, "device"), torch.device("cpu"))
        return open_cache(cfg, built, RunDir(tmp_path / "run")).key

    same = key()
    assert key("strategy=evolution", "budget.evaluations=3", "dataset.root=/x") == same
    assert key("device.amp=bf16") == same  # autocast acts on CUDA only
    assert key("proxy.batch_size=16") != same
    assert key("dataset.signal=0.3") != same
    assert key("seed=1") != same  # another seed holds out other validation images


# -- several processes --------------------------------------------------------------------------
WRITER = """
import sys
from nascli.engine.cache import EvalCache
cache = EvalCache(sys.argv[1], {"proxy": "stress"}, run=sys.argv[2])
score = float(sys.argv[3])
for _ in range(int(sys.argv[4])):
    for i in range(40):
        h = f"{i:016x}"
        cache.put({"id": i, "hash": h, "genotype": {}, "arch": "", "score": score + i,
                   "metrics": {"writer": sys.argv[2]}, "params": 1, "macs": 2, "seconds": 0.1})
        if cache.get(f"{(i + 7) % 40:016x}") is None and _ > 0:
            sys.exit("an entry written in an earlier round is missing")
"""


def _writer(cache_dir: Path, name: str, score: float, rounds: int, fault: str = ""):
    env = dict(os.environ, NASCLI_FAULT=fault, PYTHONWARNINGS="ignore")
    return subprocess.Popen([sys.executable, "-c", WRITER, str(cache_dir), name, str(score),
                             str(rounds)], env=env, stdout=subprocess.PIPE,
                            stderr=subprocess.PIPE, text=True)


def test_two_processes_writing_one_cache_at_once(tmp_path):
    procs = [_writer(tmp_path, "one", 0.0, 6), _writer(tmp_path, "two", 1000.0, 6)]
    key = EvalCache.key_of({"proxy": "stress"})
    reads = 0
    while any(p.poll() is None for p in procs):  # read everything while they write
        for path in (tmp_path / key).glob("0*.json"):
            try:
                entry = check_entry(path.read_text(), key, path.stem)
            except FileNotFoundError:
                continue
            assert entry["score"] - int(path.stem, 16) in (0.0, 1000.0)
            reads += 1
    for p in procs:
        _, err = p.communicate()
        assert p.returncode == 0, err
        assert "cache:" not in err  # no entry was ever seen damaged
    assert reads > 0
    for path in (tmp_path / key).glob("0*.json"):  # last writer wins, intact
        entry = check_entry(path.read_text(), key, path.stem)
        assert entry["source"]["run"] in ("one", "two")
    assert len(list((tmp_path / key).glob("0*.json"))) == 40
    assert not list((tmp_path / key).glob(".*.tmp"))


def test_a_kill_in_the_middle_of_a_write_leaves_no_half_entry(tmp_path):
    assert _writer(tmp_path, "one", 0.0, 1).wait() == 0
    proc = _writer(tmp_path, "two", 1000.0, 1, fault="write:cache@13")
    proc.communicate()
    assert proc.returncode == -9
    cache = EvalCache(tmp_path, {"proxy": "stress"})
    scores = [cache.get(f"{i:016x}")["score"] - i for i in range(40)]
    assert scores == [1000.0] * 12 + [0.0] * 28  # the 13th write was cut: the old entry stays
    assert len(list(cache.dir.glob(".*.tmp"))) == 1  # the cut write, never read as an entry


def test_two_searches_share_one_cache_at_once(tmp_path):
    results: dict[str, list] = {}

    def run(name: str) -> None:
        results[name] = _search(tmp_path / name, tmp_path / "cache", 12,
                                strategy="random").run().history

    threads = [threading.Thread(target=run, args=(n,)) for n in ("a", "b")]
    for t in threads:
        t.start()
    for t in threads:
        t.join(timeout=120)
    assert [r[:4] for r in _rows(results["a"])] == [r[:4] for r in _rows(results["b"])]
    cache = EvalCache(tmp_path / "cache", SETTINGS)
    for r in results["a"]:
        assert cache.get(r["hash"])["score"] == r["score"]


# -- the real command ---------------------------------------------------------------------------
TINY_ZC = ["dataset=synthetic", "dataset.num_samples=240", "dataset.image_size=28",
           "dataset.channels=1", "search_space.channels=4", "device=cpu", "progress=off",
           "proxy=synflow"]


def _nascli(cwd: Path, *args: str) -> subprocess.CompletedProcess:
    env = dict(os.environ, COLUMNS="200", PYTHONWARNINGS="ignore")
    return subprocess.run([sys.executable, "-m", "nascli", "search", *TINY_ZC, *args],
                          cwd=cwd, capture_output=True, text=True, timeout=300, env=env)


def _compose(*overrides: str):
    with initialize_config_dir(config_dir=str(config_dir()), version_base=None):
        return compose("search", overrides=[*TINY_ZC, *overrides])


def _search_in_process(path: Path, *overrides: str) -> None:
    """What ``nascli search OVERRIDES hydra.run.dir=PATH`` runs, in this process (saves a
    subprocess start)."""
    from nascli.commands.search import build_search

    run_dir = RunDir(path)
    run_dir.lock()
    search = build_search(_compose(*overrides), run_dir, resumed=False)
    try:
        search.run()
    finally:
        search.executor.shutdown()
        run_dir.unlock()


def test_the_command_reuses_another_runs_evaluations(tmp_path, one_thread):
    from nascli.commands.runs import open_resumed_run

    cache = tmp_path / "cache"
    _search_in_process(tmp_path / "outputs/one", "budget.evaluations=3", f"cache={cache}")
    second = _nascli(tmp_path, "budget.evaluations=4", f"cache={cache}",
                     "hydra.run.dir=outputs/two")
    assert second.returncode == 0, second.stderr
    one = read_history(tmp_path / "outputs/one/history.jsonl")
    two = read_history(tmp_path / "outputs/two/history.jsonl")
    assert [r.get("cached", False) for r in two] == [True, True, True, False]
    assert [r["score"] for r in two[:3]] == [r["score"] for r in one]
    assert {r["source"]["run"] for r in two[:3]} == {str((tmp_path / "outputs/one").resolve())}
    assert "cached (run" in second.stderr
    # a resume may switch the cache (an adjustable key) and keeps the run's own otherwise
    cfg = _compose("resume=outputs/two", "cache=/tmp/other")
    cwd = Path.cwd()
    os.chdir(tmp_path)
    try:
        run_dir, merged = open_resumed_run(cfg, ["resume=outputs/two", "cache=/tmp/other"])
        run_dir.unlock()
        assert merged.cache == "/tmp/other"
        run_dir, merged = open_resumed_run(cfg, ["resume=outputs/two"])
        run_dir.unlock()
        assert merged.cache == str(cache)
    finally:
        os.chdir(cwd)
