"""Which cheap training fidelity ranks architectures most like a longer training, per second?
(issue 14)

    python benchmarks/bench_fidelity.py [--cells 16] [--seed 0] [--only NAME ...]
    python benchmarks/bench_fidelity.py --timing 3    # relative times, all under the same load
    python benchmarks/bench_fidelity.py --table       # the saved results again

``--cells`` random cells of the default search space (drawn as ``nascli correlate`` draws them:
the random strategy with ``--seed``) on the embedded mnist5k data. Each cell is trained by the
reference (``nascli correlate reference.epochs=3 reference.data_fraction=1.0``: 3 epochs on the
whole train split, the search recipe otherwise) and by every cheap fidelity of the grid (the
search's train-and-test estimator with a few ``proxy.*`` overrides), each with the cell's seed
(``seed + i``, as a search seeds it). The estimators are nascli's own: the config is composed
from configs/correlate.yaml, the reference built by ``nascli.commands.correlate``, the cheap
ones as a search builds its estimator. Cells run one after another, every fidelity on a cell
before the next cell, so a CPU that other jobs slow down slows every fidelity alike.

Per fidelity: Spearman's rho and Kendall's tau against the reference's accuracy, the mean
seconds per candidate, and rho per second; a bootstrap interval (cells resampled) of rho and
of its difference to the default's, and rho and tau among the "good" cells (reference
accuracy >= 0.9), whose ranking is the hard part. Passes run at different times see different
loads on a shared CPU, so ``--timing N`` times every measured fidelity again on N cells, one
after another, and the table's seconds become the default's mean times each fidelity's time
relative to the default in that pass. Every evaluation is saved as it finishes in
benchmarks/results/bench_fidelity.json, and a rerun reuses the saved ones (same cell, seed and
options), so a stopped run continues and fidelities can be added later (``--only``).
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import time
import warnings
from pathlib import Path
from typing import Any

from rich.console import Console
from rich.table import Table

from nascli.commands.common import build_device, build_estimator, build_space, load_data
from nascli.commands.correlate import build_reference, rank_correlations
from nascli.config import config_dir

OUT = Path(__file__).parent / "results" / "bench_fidelity.json"
REFERENCE = ["reference.epochs=3", "reference.data_fraction=1.0"]
BASE = ["device=cpu", "progress=off"]
#: name -> proxy overrides. One factor at a time around the default (1 epoch on half the train
#: split: 25 steps of 64 on mnist5k, lr 0.2, BatchNorm recalibrated on 8 batches), then a few
#: combinations; FIRST_PASS is what a run without --only trains (about 36 min on 2 busy cores)
FIDELITIES: dict[str, list[str]] = {
    "default (25 steps)": [],
    "8 steps": ["proxy.max_steps=8"],
    "16 steps": ["proxy.max_steps=16"],
    "data 0.25 (12 steps)": ["proxy.data_fraction=0.25"],
    "data 1.0 (50 steps)": ["proxy.data_fraction=1.0"],
    "lr 0.1": ["proxy.lr=0.1"],
    "no BN recalibration": ["proxy.bn_recalibration_batches=0"],
    # not in the first pass (--only NAME ...)
    "lr 0.05": ["proxy.lr=0.05"],
    "2 epochs (50 steps)": ["proxy.epochs=2"],
    "data 1.0, 25 steps": ["proxy.data_fraction=1.0", "proxy.max_steps=25"],
    "data 0.25 x 2 epochs (24 steps)": ["proxy.data_fraction=0.25", "proxy.epochs=2"],
    "data 0.25, lr 0.1 (12 steps)": ["proxy.data_fraction=0.25", "proxy.lr=0.1"],
    "16 steps, lr 0.1": ["proxy.max_steps=16", "proxy.lr=0.1"],
    "data 1.0, 16 steps": ["proxy.data_fraction=1.0", "proxy.max_steps=16"],
    "data 1.0, 16 steps, no BN": ["proxy.data_fraction=1.0", "proxy.max_steps=16",
                                  "proxy.bn_recalibration_batches=0"],
    "12 steps": ["proxy.max_steps=12"],
}
FIRST_PASS = list(FIDELITIES)[:7]
DEFAULT = "default (25 steps)"
#: "good" cells: reference accuracy at least this (ranking them is the hard part)
GOOD = 0.9


def compose(overrides: list[str]) -> Any:
    """The config ``nascli correlate OVERRIDES`` would run with."""
    from hydra import compose as hydra_compose
    from hydra import initialize_config_dir

    with initialize_config_dir(config_dir=str(config_dir()), version_base=None):
        return hydra_compose("correlate", overrides=[*BASE, *overrides])


def sample_cells(space: Any, n: int, seed: int) -> list[Any]:
    """The first ``n`` architectures the random strategy of ``nascli correlate seed=SEED``
    draws."""
    from nascli.strategies import build

    strategy = build("random", space, seed)
    return [strategy.ask() for _ in range(n)]


class Store:
    """Evaluations by (fidelity options, cell hash, seed), saved to ``OUT`` as they finish."""

    def __init__(self, path: Path) -> None:
        self.path = path
        old = json.loads(path.read_text()) if path.is_file() else {}
        self.records: list[dict[str, Any]] = old.get("records", [])
        self.timing: dict[str, Any] | None = old.get("timing")
        self.index = {self._key(r["options"], r["hash"], r["seed"]): r for r in self.records}

    @staticmethod
    def _key(options: dict[str, Any], cell: str, seed: int) -> str:
        return json.dumps([options, cell, seed], sort_keys=True)

    def get(self, options: dict[str, Any], cell: str, seed: int) -> dict[str, Any] | None:
        """The saved evaluation, if any."""
        return self.index.get(self._key(options, cell, seed))

    def add(self, record: dict[str, Any]) -> None:
        """Remember one evaluation (saved with the next :meth:`save`)."""
        self.records.append(record)
        self.index[self._key(record["options"], record["hash"], record["seed"])] = record

    def save(self, summary: dict[str, Any]) -> None:
        """The summary and every evaluation, atomically."""
        self.path.parent.mkdir(parents=True, exist_ok=True)
        tmp = self.path.with_suffix(".tmp")
        tmp.write_text(json.dumps({**summary, "timing": self.timing, "records": self.records},
                                  indent=1) + "\n")
        os.replace(tmp, self.path)


def evaluate(store: Store, name: str, estimator: Any, space: Any, cell: Any,
             seed: int) -> dict[str, Any]:
    """One cell by one estimator (or its saved evaluation)."""
    options, cell_hash = estimator.options(), space.hash(cell)
    saved = store.get(options, cell_hash, seed)
    if saved is not None:
        return saved
    est = estimator(cell, seed=seed)
    record = {"fidelity": name, "options": options, "hash": cell_hash, "seed": seed,
              "score": est.score if est.ok else None, "seconds": est.seconds,
              "steps": est.metrics.get("steps"), "error": est.error}
    store.add(record)
    return record


def summarize(names: list[str], rows: dict[str, dict[int, dict[str, Any]]],
              timing: dict[str, Any] | None = None) -> dict[str, Any]:
    """Per fidelity: correlations with the reference (over the cells both scored), a bootstrap
    interval of Spearman's rho and of its difference to the default's, seconds and steps per
    candidate. With a ``--timing`` pass, seconds are the default's measured mean times the
    fidelity's time relative to the default in that pass (every fidelity timed under the same
    load), and the mean measured beside the correlations is ``seconds_measured``."""
    reference = rows["reference"]
    base = rows.get(DEFAULT, {})
    base_seconds = sum(r["seconds"] for r in base.values()) / len(base) if base else None
    out = {}
    for name in names:
        done = {i: r for i, r in rows.get(name, {}).items() if i in reference}
        if not done:
            continue
        corr = rank_correlations([r["score"] for r in done.values()],
                                 [reference[i]["score"] for i in done])
        measured = sum(r["seconds"] for r in done.values()) / len(done)
        ratio = (timing or {}).get("relative", {}).get(name)
        seconds = ratio * base_seconds if ratio and base_seconds else measured
        steps = [r["steps"] for r in done.values() if r["steps"] is not None]
        good = [i for i in done if (reference[i]["score"] or 0.0) >= GOOD]
        among = rank_correlations([done[i]["score"] for i in good],
                                  [reference[i]["score"] for i in good])
        out[name] = {"overrides": FIDELITIES[name], **corr, **bootstrap(rows, name),
                     "good": {"threshold": GOOD, **among},
                     "seconds": seconds, "seconds_measured": measured,
                     "steps": sum(steps) / len(steps) if steps else None,
                     "rho_per_second": (corr["spearman"] / seconds
                                        if corr["spearman"] is not None and seconds else None)}
    return out


def bootstrap(rows: dict[str, dict[int, dict[str, Any]]], name: str, reps: int = 1000
              ) -> dict[str, Any]:
    """90% bootstrap intervals (cells resampled) of Spearman's rho against the reference and
    of its difference to the default fidelity's rho on the same resampled cells."""
    import numpy as np
    from scipy.stats import spearmanr

    ref, mine, base = rows["reference"], rows.get(name, {}), rows.get(DEFAULT, {})
    cells = [i for i in ref if i in mine and i in base and None not in (
        ref[i]["score"], mine[i]["score"], base[i]["score"])]
    if len(cells) < 5:
        return {}
    r, x, d = (np.array([rows_[i]["score"] for i in cells]) for rows_ in (ref, mine, base))
    rng = np.random.default_rng(0)
    rho, delta = [], []
    for _ in range(reps):
        idx = rng.integers(0, len(cells), len(cells))
        with np.errstate(all="ignore"), warnings.catch_warnings():
            warnings.simplefilter("ignore")  # a resample of tied scores has no rho (nan)
            a, b = spearmanr(x[idx], r[idx])[0], spearmanr(d[idx], r[idx])[0]
        rho.append(a)
        delta.append(a - b)
    return {"spearman_ci": [float(v) for v in np.nanpercentile(rho, [5, 95])],
            "delta_default": float(spearmanr(x, r)[0] - spearmanr(d, r)[0]),
            "delta_default_ci": [float(v) for v in np.nanpercentile(delta, [5, 95])]}


