"""The default search on CPUs shared with other work (issue 11, item 6).

    python benchmarks/bench_shared_cpu.py [--evaluations 6] [--full] [--matrix]

A laptop or a shared box always runs something else. This runs ``nascli search`` in a fresh
process, alone and beside busy competitors (``--competitors`` Python processes spinning on one
core each), under several thread and OpenMP settings:

- ``--matrix``: torch threads (``--threads``: 2 or 1 fixed with ``device.threads``, or
  ``adaptive``, nascli's default) by ``OMP_WAIT_POLICY`` (``--policies``: unset, PASSIVE,
  ACTIVE), with ``budget.evaluations=--evaluations``: seconds per evaluation alone, with the
  competitors, and the slowdown. Rows replace those of the same setting in the JSON file.
- ``--full``: the default search (24 evaluations) with nascli's defaults, alone and with the
  competitors. Targets: at most 180 s alone on 2 cores, at most twice that with one competitor.

Prints a table and writes benchmarks/results/bench_shared_cpu.json.
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

RESULTS = Path(__file__).parent / "results"
SPIN = "while True: pass"


def search(overrides: list[str], env: dict[str, str], competitors: int) -> dict:
    """One ``nascli search progress=off`` in a fresh process; wall seconds and evaluations."""
    spinners = [subprocess.Popen([sys.executable, "-c", SPIN]) for _ in range(competitors)]
    try:
        time.sleep(0.5 if competitors else 0.0)
        with tempfile.TemporaryDirectory() as tmp:
            t0 = time.perf_counter()
            proc = subprocess.run(
                [sys.executable, "-m", "nascli", "search", "progress=off", *overrides],
                cwd=tmp, capture_output=True, text=True, check=False, env=env,
            )
            wall = time.perf_counter() - t0
            if proc.returncode:
                raise SystemExit(proc.stderr[-2000:])
            (history,) = Path(tmp).rglob("history.jsonl")
            rows = [json.loads(line) for line in history.read_text().splitlines()]
    finally:
        for s in spinners:
            s.kill()
            s.wait()
    seconds = [r["seconds"] for r in rows]
    return {"wall_s": round(wall, 1), "evaluations": len(rows),
            "candidate_s": round(sum(seconds) / len(seconds), 2)}


def settings_env(threads: str, policy: str) -> tuple[list[str], dict[str, str]]:
    """Overrides and environment of one setting of the matrix."""
    env = dict(os.environ)
    env.pop("OMP_WAIT_POLICY", None)
    env.pop("OMP_NUM_THREADS", None)
    if policy != "unset":
        env["OMP_WAIT_POLICY"] = policy
    overrides = [] if threads == "adaptive" else [f"device.threads={threads}"]
    return overrides, env


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--evaluations", type=int, default=6)
    parser.add_argument("--competitors", type=int, default=1)
    parser.add_argument("--matrix", action="store_true")
    parser.add_argument("--full", action="store_true")
    parser.add_argument("--threads", default="2,1,adaptive")
    parser.add_argument("--policies", default="unset,PASSIVE,ACTIVE")
    args = parser.parse_args()
    if not (args.matrix or args.full):
        args.matrix = args.full = True
    path = RESULTS / "bench_shared_cpu.json"
    out: dict = {"matrix": [], "full": None}
    if path.exists():
        out.update(json.loads(path.read_text()))
    out.update(cores=os.cpu_count(), competitors=args.competitors)
    table = Table(title=f"nascli search on {os.cpu_count()} cores, alone and beside "
                        f"{args.competitors} busy process(es)")
    for col in ("setting", "evals", "alone s", "alone s/eval", "shared s", "shared s/eval",
                "slowdown"):
        table.add_column(col, justify="right" if col != "setting" else "left")
    if args.matrix:
        for threads in args.threads.split(","):
            for policy in args.policies.split(","):
                overrides, env = settings_env(threads, policy)
                overrides.append(f"budget.evaluations={args.evaluations}")
                alone = search(overrides, env, 0)
                shared = search(overrides, env, args.competitors)
                row = {"threads": threads, "omp_wait_policy": policy, "alone": alone,
                       "shared": shared,
                       "slowdown": round(shared["wall_s"] / alone["wall_s"], 2)}
                out["matrix"] = [r for r in out["matrix"] if (r["threads"], r["omp_wait_policy"])
                                 != (threads, policy)] + [row]
                table.add_row(f"threads={threads} OMP_WAIT_POLICY={policy}",
                              str(alone["evaluations"]), str(alone["wall_s"]),
                              str(alone["candidate_s"]), str(shared["wall_s"]),
                              str(shared["candidate_s"]), f"{row['slowdown']}x")
    if args.full:
        env = dict(os.environ)
        for key in ("OMP_WAIT_POLICY", "OMP_NUM_THREADS"):
            env.pop(key, None)
        alone = search([], env, 0)
        shared = search([], env, args.competitors)
        out["full"] = {"alone": alone, "shared": shared,
                       "slowdown": round(shared["wall_s"] / alone["wall_s"], 2)}
        table.add_row("nascli defaults, default search", str(alone["evaluations"]),
                      str(alone["wall_s"]), str(alone["candidate_s"]), str(shared["wall_s"]),
                      str(shared["candidate_s"]), f"{out['full']['slowdown']}x")
    Console(width=150).print(table)
    RESULTS.mkdir(exist_ok=True)
    path.write_text(json.dumps(out, indent=2) + "\n")
    print(f"wrote {path}")


if __name__ == "__main__":
    main()
