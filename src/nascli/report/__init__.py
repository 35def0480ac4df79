"""``nascli report``: tables and plots for one run or many.

For each run: the top candidates. Across runs: best-so-far curves per strategy (mean and
min-max band over seeds), a params-vs-score scatter with its Pareto front, and a cell diagram
of the overall best genotype. Everything is written to ``--out`` (default: the first run).
"""

from __future__ import annotations

import json
from collections import defaultdict
from pathlib import Path
from typing import Any

import numpy as np
from rich.table import Table

from nascli.engine.console import console
from nascli.engine.rundir import HISTORY, MANIFEST, read_history, read_json_object
from nascli.report import oneshot
from nascli.report.diagram import draw_genotype


class ReportError(ValueError):
    """No run to report on."""


def find_runs(paths: list[Path]) -> list[Path]:
    """Run directories under ``paths`` (a run dir, or a multirun folder of them)."""
    runs: list[Path] = []
    for p in paths:
        p = Path(p).expanduser()
        if not p.exists():
            raise ReportError(f"{p}: no such directory")
        if (p / HISTORY).is_file():
            runs.append(p)
        else:
            runs.extend(sorted(h.parent for h in p.rglob(HISTORY)))
    if not runs:
        raise ReportError(f"no run directory with {HISTORY} under {', '.join(map(str, paths))}")
    return runs


def pareto_front(points: list[tuple[float, float]]) -> list[int]:
    """Indices of points not dominated (lower cost and higher score), by increasing cost."""
    order = sorted(range(len(points)), key=lambda i: (points[i][0], -points[i][1]))
    front, best = [], -np.inf
    for i in order:
        if points[i][1] > best:
            front.append(i)
            best = points[i][1]
    return front


def best_so_far(history: list[dict[str, Any]]) -> np.ndarray:
    """Best finished score after each evaluation (NaN before the first success)."""
    out, best = [], -np.inf
    for row in sorted(history, key=lambda r: r["id"]):
        if row["status"] == "ok":
            best = max(best, row["score"])
        out.append(best if np.isfinite(best) else np.nan)
    return np.array(out, dtype=float)


def _label(run: Path) -> str:
    m = read_json_object(run / MANIFEST)
    if m:
        return f"{m.get('strategy', '?')}/{m.get('proxy', '?')}"
    return run.name


def make_report(paths: list[Path], out: Path | None = None) -> dict[str, Any]:
    """Write the report for the runs under ``paths``; returns a summary dict."""
    import matplotlib

    matplotlib.use("Agg")

    runs = find_runs(paths)
    out = Path(out) if out else runs[0] if len(runs) == 1 else Path(paths[0])
    out.mkdir(parents=True, exist_ok=True)
    curves: dict[str, list[np.ndarray]] = defaultdict(list)
    summary: dict[str, Any] = {"runs": []}
    all_rows = []
    for run in runs:
        rows = read_history(run / HISTORY)
        label = _label(run)
        curves[label].append(best_so_far(rows))
        ok = sorted((r for r in rows if r["status"] == "ok"), key=lambda r: -r["score"])
        all_rows += [(run, r) for r in ok]
        summary["runs"].append({"run": str(run), "label": label, "evaluations": len(rows),
                                "failed": sum(r["status"] != "ok" for r in rows),
                                "best": ok[0]["score"] if ok else None})
        _print_run_table(run, label, rows, ok)
        for key, part in (("oneshot_ranking", oneshot.ranking(run, out)),
                          ("darts_alphas", oneshot.darts_alphas(run, out))):
            if part is not None:
                summary.setdefault(key, []).append(part)
    _plot_curves(curves, out / "best_so_far.png")
    front = _plot_pareto(all_rows, out / "pareto.png")
    if front is not None:
        summary["pareto"] = front
    if all_rows:
        summary["best"] = _draw_best(all_rows, out / "best_cells.png")
    (out / "report.json").write_text(json.dumps(summary, indent=2) + "\n")
    console().print(f"report written to {out}")
    return summary


def _print_run_table(run: Path, label: str, rows: list[dict[str, Any]],
                     ok: list[dict[str, Any]]) -> None:
    table = Table(title=f"{run} ({label}): {len(rows)} evaluations")
    for col in ("rank", "id", "score", "params", "seconds", "arch"):
        table.add_column(col)
    for rank, r in enumerate(ok[:5], 1):
        table.add_row(str(rank), str(r["id"]), f"{r['score']:.4f}",
                      f"{(r['params'] or 0) / 1e3:.1f}k", f"{r['seconds']:.1f}",
                      r["arch"][:80])
    console().print(table)


def _plot_curves(curves: dict[str, list[np.ndarray]], path: Path) -> None:
    """Mean best-so-far curve per label, with the min-max band across seeds."""
    import matplotlib.pyplot as plt

    fig, ax = plt.subplots(figsize=(7, 4.5))
    for label, cs in sorted(curves.items()):
        n = max(len(c) for c in cs)
        padded = np.full((len(cs), n), np.nan)
        for i, c in enumerate(cs):
            padded[i, : len(c)] = c
            padded[i, len(c):] = c[-1] if len(c) else np.nan
        x = np.arange(1, n + 1)
        with np.errstate(all="ignore"):
            mean = np.nanmean(padded, axis=0)
        ax.plot(x, mean, label=f"{label} (n={len(cs)})")
        if len(cs) > 1:
            ax.fill_between(x, np.nanmin(padded, axis=0), np.nanmax(padded, axis=0), alpha=0.2)
    ax.set(xlabel="evaluations", ylabel="best score so far", title="best-so-far")
    ax.legend()
    fig.tight_layout()
    fig.savefig(path, dpi=120)
    plt.close(fig)


def _plot_pareto(all_rows: list[tuple[Path, dict[str, Any]]], path: Path
                 ) -> list[dict[str, Any]] | None:
    """Score against parameters with the Pareto front; the front's rows, or None."""
    import matplotlib.pyplot as plt

    with_params = [(run, r) for run, r in all_rows if r.get("params")]
    if not with_params:
        return None
    pts = [(float(r["params"]), float(r["score"])) for _, r in with_params]
    front = pareto_front(pts)
    fig, ax = plt.subplots(figsize=(7, 4.5))
    ax.scatter([p[0] for p in pts], [p[1] for p in pts], s=12, alpha=0.6)
    ax.plot([pts[i][0] for i in front], [pts[i][1] for i in front], "r.-", label="Pareto")
    ax.set(xscale="log", xlabel="parameters", ylabel="score", title="score vs parameters")
    ax.legend()
    fig.tight_layout()
    fig.savefig(path, dpi=120)
    plt.close(fig)
    return [{"run": str(with_params[i][0]), "id": with_params[i][1]["id"],
             "params": pts[i][0], "score": pts[i][1]} for i in front]


def _draw_best(all_rows: list[tuple[Path, dict[str, Any]]], path: Path) -> dict[str, Any]:
    """Cell diagrams of the best evaluation over all runs."""
    from nascli.genotypes import load_genotype

    run, best = max(all_rows, key=lambda t: t[1]["score"])
    genotype, _ = load_genotype(run / "best.json")
    draw_genotype(genotype, path, title=f"best: {best['score']:.4f}")
    return {"run": str(run), "id": best["id"], "score": best["score"], "arch": best["arch"]}