def rows_from_records(records: list[dict[str, Any]]) -> dict[str, dict[int, dict[str, Any]]]:
    """Saved evaluations by fidelity and cell (the cells in the reference's order)."""
    refs = [r for r in records if r["fidelity"] == "reference"]
    where = {(r["hash"], r["seed"]): i for i, r in enumerate(refs)}
    rows: dict[str, dict[int, dict[str, Any]]] = {"reference": dict(enumerate(refs))}
    for r in records:
        if r["fidelity"] != "reference" and (r["hash"], r["seed"]) in where:
            rows.setdefault(r["fidelity"], {})[where[(r["hash"], r["seed"])]] = r
    return rows


def table(summary: dict[str, Any]) -> Table:
    """The fidelity table: correlations, time per candidate, rho per second."""
    ref = summary["reference"]
    t = Table(title=f"cheap fidelity vs reference ({' '.join(ref['overrides'])}: "
                    f"{ref['seconds']:.1f} s/candidate): {summary['cells']} cells of "
                    f"{summary['dataset']}, seed {summary['seed']}",
              caption=_timing_note(summary) + "90% CI: bootstrap over cells; d rho: Spearman "
                      f"minus the default's on the same cells; rho/tau >={GOOD}: among the "
                      f"cells the reference scores >= {GOOD}; x default: time per candidate "
                      "relative to the default; rho/s: Spearman per second")
    for col in ("fidelity", "steps", "Spearman", "90% CI", "Kendall", "d rho (90% CI)", "n",
                f"rho >={GOOD}", f"tau >={GOOD}", "s/candidate", "x default", "rho/s"):
        t.add_column(col, justify="left" if col == "fidelity" else "right")
    default = summary["fidelities"].get(DEFAULT, {}).get("seconds")
    for name, r in summary["fidelities"].items():
        t.add_row(name, _num(r["steps"], "{:.0f}"), _num(r["spearman"], "{:+.3f}"),
                  _interval(r.get("spearman_ci")), _num(r["kendall"], "{:+.3f}"),
                  _delta(r), str(r["n"]), _num(r.get("good", {}).get("spearman"), "{:+.3f}"),
                  _num(r.get("good", {}).get("kendall"), "{:+.3f}"), f"{r['seconds']:.2f}",
                  _num(r["seconds"] / default if default else None, "{:.2f}"),
                  _num(r["rho_per_second"], "{:.3f}"))
    return t


