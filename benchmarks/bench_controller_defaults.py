"""Which settings should the ``ppo`` and ``reinforce`` controllers default to? A measured sweep.

Both synthetic objectives of ``bench_strategies.py`` (``hidden_target``: 20 decisions of 4
choices; ``additive_ops``: the NASNet space), noise 0.01 on told scores, every strategy built
with ``build`` (inside ``Deduplicate``). A run's cost to a target is the number of evaluations
until it first asks an architecture whose noise-free score reaches the target (budget + 1 if it
never does). The targets are per budget: random search reaches them within the budget in only
10-20% of runs. The first 100 evaluations of a 1000-evaluation run are exactly a 100-evaluation
run (a strategy does not know its budget), so a run to 1000 is scored at both budgets.

0. Baseline: random search on ``--random-seeds`` seeds (it is cheap, and its cost to these
   targets varies much from seed to seed).
1. Screen: the grid ``LRS`` x ``BATCH_SIZES`` x ``TANH_CONSTANTS`` for each strategy, budget 100,
   seeds ``0..--seeds-1``.
2. Finalists: ``batch_size`` and ``tanh_constant`` are options of the shared
   ``ControllerStrategy``, so both strategies get the same ones; ``lr`` may differ. The
   ``--pairs`` (batch_size, tanh_constant) pairs whose worse strategy did best at stage 1, with
   the ``--lrs`` best learning rates of each strategy in them, run to budget 1000, as do the
   papers' settings.
3. The choice: a setting is eligible if none of its runs collapsed or diverged and it needs at
   least ``MIN_SAVING`` fewer evaluations than random in all 4 cells (2 objectives x 2
   budgets); its quality is its mean final best over the 4 cells. Each strategy takes its best
   eligible learning rate in a pair; the pair whose worse strategy has the higher quality wins.
   A run stops as *collapsed* when the policy re-proposes told architectures more than twice per
   evaluation (each such cached answer trains the controller, and the search is then mostly
   ``Deduplicate``'s random fallback), as *diverged* when the weights became NaN.
4. Held out: the chosen settings and the papers' on seeds ``100..100+--seeds-1``.

    PYTHONPATH=src python benchmarks/bench_controller_defaults.py [--seeds 5] [--jobs 2]

Writes bench_controller_defaults.json and bench_controller_defaults.png (best-so-far curves of
the chosen defaults, the papers' settings and random at both budgets) to ``--out`` (default
benchmarks/results). Runs are cached in bench_controller_defaults_runs.jsonl there, so a rerun
with more seeds or another choice rule only computes what is new (``--fresh`` starts over).
"""

from __future__ import annotations

import argparse
import functools
import itertools
import json
import math
import os
import platform
import sys
import time
from collections.abc import Callable, Iterable
from multiprocessing import get_context
from pathlib import Path
from typing import Any

import matplotlib

matplotlib.use("Agg")  # files only, no display
import matplotlib.pyplot as plt
import numpy as np
import torch
from rich.console import Console
from rich.table import Table

from nascli.spaces import NASNetSpace, SearchSpace
from nascli.strategies import build
from nascli.strategies.synthetic import AdditiveOps, GridSpace, HiddenTarget

OUT = Path(__file__).parent / "results"
BUDGETS = (100, 1000)

#: objective -> (space factory, objective factory, {budget: target noise-free score})
OBJECTIVES: dict[str, tuple[Callable[[], SearchSpace], Callable[..., Any], dict[int, float]]] = {
    "hidden_target": (lambda: GridSpace([4] * 20), HiddenTarget, {100: 0.6, 1000: 0.65}),
    "additive_ops": (NASNetSpace, AdditiveOps, {100: 0.68, 1000: 0.72}),
}

LRS = (0.00035, 0.001, 0.003, 0.01, 0.03)
BATCH_SIZES = (5, 10, 20)
TANH_CONSTANTS = (None, 1.5, 2.5)
STRATEGIES = ("ppo", "reinforce")

#: the papers' controller settings (NASNet's PPO; Zoph and Le's REINFORCE)
PAPER = {
    "ppo": {"lr": 0.00035, "batch_size": 20, "tanh_constant": None},
    "reinforce": {"lr": 0.0006, "batch_size": 20, "tanh_constant": None},
}

