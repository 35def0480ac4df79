"""How fast does each search strategy find good architectures, and what does it cost per ask?

Two synthetic objectives where structure matters (``nascli.strategies.synthetic``):
``hidden_target`` (20 decisions of 4 choices; score = fraction matching a hidden genotype) and
``additive_ops`` (the NASNet space; each op and input state has a hidden quality). Each strategy
runs ``--seeds`` seeds of ``--budget`` evaluations (noise 0.01 on told scores); the curves are
the best noise-free score found so far. Controllers run with their defaults (measured by
``bench_controller_defaults.py``) and, as ``ppo-paper``, with the NASNet paper's settings
(``experiment=nasnet_ppo_paper``).

Every strategy is built with ``build`` and so runs inside the ``Deduplicate`` wrapper (no
architecture is evaluated twice), as in a search.

The overhead table times ``ask`` + ``tell`` alone (the objective excluded) on the NASNet space
with each strategy's defaults, amortised over ``--overhead`` candidates (controller updates and
the wrapper's canonical hashing included).

    PYTHONPATH=src python benchmarks/bench_strategies.py [--seeds 10] [--budget 300] [--out DIR]

Writes bench_strategies.json and bench_strategies_<objective>.png to ``--out``
(default benchmarks/results).
"""

from __future__ import annotations

import argparse
import json
import platform
import time
from pathlib import Path

import matplotlib

matplotlib.use("Agg")  # files only, no display
import matplotlib.pyplot as plt
import numpy as np
import torch
from rich.console import Console
from rich.table import Table

from nascli.spaces import NASNetSpace
from nascli.strategies import build
from nascli.strategies.synthetic import (
    AdditiveOps,
    GridSpace,
    HiddenTarget,
    evaluations_to_reach,
    run_search,
)

OUT = Path(__file__).parent / "results"

OBJECTIVES = {
    "hidden_target": (lambda: GridSpace([4] * 20), HiddenTarget, (0.5, 0.6, 0.7)),
    "additive_ops": (NASNetSpace, AdditiveOps, (0.65, 0.7, 0.75)),
}

#: label -> (registered strategy, options)
CONFIGS = {
    "random": ("random", {}),
    "evolution": ("evolution", {"population_size": 20, "sample_size": 5}),
    "ppo": ("ppo", {}),
    "reinforce": ("reinforce", {}),
    "ppo-paper": ("ppo", {"lr": 0.00035, "batch_size": 20, "tanh_constant": None}),
}


def curves(label: str, objective: str, seeds: int, budget: int) -> dict:
    """Best-so-far curves over seeds, evaluations to each target, and wall time."""
    name, options = CONFIGS[label]
    make_space, make_objective, targets = OBJECTIVES[objective]
    space = make_space()
    best, reach, seconds = [], {t: [] for t in targets}, 0.0
    for seed in range(seeds):
        f = make_objective(space, seed)
        strategy = build(name, space, seed, **options)
        start = time.perf_counter()
        genotypes, _ = run_search(strategy, f, budget)
        seconds += time.perf_counter() - start
        true = [f.true_score(g) for g in genotypes]
        best.append(np.maximum.accumulate(true))
        for t in targets:
            reach[t].append(evaluations_to_reach(true, t))
    b = np.array(best)
    return {
        "mean": b.mean(0).tolist(),
        "std": b.std(0).tolist(),
        "q25": np.quantile(b, 0.25, axis=0).tolist(),
        "q75": np.quantile(b, 0.75, axis=0).tolist(),
        "final": b[:, -1].tolist(),
        "evaluations_to_target": {str(t): float(np.mean(v)) for t, v in reach.items()},
        "seconds_per_evaluation": seconds / (seeds * budget),
    }