def _timing_note(summary: dict[str, Any]) -> str:
    timing = summary.get("timing")
    if not timing:
        return ""
    return (f"s/candidate: the default's mean times each fidelity's time relative to the "
            f"default, all timed on the same {timing['cells']} cells one after another; ")


def _interval(ci: list[float] | None) -> str:
    return "-" if not ci else f"{ci[0]:+.2f}..{ci[1]:+.2f}"


def _delta(r: dict[str, Any]) -> str:
    if "delta_default" not in r:
        return "-"
    return f"{r['delta_default']:+.2f} ({_interval(r['delta_default_ci'])})"


def _num(value: float | None, fmt: str) -> str:
    return "-" if value is None else fmt.format(value)


def build(args: argparse.Namespace) -> tuple[Any, list[Any], dict[str, Any], str]:
    """The space, the cells, the estimators (reference first) and the data set's name."""
    cfg = compose(REFERENCE)
    space = build_space(cfg)
    settings, device = build_device(cfg)
    data = load_data(cfg, args.seed)
    built = (space, data, settings, device)
    reference, _ = build_reference(cfg, built, args.seed)
    estimators = {"reference": reference}
    for name, overrides in FIDELITIES.items():
        node = compose(overrides)
        estimators[name] = build_estimator(node, space, data, settings, device, args.seed)
    return space, sample_cells(space, args.cells, args.seed), estimators, data.name