#: a run stops as collapsed once cached answers exceed 2 per evaluation (plus this slack)
COLLAPSE_SLACK = 100
HELD_OUT_START = 100
#: least fraction of random's evaluations to target a default must save in every cell
MIN_SAVING = 0.25

Setting = tuple[str, tuple[tuple[str, Any], ...]]  # (strategy, sorted options)


def setting(strategy: str, **options: Any) -> Setting:
    """A hashable (strategy, options) pair."""
    return strategy, tuple(sorted(options.items()))


def label(s: Setting) -> str:
    """Short text for a setting: ``ppo lr=0.01 bs=10 tanh=1.5``."""
    name, options = s
    o = dict(options)
    if not o:
        return name
    tanh = o.get("tanh_constant")
    return f"{name} lr={o['lr']:g} bs={o['batch_size']} tanh={'-' if tanh is None else tanh}"


@functools.cache
def _space(objective: str) -> SearchSpace:
    return OBJECTIVES[objective][0]()


def run_one(task: tuple[Setting, str, int, int]) -> dict[str, Any]:
    """One search: best noise-free score after each evaluation, and how the run ended.

    It ends early at the best possible score (1.0; the curve stays there), when the policy has
    collapsed, or when the controller's weights became NaN (torch refuses to sample).
    """
    (name, options), objective, seed, budget = task
    torch.set_num_threads(1)
    space = _space(objective)
    f = OBJECTIVES[objective][1](space, seed)
    s = build(name, space, seed, **dict(options))
    best: list[float] = []
    top, status = -math.inf, "ok"
    start = time.perf_counter()
    try:
        for n in range(1, budget + 1):
            g = s.ask()
            s.tell(g, f(g))
            top = max(top, f.true_score(g))
            best.append(top)
            if top >= 1.0 - 1e-9:
                status = "optimum"
                break
            if s.inner.num_told - n > 2 * n + COLLAPSE_SLACK:
                status = "collapsed"
                break
    except RuntimeError:  # a NaN policy: torch.multinomial refuses its probabilities
        status = "diverged"
    return {
        "best": best,
        "status": status,
        "budget": budget,
        "seconds": time.perf_counter() - start,
        "cached_answers": s.inner.num_told - len(best),
    }


def _key(s: Setting, objective: str, seed: int) -> str:
    return json.dumps([s[0], [list(kv) for kv in s[1]], objective, seed])


class Runs:
    """Runs by (setting, objective, seed), computed in parallel and cached in a JSON-lines file.

    A cached run to a larger budget answers a request for a smaller one.
    """

    def __init__(self, path: Path, jobs: int, fresh: bool) -> None:
        self.path, self.jobs = path, jobs
        self.runs: dict[str, dict[str, Any]] = {}
        if path.exists() and not fresh:
            for line in path.read_text().splitlines():
                r = json.loads(line)
                if r["budget"] >= self.runs.get(r["key"], {"budget": -1})["budget"]:
                    self.runs[r["key"]] = r
        elif fresh:
            path.unlink(missing_ok=True)
        self.computed_seconds = 0.0

    def need(self, settings: Iterable[Setting], seeds: Iterable[int], budget: int) -> None:
        """Compute the runs that the cache does not hold to ``budget``."""
        todo = []
        for s, objective, seed in itertools.product(settings, OBJECTIVES, seeds):
            r = self.runs.get(_key(s, objective, seed))
            if r is None or r["budget"] < budget:
                todo.append((s, objective, seed, budget))
        if not todo:
            return
        start = time.perf_counter()
        # random runs are cheap; the controllers with small batches cost most
        todo.sort(key=lambda t: (t[0][0] == "random", dict(t[0][1]).get("batch_size", 99)))
        with (
            get_context("spawn").Pool(self.jobs, initializer=_worker_init) as pool,
            self.path.open("a") as log,
        ):
            for k, (task, r) in enumerate(pool.imap_unordered(_run_task, todo), 1):
                s, objective, seed, _ = task
                r["key"] = _key(s, objective, seed)
                self.runs[r["key"]] = r
                log.write(json.dumps(r) + "\n")
                log.flush()
                if k % 20 == 0 or k == len(todo):
                    print(f"{k}/{len(todo)} runs, {time.perf_counter() - start:.0f} s",
                          file=sys.stderr, flush=True)
        self.computed_seconds += time.perf_counter() - start

    def get(self, s: Setting, objective: str, seed: int) -> dict[str, Any]:
        """The cached run."""
        return self.runs[_key(s, objective, seed)]


