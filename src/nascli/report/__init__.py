"""``nascli report``: tables, figures and a Markdown summary for one run or many.

Runs are grouped by every swept key of their ``.hydra/overrides.yaml`` except the seed
(``runs``); per group, best-so-far step curves with mean ± std over seeds, against evaluations
and against wall time (``curves``); over all runs, score against parameters with the Pareto
front (``pareto``) and the cells of the best genotype. Every figure is saved as PNG and SVG
(``figures``), next to ``report.md`` (``markdown``) and ``report.json``.

Output goes to ``--out``; without it, to ``report/`` inside the one folder given (a run or a
sweep), or to a new ``outputs/report/<date>/<time>/`` for several. A report never writes
into a run directory.
"""

from __future__ import annotations

import json
from datetime import datetime
from pathlib import Path
from typing import Any

from rich.table import Table

from nascli.engine.console import console
from nascli.engine.rundir import RUN_FILES
from nascli.report import figures, oneshot
from nascli.report.curves import best_so_far, plot_best_so_far
from nascli.report.diagram import draw_genotype
from nascli.report.markdown import number, write_markdown
from nascli.report.pareto import pareto_front, plot_pareto
from nascli.report.runs import Group, ReportError, Run, find_runs, group_runs, load_runs

__all__ = ["ReportError", "best_so_far", "default_out", "find_runs", "make_report",
           "pareto_front"]

#: the folder a one-folder report goes to, inside that folder
REPORT_DIR = "report"


def default_out(paths: list[Path]) -> Path:
    """``PATH/report`` for one folder; a new ``outputs/report/<date>/<time>`` for several."""
    if len(paths) == 1:
        return Path(paths[0]).expanduser() / REPORT_DIR
    return Path("outputs", "report", datetime.now().strftime("%Y-%m-%d/%H-%M-%S-%f"))


def _prepare_out(out: Path) -> Path:
    """Create ``out``; refuse a run directory (a report never replaces a run's files)."""
    if any((out / name).exists() for name in RUN_FILES):
        raise ReportError(f"--out {out} holds a run; choose another folder (a report never "
                          "writes into a run directory)")
    try:
        out.mkdir(parents=True, exist_ok=True)
    except OSError as exc:
        raise ReportError(f"--out {out}: cannot create the folder "
                          f"({exc.strerror or type(exc).__name__})") from None
    return out


def make_report(paths: list[Path], out: Path | None = None) -> dict[str, Any]:
    """Write the report for the runs under ``paths`` to ``out``; returns the summary."""
    runs = load_runs(paths)
    out = _prepare_out(Path(out).expanduser() if out else default_out(paths))
    groups, common = group_runs(runs)
    summary: dict[str, Any] = {
        "out": str(out), "common": common, "groups": [g.summary() for g in groups],
        "runs": [_run_summary(g, r) for g in groups for r in g.runs]}
    for g in groups:
        for r in g.runs:
            _print_run_table(r, g.label)
    _print_groups(groups)
    with figures.style():
        made = _figures(groups, out, summary)
        extras = []
        for key, part in _oneshot_parts(runs, out):
            summary.setdefault(key, []).append(part)
            extras.append(f"![{key} of {part['run']}]({part['plot']})")
    summary["figures"] = made
    write_markdown(out, groups, common, made, extras)
    (out / "report.json").write_text(json.dumps(summary, indent=2) + "\n")
    console().print(f"report written to {out} (report.md, PNG and SVG figures)")
    return summary


def _figures(groups: list[Group], out: Path, summary: dict[str, Any]
             ) -> dict[str, list[str]]:
    """Curves, Pareto scatter and best cells; the files of each figure, by stem."""
    made = {"best_so_far": figures.save(plot_best_so_far(groups, "evaluations"), out,
                                        "best_so_far"),
            "best_so_far_time": figures.save(plot_best_so_far(groups, "time"), out,
                                             "best_so_far_time")}
    pareto = plot_pareto(groups)
    if pareto is not None:
        made["pareto"] = figures.save(pareto[0], out, "pareto")
        summary["pareto"] = pareto[1]
    best = _draw_best([r for g in groups for r in g.runs], out)
    if best is not None:
        summary["best"], made["best_cells"] = best
    return made


def _oneshot_parts(runs: list[Run], out: Path) -> list[tuple[str, dict[str, Any]]]:
    """The one-shot pieces of each run (ranking scatter, DARTS op weights) that it has."""
    parts = []
    for run in runs:
        for key, part in (("oneshot_ranking", oneshot.ranking(run.path, out)),
                          ("darts_alphas", oneshot.darts_alphas(run.path, out))):
            if part is not None:
                parts.append((key, part))
    return parts


def _run_summary(group: Group, run: Run) -> dict[str, Any]:
    return {"run": str(run.path), "label": group.label, "seed": run.seed,
            "evaluations": len(run.rows),
            "failed": sum(r["status"] == "failed" for r in run.rows),
            "rejected": sum(r["status"] == "rejected" for r in run.rows), "best": run.best}


def _print_run_table(run: Run, label: str) -> None:
    ok = sorted((r for r in run.rows if r["status"] == "ok"), key=lambda r: -r["score"])
    table = Table(title=f"{run.path} ({label}, seed {run.seed}): {len(run.rows)} evaluations")
    for col in ("rank", "id", "score", "params", "seconds", "arch"):
        table.add_column(col)
    for rank, r in enumerate(ok[:5], 1):
        table.add_row(str(rank), str(r["id"]), f"{r['score']:.4f}",
                      f"{(r['params'] or 0) / 1e3:.1f}k", f"{r['seconds'] or 0:.1f}",
                      r["arch"][:80])
    console().print(table)


def _print_groups(groups: list[Group]) -> None:
    table = Table(title="groups (mean ± std over seeds)")
    for col in ("group", "seeds", "evaluations", "final best"):
        table.add_column(col, justify="left" if col == "group" else "right")
    for g in groups:
        s = g.summary()
        evals = sorted(set(s["evaluations"]))
        table.add_row(g.label, ",".join(map(str, s["seeds"])), "/".join(map(str, evals)),
                      number(s["final_best"]["mean"], s["final_best"]["std"]))
    console().print(table)


def _draw_best(runs: list[Run], out: Path) -> tuple[dict[str, Any], list[str]] | None:
    """Cell diagrams (PNG and SVG) of the best evaluation over all runs, if it has a
    ``best.json``; its summary and file names."""
    from nascli.genotypes import load_genotype

    scored = [(run, r) for run in runs for r in run.rows if r["status"] == "ok"]
    if not scored:
        return None
    run, best = max(scored, key=lambda t: t[1]["score"])
    if not (run.path / "best.json").is_file():
        return None
    genotype, _ = load_genotype(run.path / "best.json")
    names = []
    for ext in figures.FORMATS:
        draw_genotype(genotype, out / f"best_cells.{ext}", title=f"best: {best['score']:.4f}")
        names.append(f"best_cells.{ext}")
    return ({"run": str(run.path), "id": best["id"], "score": best["score"],
             "arch": best["arch"]}, names)
