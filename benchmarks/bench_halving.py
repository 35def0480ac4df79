"""Does successive halving find a good cell with less training than full-fidelity search?

A synthetic multi-fidelity objective (``nascli.strategies.synthetic.MultiFidelity`` over
``AdditiveOps`` on the NASNet space): a score after ``s`` of ``S`` steps is the cell's true
quality plus noise of standard deviation ``noise * sqrt(S / s)``, so cheap rungs rank cells
roughly and full training ranks them well. Each search runs through the real engine
(:class:`~nascli.engine.search.Search` with a schedule), random search proposing the cells.

The cost of a search is the training steps spent until a cell whose true quality reaches the
target has been trained at full fidelity (found and confirmed); ``--budget`` full trainings'
worth of steps at most (censored there).

    PYTHONPATH=src python benchmarks/bench_halving.py [--seeds 20] [--target 0.63] [--out DIR]

Writes bench_halving.json to ``--out`` (default benchmarks/results).
"""

from __future__ import annotations

import argparse
import contextlib
import json
import platform
import time
from collections.abc import Callable
from pathlib import Path

import numpy as np
from rich.console import Console
from rich.table import Table

from nascli.engine.executors import LocalExecutor
from nascli.engine.schedule import Halving, Scheduler
from nascli.engine.search import Budget, Search
from nascli.spaces import NASNetSpace
from nascli.strategies import build
from nascli.strategies.synthetic import AdditiveOps, MultiFidelity

OUT = Path(__file__).parent / "results"
SPACE = NASNetSpace()
MAX_STEPS = 81
TARGET = 0.63  # about the best 1.5% of random cells

#: label -> (eta, rungs, asynchronous) or None for full fidelity
SCHEDULES = {
    "random": None,
    "halving": (3, 3, False),
    "halving-4-rungs": (3, 4, False),
    "asha": (3, 3, True),
}


def steps_to_target(label: str, seed: int, target: float = TARGET, budget: int = 150,
                    noise: float = 0.02) -> int:
    """Training steps until a cell of true quality >= ``target`` was trained at full
    fidelity (``budget * MAX_STEPS`` + 1 if never)."""
    objective = AdditiveOps(SPACE, seed=seed, noise=0.0)
    estimator = MultiFidelity(objective, MAX_STEPS, noise=noise)
    spec = SCHEDULES[label]
    schedule = None if spec is None else Scheduler(
        Halving(eta=spec[0], rungs=spec[1], max_steps=MAX_STEPS).steps(0), spec[0], spec[2])
    limit = budget * MAX_STEPS
    spent = 0
    found: list[int] = []

    def watch(row: dict) -> None:
        nonlocal spent
        spent += row["metrics"]["steps"]
        full = row["metrics"]["steps"] == MAX_STEPS
        genotype = SPACE.from_json(row["genotype"])
        if full and not found and objective.true_score(genotype) >= target:
            found.append(spent)

    # more evaluations than the step budget allows: the step budget ends the search
    search = Search(SPACE, build("random", SPACE, seed), LocalExecutor.wrap(estimator),
                    Budget(evaluations=limit), seed=seed, schedule=schedule,
                    on_evaluation=watch)
    _run_until(search, lambda: bool(found) or spent >= limit)
    return found[0] if found else limit + 1


def _run_until(search: Search, done: Callable[[], bool]) -> None:
    """Run ``search`` until ``done()`` (checked after every evaluation)."""
    watch = search.on_evaluation

    def stop(row: dict) -> None:
        watch(row)
        if done():
            raise _Enough

    search.on_evaluation = stop
    with contextlib.suppress(_Enough):
        search.run()


class _Enough(Exception):
    """The search has answered the question."""


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--seeds", type=int, default=20)
    parser.add_argument("--target", type=float, default=TARGET)
    parser.add_argument("--budget", type=int, default=150, help="full trainings' worth of steps")
    parser.add_argument("--out", type=Path, default=OUT)
    args = parser.parse_args()
    args.out.mkdir(parents=True, exist_ok=True)
    results = {}
    for label in SCHEDULES:
        t0 = time.perf_counter()
        steps = [steps_to_target(label, s, args.target, args.budget) for s in range(args.seeds)]
        results[label] = {"steps": steps, "mean": float(np.mean(steps)),
                          "median": float(np.median(steps)),
                          "full_trainings": float(np.mean(steps)) / MAX_STEPS,
                          "seconds": time.perf_counter() - t0}
    base = results["random"]["mean"]
    table = Table(title=f"training steps to a confirmed cell of quality >= {args.target} "
                        f"({args.seeds} seeds, full training = {MAX_STEPS} steps)")
    for col in ("schedule", "mean steps", "median", "full trainings", "vs random"):
        table.add_column(col, justify="right" if col != "schedule" else "left")
    for label, r in results.items():
        table.add_row(label, f"{r['mean']:.0f}", f"{r['median']:.0f}",
                      f"{r['full_trainings']:.1f}", f"{r['mean'] / base:.2f}x")
    Console(width=110).print(table)
    report = {"seeds": args.seeds, "target": args.target, "max_steps": MAX_STEPS,
              "budget": args.budget, "results": results, "python": platform.python_version()}
    path = args.out / "bench_halving.json"
    path.write_text(json.dumps(report, indent=2))
    print(f"wrote {path}")


if __name__ == "__main__":
    main()