def _worker_init() -> None:
    os.environ["OMP_NUM_THREADS"] = "1"
    torch.set_num_threads(1)


def _run_task(task: tuple[Setting, str, int, int]) -> tuple[tuple, dict[str, Any]]:
    return task, run_one(task)


def curve(run: dict[str, Any], budget: int) -> tuple[np.ndarray, bool]:
    """Best-so-far over ``budget`` evaluations, and whether the run is valid that far."""
    best = run["best"][:budget]
    if len(best) == budget:
        return np.array(best), True
    if run["status"] == "optimum":  # nothing beats the optimum: the curve stays there
        return np.array(best + [best[-1]] * (budget - len(best))), True
    pad = best[-1] if best else 0.0
    return np.array(best + [pad] * (budget - len(best))), False


def cell(runs: Runs, s: Setting, objective: str, seeds: Iterable[int], budget: int) -> dict:
    """Mean evaluations to the target, final best, and validity over seeds at one budget."""
    target = OBJECTIVES[objective][2][budget]
    reach, final, invalid, seconds = [], [], 0, 0.0
    for seed in seeds:
        run = runs.get(s, objective, seed)
        c, valid = curve(run, budget)
        hits = np.flatnonzero(c >= target)
        reach.append(int(hits[0]) + 1 if hits.size else budget + 1)
        final.append(float(c[-1]))
        invalid += not valid
        seconds += run["seconds"] * min(1.0, budget / max(1, len(run["best"])))
    n = len(reach)
    return {
        "evaluations_to_target": float(np.mean(reach)),
        "reached": int(sum(r <= budget for r in reach)),
        "final_best": float(np.mean(final)),
        "final_best_std": float(np.std(final)),
        "invalid_runs": invalid,
        "seconds_per_run": seconds / n,
        "seeds": n,
    }


def summary(runs: Runs, s: Setting, seeds: list[int], budgets: Iterable[int]) -> dict:
    """``cell`` for each objective and budget, keyed ``objective@budget``."""
    return {f"{o}@{b}": cell(runs, s, o, seeds, b) for b in budgets for o in OBJECTIVES}


def worst_ratio(ours: dict, rand: dict) -> float:
    """Largest mean-evaluations ratio to random over the cells; inf if any run is invalid."""
    if any(c["invalid_runs"] for c in ours.values()):
        return math.inf
    return max(
        c["evaluations_to_target"] / rand[k]["evaluations_to_target"] for k, c in ours.items()
    )


def mean_final(ours: dict, budget: int) -> float:
    """Mean final best over the objectives at ``budget``."""
    return float(np.mean([c["final_best"] for k, c in ours.items() if k.endswith(f"@{budget}")]))


def quality(ours: dict) -> float:
    """Mean final best over all cells (objectives x budgets)."""
    return float(np.mean([c["final_best"] for c in ours.values()]))


def grid() -> list[Setting]:
    """Every screened setting of both strategies."""
    return [
        setting(name, lr=lr, batch_size=bs, tanh_constant=tanh)
        for name, lr, bs, tanh in itertools.product(STRATEGIES, LRS, BATCH_SIZES, TANH_CONSTANTS)
    ]


def pair_of(s: Setting) -> tuple[int, float | None]:
    """The shared part of a controller setting: (batch_size, tanh_constant)."""
    o = dict(s[1])
    return o["batch_size"], o["tanh_constant"]


def fmt_ratio(x: float) -> str:
    """A ratio as a signed percentage of fewer evaluations, or "collapsed"."""
    return "invalid" if math.isinf(x) else f"{1 - x:+.0%}"


