"""``report.md``: the figures with captions, one table over the groups and one per group."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from nascli.report.runs import Group

#: figure stem -> caption
CAPTIONS = {
    "best_so_far": "Best score so far against evaluations: mean over seeds, band one sample "
                   "standard deviation; curves end at the shortest seed.",
    "best_so_far_time": "Best score so far against search wall time (same statistics).",
    "pareto": ("Score against the searched cost (parameters unless the run had an objective) "
               "of every finished evaluation, with the Pareto front."),
    "best_cells": "Normal and reduction cell of the best evaluation over all runs.",
}


def number(value: float | None, std: float | None = None) -> str:
    """``0.9123 ± 0.0040`` (4 significant digits), ``-`` for None."""
    if value is None:
        return "-"
    text = f"{value:.4g}"
    return text if std is None else f"{text} ± {std:.2g}"


def _spread(values: list[float], fmt: str = "{}") -> str:
    """``24`` when all equal, else ``18-24``."""
    lo, hi = fmt.format(min(values)), fmt.format(max(values))
    return lo if lo == hi else f"{lo}-{hi}"


def _cell(text: Any) -> str:
    """Text safe inside a table cell."""
    return str(text).replace("|", "\\|")


def _overview(summaries: list[dict[str, Any]]) -> list[str]:
    lines = ["| group | seeds | evaluations | final best (mean ± std) | wall time (s) |",
             "|---|---|---|---|---|"]
    for s in summaries:
        best = s["final_best"]
        lines.append(f"| {_cell(s['label'])} | {len(s['seeds'])} | {_spread(s['evaluations'])} | "
                     f"{number(best['mean'], best['std'])} | "
                     f"{_spread(s['wall_time_s'], '{:.1f}')} |")
    return lines


def _group_table(group: Group, summary: dict[str, Any]) -> list[str]:
    best = summary["final_best"]
    lines = [f"### {group.label}", "",
             f"Final best {number(best['mean'], best['std'])} over {best['n']} seed(s).", "",
             "| seed | evaluations | failed | final best | wall time (s) | run |",
             "|---|---|---|---|---|---|"]
    for run, evals, failed, secs in zip(group.runs, summary["evaluations"], summary["failed"],
                                        summary["wall_time_s"], strict=True):
        lines.append(f"| {run.seed} | {evals} | {failed} | {number(run.best)} | {secs:.1f} | "
                     f"`{_cell(run.path)}` |")
    return [*lines, ""]


def write_markdown(out: Path, groups: list[Group], common: dict[str, str],
                   figures: dict[str, list[str]], extras: list[str] | None = None) -> Path:
    """Write ``out/report.md`` embedding the PNG of each figure (with a link to its SVG)."""
    summaries = [g.summary() for g in groups]
    runs = sum(len(g.runs) for g in groups)
    lines = ["# nascli report", "",
             f"{runs} run(s) in {len(groups)} group(s); a group averages over its seeds."]
    if common:
        lines.append("Common settings: " + ", ".join(f"`{k}={v}`" for k, v in common.items())
                     + ".")
    lines += ["", "## Figures", ""]
    for stem, names in figures.items():
        png = next((n for n in names if n.endswith(".png")), names[0])
        svg = next((n for n in names if n.endswith(".svg")), None)
        caption = CAPTIONS.get(stem, stem.replace("_", " "))
        lines += [f"![{caption}]({png})", "", f"*{caption}*" + (f" [SVG]({svg})" if svg else ""),
                  ""]
    lines += ["## Groups", "", *_overview(summaries), ""]
    for group, summary in zip(groups, summaries, strict=True):
        lines += _group_table(group, summary)
    if extras:
        lines += ["## One-shot", "", *extras, ""]
    path = Path(out) / "report.md"
    path.write_text("\n".join(lines).rstrip() + "\n", encoding="utf-8")
    return path