def overhead(label: str, candidates: int) -> dict:
    """Seconds per candidate of ask + tell on the NASNet space with default options."""
    name = CONFIGS[label][0]
    space = NASNetSpace()
    strategy = build(name, space, 0)
    rng = np.random.default_rng(0)
    scores = rng.uniform(size=candidates)
    per = []
    for k in range(candidates):
        start = time.perf_counter()
        g = strategy.ask()
        strategy.tell(g, float(scores[k]))
        per.append(time.perf_counter() - start)
    per_ms = np.array(per) * 1e3
    return {
        "mean_ms": float(per_ms.mean()),
        "median_ms": float(np.median(per_ms)),
        "max_ms": float(per_ms.max()),
        "candidates": candidates,
    }


def plot(objective: str, results: dict, budget: int, seeds: int, out: Path) -> Path:
    """Mean best-so-far with an interquartile band, one line per strategy."""
    fig, ax = plt.subplots(figsize=(7, 4.5))
    x = np.arange(1, budget + 1)
    for label, r in results.items():
        ax.plot(x, r["mean"], label=label, lw=1.6, ls="--" if label.endswith("paper") else "-")
        ax.fill_between(x, r["q25"], r["q75"], alpha=0.15)
    ax.set_xlabel("evaluations")
    ax.set_ylabel("best noise-free score so far")
    ax.set_title(f"{objective}: mean and interquartile range over {seeds} seeds")
    ax.grid(alpha=0.3)
    ax.legend(loc="lower right")
    fig.tight_layout()
    path = out / f"bench_strategies_{objective}.png"
    fig.savefig(path, dpi=120)
    plt.close(fig)
    return path


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--seeds", type=int, default=10)
    parser.add_argument("--budget", type=int, default=300)
    parser.add_argument("--overhead", type=int, default=400, help="candidates timed per strategy")
    parser.add_argument("--out", type=Path, default=OUT, help="folder for the JSON and plots")
    args = parser.parse_args()
    out: Path = args.out
    out.mkdir(parents=True, exist_ok=True)
    console = Console(width=110)  # tables stay whole when output is not a terminal

    report: dict = {
        "seeds": args.seeds,
        "budget": args.budget,
        "configs": {k: {"strategy": n, "options": o} for k, (n, o) in CONFIGS.items()},
        "machine": {
            "python": platform.python_version(),
            "torch": torch.__version__,
            "torch_threads": torch.get_num_threads(),
        },
        "objectives": {},
        "overhead": {},
    }
    for objective, (_, _, targets) in OBJECTIVES.items():
        results = {}
        for label in CONFIGS:
            results[label] = curves(label, objective, args.seeds, args.budget)
        report["objectives"][objective] = results
        path = plot(objective, results, args.budget, args.seeds, out)

        table = Table(
            title=f"{objective}: evaluations to reach a noise-free score "
            f"(mean of {args.seeds} seeds; {args.budget + 1} = never)"
        )
        table.add_column("strategy")
        for t in targets:
            table.add_column(f">= {t}", justify="right")
        table.add_column("vs random", justify="right")
        table.add_column("final best", justify="right")
        rand = results["random"]["evaluations_to_target"]
        for label, r in results.items():
            reach = r["evaluations_to_target"]
            mid = str(targets[1])
            table.add_row(
                label,
                *(f"{reach[str(t)]:.1f}" for t in targets),
                f"{1 - reach[mid] / rand[mid]:+.0%}",
                f"{np.mean(r['final']):.3f} ± {np.std(r['final']):.3f}",
            )
        console.print(table)
        console.print(f"plot: {path}")

    table = Table(title="strategy overhead per candidate (ask + tell), NASNet space, defaults")
    for col in ("strategy", "mean ms", "median ms", "max ms"):
        table.add_column(col, justify="left" if col == "strategy" else "right")
    for label in ("random", "evolution", "ppo", "reinforce"):
        r = overhead(label, args.overhead)
        report["overhead"][label] = r
        table.add_row(label, f"{r['mean_ms']:.2f}", f"{r['median_ms']:.2f}", f"{r['max_ms']:.1f}")
    console.print(table)
    (out / "bench_strategies.json").write_text(json.dumps(report, indent=1))
    console.print(f"results: {out / 'bench_strategies.json'}")


if __name__ == "__main__":
    main()
