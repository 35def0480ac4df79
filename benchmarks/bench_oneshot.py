"""One-shot search on the embedded data: wall time, candidates, cost per candidate, ranking.

1. Runs ``nascli search strategy=oneshot oneshot.probe=24`` (the defaults otherwise) as a user
   would, and reads from its run directory: supernet training seconds, search seconds,
   candidates scored by inheritance, seconds per candidate, and Kendall tau / Spearman rho of
   inherited against stand-alone (``proxy=train``) scores on 24 random genotypes.
2. Re-scores the same 24 probes with other inheritance settings (BatchNorm recalibration
   batches, validation images) on the same supernet, against the same stand-alone scores, to
   show what moves tau; and times ``proxy=train`` per candidate on 8 genotypes.

    PYTHONPATH=src python benchmarks/bench_oneshot.py [--threads 2] [--out DIR]

Prints a table and writes benchmarks/results/bench_oneshot.json (peak memory beside time).
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import resource
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import torch
from rich.console import Console
from rich.table import Table
from scipy.stats import kendalltau, spearmanr

#: inheritance settings compared on the same probes: (label, estimator options)
VARIANTS = [
    ("no BN recalibration", {"bn_batches": 0}),
    ("default", {}),
    ("BN 4x64, val 2x128", {"bn_batches": 4, "bn_batch_size": 64, "val_batches": 2,
                            "val_batch_size": 128}),
    ("BN 4x64, val 8x128", {"bn_batches": 4, "bn_batch_size": 64, "val_batches": 8,
                            "val_batch_size": 128}),
]


def run_search(out: Path, threads: int) -> Path:
    """The user's command; returns the run directory."""
    env = dict(os.environ, OMP_NUM_THREADS=str(threads), COLUMNS="200")
    t0 = time.perf_counter()
    subprocess.run([sys.executable, "-m", "nascli", "search", "strategy=oneshot",
                    "oneshot.probe=24", "progress=off", f"device.threads={threads}",
                    f"hydra.run.dir={out}"], check=True, env=env)
    print(f"search + probe: {time.perf_counter() - t0:.1f} s wall")
    return out


def rescore(run: Path, threads: int) -> list[dict]:
    """Tau of each inheritance variant on the run's probes and supernet."""
    from nascli.data import load_dataset
    from nascli.oneshot import SupernetEstimator
    from nascli.spaces import NASNetSpace

    torch.set_num_threads(threads)
    data = load_dataset("mnist5k", seed=0)
    space = NASNetSpace()
    ranking = json.loads((run / "oneshot_ranking.json").read_text())
    rows = [r for r in ranking["rows"] if r["standalone"] is not None]
    genotypes = [space.from_text(r["arch"]) for r in rows]
    standalone = [r["standalone"] for r in rows]
    out = []
    for label, options in VARIANTS:
        est = SupernetEstimator(space, data, channels_last=True,
                                supernet=str(run / "supernet.pt"), **options)
        scores, seconds = [], []
        for g in genotypes:
            e = est(g)
            scores.append(e.score)
            seconds.append(e.seconds)
        out.append({"variant": label, **options, "kendall_tau": float(kendalltau(
            scores, standalone)[0]), "spearman_rho": float(spearmanr(scores, standalone)[0]),
            "ms_per_candidate": 1000 * float(np.median(seconds))})
    return out


def time_train(threads: int, n: int = 8) -> float:
    """Median seconds per candidate of proxy=train (the default recipe)."""
    from nascli.data import load_dataset
    from nascli.estimators import TrainEstimator
    from nascli.spaces import NASNetSpace

    torch.set_num_threads(threads)
    data, space = load_dataset("mnist5k", seed=0), NASNetSpace()
    est = TrainEstimator(space, data, channels_last=True)
    rng = np.random.default_rng(5)
    return float(np.median([est(space.sample(rng)).seconds for _ in range(n)]))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--out", type=Path, default=Path("outputs/bench_oneshot"))
    args = parser.parse_args()
    run = args.out / time.strftime("%Y%m%d-%H%M%S")
    run_search(run, args.threads)
    manifest = json.loads((run / "manifest.json").read_text())
    history = [json.loads(x) for x in (run / "history.jsonl").read_text().splitlines()]
    ranking = json.loads((run / "oneshot_ranking.json").read_text())
    search_seconds = max(r["elapsed"] for r in history)
    per_candidate = float(np.median([r["seconds"] for r in history]))
    train_seconds = time_train(args.threads)
    variants = rescore(run, args.threads)
    result = {
        "supernet_seconds": manifest["supernet_seconds"], "search_seconds": search_seconds,
        "total_seconds": manifest["supernet_seconds"] + search_seconds,
        "candidates": len(history), "candidates_per_second": len(history) / search_seconds,
        "inheritance_seconds_per_candidate": per_candidate,
        "train_seconds_per_candidate": train_seconds,
        "speedup": train_seconds / per_candidate,
        "kendall_tau_24": ranking["kendall_tau"], "spearman_rho_24": ranking["spearman_rho"],
        "param_free_share": ranking["param_free_share"], "variants": variants,
        "best_inherited": max(r["score"] for r in history if r["score"] is not None),
        "peak_rss_mb": resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss / 1024,
        "threads": args.threads, "torch": torch.__version__, "machine": platform.processor(),
        "run": str(run),
    }
    table = Table(title="one-shot search, embedded data (mnist5k), CPU")
    table.add_column("measure")
    table.add_column("value", justify="right")
    for key in ("supernet_seconds", "search_seconds", "total_seconds", "candidates",
                "inheritance_seconds_per_candidate", "train_seconds_per_candidate", "speedup",
                "kendall_tau_24", "spearman_rho_24", "peak_rss_mb"):
        v = result[key]
        table.add_row(key, f"{v:.3f}" if isinstance(v, float) else str(v))
    for v in variants:
        table.add_row(f"tau: {v['variant']}", f"{v['kendall_tau']:.3f} "
                      f"({v['ms_per_candidate']:.0f} ms)")
    Console().print(table)
    path = Path(__file__).parent / "results" / "bench_oneshot.json"
    path.parent.mkdir(exist_ok=True)
    path.write_text(json.dumps(result, indent=2) + "\n")
    print(f"wrote {path}")


if __name__ == "__main__":
    main()
