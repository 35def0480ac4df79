"""What an executor costs: start-up and overhead per candidate (local, pool, Ray), and the
process pool's speed-up on real candidates (issue 12).

    python benchmarks/bench_executors.py [--candidates 200] [--evaluations 8] [--skip-search]

1. Overhead: a search of ``--candidates`` candidates whose estimator returns at once, through
   each executor with 2 workers: start-up seconds (workers ready) and milliseconds per candidate
   beyond the estimator (dispatch, pickling, the supervisor's polling).
2. Speed-up: ``nascli search budget.evaluations=--evaluations`` (the default train-and-test
   candidates) with ``executor=local`` and with ``executor=pool executor.workers=2``.

Prints a table and writes benchmarks/results/bench_executors.json.
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from rich.console import Console
from rich.table import Table

from nascli.engine.executors import LocalExecutor, PoolExecutor
from nascli.engine.search import Budget, Search
from nascli.estimators.base import Estimate
from nascli.spaces import NASNetSpace
from nascli.strategies import build

RESULTS = Path(__file__).parent / "results"
SPACE = NASNetSpace()


class Instant:
    """An estimator that costs nothing: what remains is the executor's overhead."""

    name = "instant"

    def __call__(self, genotype, seed=None):
        return Estimate(score=float(seed or 0) % 1.0, seconds=0.0)


class InstantFactory:
    def __call__(self, **kwargs):
        return Instant()


def overhead(kind: str, candidates: int) -> dict:
    """Start-up and per-candidate overhead of one executor with 2 workers."""
    t0 = time.perf_counter()
    if kind == "local":
        executor = LocalExecutor(InstantFactory())
    elif kind == "pool":
        executor = PoolExecutor(InstantFactory(), workers=2, threads=1)
        executor.submit(SPACE.sample(0)).result()  # workers started and ready
        executor.submit(SPACE.sample(1)).result()
    else:
        import ray

        from nascli.engine.ray_executor import RayExecutor

        os.environ.setdefault("RAY_AUTH_MODE", "disabled")
        ray.init(num_cpus=2, include_dashboard=False, log_to_driver=False,
                 configure_logging=False)
        ray.cloudpickle.register_pickle_by_value(sys.modules[__name__])
        executor = RayExecutor(InstantFactory(), num_cpus=1)
        executor.submit(SPACE.sample(0)).result()
        executor.submit(SPACE.sample(1)).result()
    startup = time.perf_counter() - t0
    try:
        t0 = time.perf_counter()
        Search(SPACE, build("random", SPACE, seed=0), executor, Budget(candidates)).run()
        wall = time.perf_counter() - t0
    finally:
        executor.shutdown()
        if kind == "ray":
            import ray

            ray.shutdown()
    return {"executor": kind, "startup_s": round(startup, 2),
            "ms_per_candidate": round(1000 * wall / candidates, 2)}


def search_wall(evaluations: int, overrides: list[str]) -> dict:
    """``nascli search`` in a fresh process: wall seconds and evaluations."""
    with tempfile.TemporaryDirectory() as tmp:
        t0 = time.perf_counter()
        proc = subprocess.run(
            [sys.executable, "-m", "nascli", "search", "progress=off",
             f"budget.evaluations={evaluations}", *overrides],
            cwd=tmp, capture_output=True, text=True, check=False)
        wall = time.perf_counter() - t0
        if proc.returncode:
            raise SystemExit(proc.stderr[-2000:])
        (history,) = Path(tmp).rglob("history.jsonl")
        rows = history.read_text().splitlines()
    return {"overrides": " ".join(overrides) or "executor=auto (local on CPU)",
            "evaluations": len(rows), "wall_s": round(wall, 1)}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--candidates", type=int, default=200)
    parser.add_argument("--evaluations", type=int, default=8)
    parser.add_argument("--skip-search", action="store_true")
    parser.add_argument("--skip-ray", action="store_true")
    args = parser.parse_args()
    console = Console(width=150)
    out: dict = {"cores": os.cpu_count(), "overhead": [], "speedup": []}
    kinds = ["local", "pool"] + ([] if args.skip_ray else ["ray"])
    table = Table(title=f"executor overhead, {args.candidates} instant candidates, 2 workers")
    for col in ("executor", "start-up s", "ms per candidate"):
        table.add_column(col)
    for kind in kinds:
        row = overhead(kind, args.candidates)
        out["overhead"].append(row)
        table.add_row(kind, str(row["startup_s"]), str(row["ms_per_candidate"]))
    console.print(table)
    if not args.skip_search:
        table = Table(title=f"default candidates, {args.evaluations} evaluations, "
                            f"{os.cpu_count()} cores")
        for col in ("executor", "wall s", "speed-up"):
            table.add_column(col)
        for overrides in ([], ["executor=pool", "executor.workers=2"]):
            out["speedup"].append(search_wall(args.evaluations, overrides))
        base = out["speedup"][0]["wall_s"]
        for row in out["speedup"]:
            row["speedup"] = round(base / row["wall_s"], 2)
            table.add_row(row["overrides"], str(row["wall_s"]), f"{row['speedup']}x")
        console.print(table)
    RESULTS.mkdir(exist_ok=True)
    path = RESULTS / "bench_executors.json"
    path.write_text(json.dumps(out, indent=2) + "\n")
    print(f"wrote {path}")


if __name__ == "__main__":
    main()