def stage1_table(rows: list[tuple[Setting, dict, float]], seeds: int, base: dict) -> Table:
    """The screen at budget 100, best first."""
    b = BUDGETS[0]
    rand = ", ".join(f"{o} {base[f'{o}@{b}']['evaluations_to_target']:.1f}" for o in OBJECTIVES)
    table = Table(
        title=f"stage 1, budget {b}: mean evaluations to target over {seeds} seeds "
        f"({b + 1} = never; random: {rand}); 'fewer' = worse objective vs random"
    )
    for col in ("setting", "hidden_target", "additive_ops", "fewer", "invalid", "s/run"):
        table.add_column(col, justify="left" if col == "setting" else "right")
    for s, summ, ratio in rows:
        cells = [summ[f"{o}@{b}"] for o in OBJECTIVES]
        table.add_row(
            label(s),
            *(f"{c['evaluations_to_target']:.1f}" for c in cells),
            fmt_ratio(ratio),
            str(sum(c["invalid_runs"] for c in cells)),
            f"{np.mean([c['seconds_per_run'] for c in cells]):.2f}",
        )
    return table


def budget_table(title: str, rows: list[tuple[str, dict, float]]) -> Table:
    """Evaluations to target and final best per cell, worst saving against random."""
    short = {"hidden_target": "HT", "additive_ops": "AO"}
    targets = ", ".join(f"{short[o]}@{b} >= {OBJECTIVES[o][2][b]}" for b in BUDGETS
                        for o in OBJECTIVES)
    table = Table(title=f"{title}\nmean evaluations to target ({targets}; budget + 1 = never), "
                  "mean final best, fewest evaluations saved against random over the cells")
    table.add_column("setting", no_wrap=True)
    cells = [(o, b) for b in BUDGETS for o in OBJECTIVES]
    for o, b in cells:
        table.add_column(f"{short[o]}@{b}", justify="right")
    for o, b in cells:
        table.add_column(f"best {short[o]}@{b}", justify="right")
    table.add_column("quality", justify="right")
    table.add_column("fewer (worst)", justify="right")
    table.add_column("invalid", justify="right")
    table.add_column(f"s/run @{BUDGETS[-1]}", justify="right")
    for name, summ, ratio in rows:
        table.add_row(
            name,
            *(f"{summ[f'{o}@{b}']['evaluations_to_target']:.1f}" for o, b in cells),
            *(f"{summ[f'{o}@{b}']['final_best']:.3f}" for o, b in cells),
            f"{quality(summ):.3f}",
            fmt_ratio(ratio),
            str(sum(summ[f"{o}@{b}"]["invalid_runs"] for o, b in cells)),
            f"{np.mean([summ[f'{o}@{BUDGETS[-1]}']['seconds_per_run'] for o in OBJECTIVES]):.1f}",
        )
    return table


def plot(runs: Runs, lines: dict[str, tuple[Setting, list[int]]], path: Path) -> None:
    """Mean best-so-far (interquartile band) per line, objectives x budgets."""
    fig, axes = plt.subplots(2, 2, figsize=(9, 6.2))
    styles = {"random": ("0.4", "-"), "ppo": ("C0", "-"), "ppo paper": ("C0", "--"),
              "reinforce": ("C3", "-"), "reinforce paper": ("C3", "--")}
    for row, objective in enumerate(OBJECTIVES):
        for col, budget in enumerate(BUDGETS):
            ax = axes[row, col]
            x = np.arange(1, budget + 1)
            for name, (s, seeds) in lines.items():
                c = np.array([curve(runs.get(s, objective, seed), budget)[0] for seed in seeds])
                color, ls = styles.get(name, ("k", ":"))
                o = dict(s[1])
                text = f": lr {o['lr']:g}, batch {o['batch_size']}, tanh {o['tanh_constant']}" \
                    if o else ""
                ax.plot(x, c.mean(0), color=color, ls=ls, lw=1.4, label=f"{name}{text}")
                ax.fill_between(x, *np.quantile(c, [0.25, 0.75], axis=0), color=color,
                                alpha=0.12, lw=0)
            ax.axhline(OBJECTIVES[objective][2][budget], color="k", lw=0.6, ls=":")
            ax.set_title(f"{objective}, budget {budget}", fontsize=10)
            ax.grid(alpha=0.3)
            if row == 1:
                ax.set_xlabel("evaluations")
            if col == 0:
                ax.set_ylabel("best noise-free score")
    axes[0, 0].legend(loc="lower right", fontsize=7)
    rand = len(lines["random"][1]) if "random" in lines else 0
    others = max((len(seeds) for name, (_, seeds) in lines.items() if name != "random"),
                 default=0)
    fig.suptitle(f"best score so far, mean and quartiles (random {rand} seeds, controllers "
                 f"{others}); dotted: target", fontsize=10)
    fig.tight_layout()
    fig.savefig(path, dpi=80)
    plt.close(fig)