def run(args: argparse.Namespace, console: Console) -> dict[str, Any]:
    """Train every cell with the reference and each fidelity (those not in ``--only``: only
    what is saved); returns the summary."""
    space, cells, estimators, dataset = build(args)
    chosen = {"reference", *(args.only or FIRST_PASS)}
    unknown = chosen - set(estimators)
    if unknown:
        raise SystemExit(f"unknown fidelity {sorted(unknown)[0]!r}; valid: {', '.join(FIDELITIES)}")
    estimators["8 steps"](space.sample(args.seed + 10_000), seed=args.seed)  # warm-up, untimed
    store = Store(OUT)
    rows: dict[str, dict[int, dict[str, Any]]] = {n: {} for n in estimators}
    t0 = time.perf_counter()
    summary: dict[str, Any] = {}
    for i, cell in enumerate(cells):
        for name, estimator in estimators.items():
            seed = args.seed + i
            record = store.get(estimator.options(), space.hash(cell), seed)
            if record is None and name in chosen:
                record = evaluate(store, name, estimator, space, cell, seed)
            if record is not None:
                rows[name][i] = record
        ref = rows["reference"][i]
        summary = {"cells": i + 1, "seed": args.seed, "dataset": dataset,
                   "machine": {"cpus": os.cpu_count(), "python": platform.python_version(),
                               "load_average": os.getloadavg()},
                   "reference": {"overrides": REFERENCE, "options": ref["options"],
                                 "seconds": sum(r["seconds"] for r in rows["reference"].values())
                                 / (i + 1),
                                 "scores": [r["score"] for r in rows["reference"].values()]},
                   "fidelities": summarize(list(FIDELITIES), rows, store.timing),
                   "wall_seconds": time.perf_counter() - t0}
        store.save(summary)
        console.print(f"cell {i + 1}/{len(cells)} done ({summary['wall_seconds']:.0f} s): "
                      f"reference accuracy {ref['score']}")
    return summary


def timing_pass(args: argparse.Namespace, console: Console) -> None:
    """Every fidelity with saved evaluations on the first ``--timing`` cells, cell by cell
    (the same load for all): the seconds of each relative to the default's, saved beside the
    evaluations."""
    space, cells, estimators, _ = build(args)
    store = Store(OUT)
    measured = {r["fidelity"] for r in store.records}  # those with correlations to time
    estimators = {n: e for n, e in estimators.items() if n in measured and n != "reference"}
    estimators[DEFAULT](space.sample(args.seed + 10_000), seed=args.seed)  # warm-up, untimed
    seconds: dict[str, list[float]] = {n: [] for n in estimators}
    for i, cell in enumerate(cells[:args.timing]):
        for name, estimator in estimators.items():
            seconds[name].append(estimator(cell, seed=args.seed + i).seconds)
        console.print(f"timing: cell {i + 1}/{args.timing} done")
    base = sum(seconds[DEFAULT])
    store.timing = {"cells": args.timing, "load_average": os.getloadavg(),
                    "seconds": {n: sum(v) / len(v) for n, v in seconds.items()},
                    "relative": {n: sum(v) / base for n, v in seconds.items()}}
    saved = json.loads(OUT.read_text()) if OUT.is_file() else {}
    store.save({k: v for k, v in saved.items() if k not in ("records", "timing")})


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--cells", type=int, default=16)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--only", nargs="*", help="fidelities to train (names of FIDELITIES; "
                        "default: FIRST_PASS); the others show what is saved")
    parser.add_argument("--table", action="store_true", help="print the saved table and stop")
    parser.add_argument("--timing", type=int, default=0, metavar="CELLS",
                        help="time every fidelity on the first CELLS cells, one after another "
                        "(the same load for all), for the relative times of the table")
    args = parser.parse_args()
    console = Console(width=180)
    if args.timing:
        timing_pass(args, console)
    if args.table or args.timing:  # the saved evaluations, summarized again
        summary = json.loads(OUT.read_text())
        summary["fidelities"] = summarize(list(FIDELITIES), rows_from_records(summary["records"]),
                                          summary.get("timing"))
    else:
        summary = run(args, console)
        print(f"wrote {OUT}")
    console.print(table(summary))


if __name__ == "__main__":
    main()
