"""The default search end to end, the data pipeline's share of a step, and memory over time.

    python benchmarks/bench_search.py [--skip-default] [--long 200]

1. ``nascli search`` with its defaults (embedded mnist5k, CPU) in a subprocess: wall time,
   evaluations, peak resident memory. Targets: < 5 min, >= 20 evaluations, < 2 GiB.
2. The default search-time training step split into data (BatchLoader) and compute. Target:
   data < 10% of a step.
3. A long search in process (tiny training, ``--long`` evaluations): resident memory after 20 and
   after all evaluations. Target: within 10%.

Prints a table and writes benchmarks/results/bench_search.json.
"""

from __future__ import annotations

import argparse
import json
import os
import resource
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import torch
from rich.console import Console
from rich.table import Table

RESULTS = Path(__file__).parent / "results"


def rss_mib() -> float:
    """Current resident memory of this process in MiB."""
    with open("/proc/self/statm") as f:
        pages = int(f.read().split()[1])
    return pages * os.sysconf("SC_PAGE_SIZE") / 2**20


def default_search() -> dict:
    """Run ``nascli search`` with defaults in a fresh process."""
    with tempfile.TemporaryDirectory() as tmp:
        t0 = time.perf_counter()
        proc = subprocess.run(
            [sys.executable, "-m", "nascli", "search", "progress=off"], cwd=tmp,
            capture_output=True, text=True, check=False,
        )
        wall = time.perf_counter() - t0
        if proc.returncode:
            raise SystemExit(proc.stderr[-2000:])
        (history,) = Path(tmp).rglob("history.jsonl")
        rows = [json.loads(line) for line in history.read_text().splitlines()]
    peak = resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss / 1024
    ok = [r for r in rows if r["status"] == "ok"]
    return {
        "wall_s": round(wall, 1), "evaluations": len(rows), "failed": len(rows) - len(ok),
        "best_val_acc": max(r["score"] for r in ok) if ok else None,
        "mean_candidate_s": round(sum(r["seconds"] for r in rows) / len(rows), 2),
        "peak_rss_mib": round(peak, 1),
    }


def data_share(steps: int = 20) -> dict:
    """Mean per-batch time of the data pipeline and of a train step on the default network."""
    from nascli.data import load_dataset
    from nascli.data.loader import BatchLoader
    from nascli.models import build_network
    from nascli.spaces import NASNetSpace

    data = load_dataset("mnist5k", val_fraction=0.2, seed=0)
    loader = BatchLoader(data.train, 64, shuffle=True, augment=data.augment, drop_last=True)
    t0 = time.perf_counter()
    batches = []
    for i, batch in enumerate(loader):
        batches.append(batch)
        if i + 1 == steps:
            break
    data_s = (time.perf_counter() - t0) / steps
    space = NASNetSpace()
    step_times = []
    for seed in range(3):
        torch.manual_seed(seed)
        model = build_network(space.sample(seed), num_classes=10, in_channels=1,
                              cells_per_stage=1, channels=8)
        opt = torch.optim.SGD(model.parameters(), lr=0.05, momentum=0.9)
        for i, (x, y) in enumerate(batches[:8]):
            t = time.perf_counter()
            loss = torch.nn.functional.cross_entropy(model(x), y)
            opt.zero_grad()
            loss.backward()
            opt.step()
            if i >= 2:  # the first steps set up kernels
                step_times.append(time.perf_counter() - t)
    step_s = sum(step_times) / len(step_times)
    return {"data_ms": round(data_s * 1e3, 2), "step_ms": round(step_s * 1e3, 1),
            "data_share": round(data_s / (data_s + step_s), 4)}


def long_search(evaluations: int) -> dict:
    """Resident memory of a long in-process search with tiny train-and-test evaluations."""
    from nascli.data import load_dataset
    from nascli.engine.executors import LocalExecutor
    from nascli.engine.search import Budget, Search
    from nascli.estimators import TrainEstimator
    from nascli.spaces import NASNetSpace
    from nascli.strategies import build

    data = load_dataset("mnist5k", val_fraction=0.05, seed=0)
    space = NASNetSpace(channels=4)
    estimator = TrainEstimator(space, data, seed=0, max_steps=1, batch_size=16,
                               eval_batch_size=200)
    marks: dict[int, float] = {}

    def mark(row: dict) -> None:
        n = row["id"] + 1
        if n in (20, evaluations):
            marks[n] = rss_mib()

    with tempfile.TemporaryDirectory() as tmp:
        from nascli.engine.rundir import RunDir

        Search(space, build("evolution", space, seed=0, population_size=20, sample_size=5),
               LocalExecutor.wrap(estimator), Budget(evaluations), run_dir=RunDir(tmp),
               on_evaluation=mark).run()
    return {"evaluations": evaluations, "rss_at_20_mib": round(marks[20], 1),
            f"rss_at_{evaluations}_mib": round(marks[evaluations], 1),
            "growth": round(marks[evaluations] / marks[20] - 1, 4)}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--skip-default", action="store_true")
    parser.add_argument("--long", type=int, default=200)
    args = parser.parse_args()
    torch.set_num_threads(min(2, os.cpu_count() or 1))
    results = {"threads": torch.get_num_threads(), "torch": torch.__version__}
    if not args.skip_default:
        results["default_search"] = default_search()
    results["data_pipeline"] = data_share()
    if args.long:
        results["long_search"] = long_search(args.long)
    RESULTS.mkdir(exist_ok=True)
    (RESULTS / "bench_search.json").write_text(json.dumps(results, indent=2) + "\n")
    table = Table(title="bench_search")
    table.add_column("measure")
    table.add_column("value", justify="right")
    table.add_column("target")
    targets = {"wall_s": "< 300", "evaluations": ">= 20", "peak_rss_mib": "< 2048",
               "data_share": "< 0.10", "growth": "< 0.10"}
    for section, values in results.items():
        if isinstance(values, dict):
            for k, v in values.items():
                table.add_row(f"{section}.{k}", str(v), targets.get(k, ""))
    Console().print(table)


if __name__ == "__main__":
    main()