def pick(settings: Iterable[Setting], ratio: dict[Setting, float], summ: dict) -> Setting | None:
    """The eligible setting (saves ``MIN_SAVING`` everywhere, no invalid run) of best quality."""
    eligible = [s for s in settings if ratio[s] <= 1 - MIN_SAVING]
    return max(eligible, key=lambda s: quality(summ[s]), default=None)


def _arguments() -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--seeds", type=int, default=5, help="controller seeds per stage")
    parser.add_argument("--random-seeds", type=int, default=100, help="seeds of the baseline")
    parser.add_argument("--pairs", type=int, default=3, help="(batch, tanh) pairs to budget 1000")
    parser.add_argument("--lrs", type=int, default=2, help="learning rates per pair and strategy")
    parser.add_argument("--jobs", type=int, default=2, help="worker processes")
    parser.add_argument("--out", type=Path, default=OUT, help="folder for JSON, PNG and cache")
    parser.add_argument("--fresh", action="store_true", help="ignore cached runs")
    return parser.parse_args()


def _screen(runs: Runs, seeds: list[int], base: dict, console: Console, n: int) -> tuple:
    """Stage 1: every setting of the grid at budget 100."""
    candidates = grid()
    runs.need(candidates, seeds, BUDGETS[0])
    screen = {s: summary(runs, s, seeds, BUDGETS[:1]) for s in candidates}
    ratio1 = {s: worst_ratio(summ, base) for s, summ in screen.items()}
    rows = sorted(((s, screen[s], ratio1[s]) for s in candidates), key=lambda r: (r[0][0], r[2]))
    console.print(stage1_table(rows, n, base))
    return candidates, screen, ratio1


def _finalists(args: argparse.Namespace, runs: Runs, stage1: tuple, papers: dict,
               seeds: list[int], base: dict, console: Console) -> tuple:
    """Stages 2 and 3: the best (batch, tanh) pairs, each strategy's best learning rates in
    them, to budget 1000; then the choice (each strategy's best eligible lr in a pair; the
    pair whose worse strategy is best)."""
    candidates, screen, ratio1 = stage1
    by_pair: dict[tuple, dict[str, list[Setting]]] = {}
    for s in candidates:
        by_pair.setdefault(pair_of(s), {}).setdefault(s[0], []).append(s)
    for strategies in by_pair.values():
        for group in strategies.values():
            group.sort(key=lambda s: (ratio1[s], -mean_final(screen[s], BUDGETS[0])))
    pairs = sorted(by_pair, key=lambda p: max(ratio1[by_pair[p][n][0]] for n in STRATEGIES))
    pairs = pairs[: args.pairs]
    finalists = [s for p in pairs for name in STRATEGIES for s in by_pair[p][name][: args.lrs]]
    runs.need([*papers.values(), *finalists], seeds, BUDGETS[-1])
    final = {s: summary(runs, s, seeds, BUDGETS) for s in [*papers.values(), *finalists]}
    ratio2 = {s: worst_ratio(summ, base) for s, summ in final.items()}
    rows2 = [(f"random ({args.random_seeds} seeds)", base, 1.0)]
    rows2 += [(f"{label(s)} (paper)", final[s], ratio2[s]) for s in papers.values()]
    rows2 += [(label(s), final[s], ratio2[s]) for s in finalists]
    console.print(budget_table(f"stage 2: controllers on seeds 0-{args.seeds - 1}", rows2))
    picks = {p: {name: pick([s for s in finalists if pair_of(s) == p and s[0] == name],
                            ratio2, final) for name in STRATEGIES} for p in pairs}
    complete = [p for p in pairs if None not in picks[p].values()]
    if not complete:
        raise SystemExit(f"no pair has an eligible setting for both strategies: "
                         f"none saves {MIN_SAVING:.0%} everywhere without collapsing")
    pair = max(complete, key=lambda p: min(quality(final[s]) for s in picks[p].values()))
    return picks[pair], final, ratio2


def _held_out(args: argparse.Namespace, runs: Runs, controllers: dict, seeds: list[int],
              held_out: list[int], base: dict, console: Console) -> tuple[dict, dict]:
    """Stage 4: the chosen and the papers' settings on held-out seeds, then on all seeds."""
    runs.need(controllers.values(), held_out, BUDGETS[-1])
    out = []
    for title, which in ((f"held out: seeds {held_out[0]}-{held_out[-1]}", held_out),
                         (f"all {len(seeds) + len(held_out)} seeds", seeds + held_out)):
        results = {k: summary(runs, s, which, BUDGETS) for k, s in controllers.items()}
        rows = [(f"random ({args.random_seeds} seeds)", base, 1.0)]
        rows += [(f"{k}: {label(s).split(' ', 1)[1]}", results[k], worst_ratio(results[k], base))
                 for k, s in controllers.items()]
        console.print(budget_table(title, rows))
        out.append(results)
    return out[0], out[1]


def main() -> None:
    """Run the sweep, print the tables, write JSON and the plot."""
    args = _arguments()
    out: Path = args.out
    out.mkdir(parents=True, exist_ok=True)
    console = Console(width=170)  # tables stay whole when output is not a terminal
    runs = Runs(out / "bench_controller_defaults_runs.jsonl", args.jobs, args.fresh)
    seeds = list(range(args.seeds))
    held_out = list(range(HELD_OUT_START, HELD_OUT_START + args.seeds))
    rand, rand_seeds = setting("random"), list(range(args.random_seeds))
    papers = {name: setting(name, **o) for name, o in PAPER.items()}
    seconds: dict[str, float] = {}

    # the baseline: random search's distribution does not depend on the seed, so many seeds
    t0 = time.perf_counter()
    runs.need([rand], rand_seeds, BUDGETS[-1])
    base = summary(runs, rand, rand_seeds, BUDGETS)
    seconds["random"], t0 = time.perf_counter() - t0, time.perf_counter()
    stage1 = _screen(runs, seeds, base, console, args.seeds)
    seconds["screen"], t0 = time.perf_counter() - t0, time.perf_counter()
    chosen, final, ratio2 = _finalists(args, runs, stage1, papers, seeds, base, console)
    seconds["finalists"], t0 = time.perf_counter() - t0, time.perf_counter()
    lines = {"random": rand}
    for name in STRATEGIES:
        lines[name] = chosen[name]
        lines[f"{name} paper"] = papers[name]
    controllers = {k: s for k, s in lines.items() if k != "random"}
    held, overall = _held_out(args, runs, controllers, seeds, held_out, base, console)
    seconds["held_out"] = time.perf_counter() - t0

    png = out / "bench_controller_defaults.png"
    plot(runs, {k: (s, rand_seeds if k == "random" else seeds + held_out)
                for k, s in lines.items()}, png)
    candidates, screen, ratio1 = stage1
    report = {
        "budgets": list(BUDGETS),
        "targets": {o: {str(b): t for b, t in v[2].items()} for o, v in OBJECTIVES.items()},
        "seeds": seeds,
        "held_out_seeds": held_out,
        "random_seeds": len(rand_seeds),
        "grid": {"lr": LRS, "batch_size": BATCH_SIZES, "tanh_constant": TANH_CONSTANTS},
        "random": base,
        "screen": [{"setting": label(s), "strategy": s[0], "options": dict(s[1]),
                    "worst_ratio": ratio1[s], **screen[s]} for s in candidates],
        "finalists": [{"setting": label(s), "strategy": s[0], "options": dict(s[1]),
                       "worst_ratio": ratio2[s], **final[s]} for s in final],
        "chosen": {name: dict(s[1]) for name, s in chosen.items()},
        "held_out": held,
        "all_seeds": overall,
        "seconds": {**seconds, "computed": runs.computed_seconds},
        "machine": {"python": platform.python_version(), "torch": torch.__version__,
                    "jobs": args.jobs, "cpus": os.cpu_count()},
    }
    (out / "bench_controller_defaults.json").write_text(json.dumps(report, indent=1))
    for name, s in chosen.items():
        console.print(f"chosen {name}: {dict(s[1])}")
    console.print(f"seconds: { {k: round(v) for k, v in seconds.items()} }, "
                  f"computing runs: {runs.computed_seconds:.0f}")
    console.print(f"plot: {png}\nresults: {out / 'bench_controller_defaults.json'}")


if __name__ == "__main__":
    main()
