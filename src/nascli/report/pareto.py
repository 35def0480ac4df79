"""Score against a cost (parameters, multiply-adds or latency) over every finished evaluation,
with the Pareto front."""

from __future__ import annotations

import json
from typing import TYPE_CHECKING, Any

from nascli.engine.objective import cost_of, raw_score
from nascli.engine.rundir import PARETO
from nascli.pareto import pareto_front
from nascli.report.figures import legend_below
from nascli.report.runs import Group, score_label

if TYPE_CHECKING:
    from matplotlib.figure import Figure

LABELS = {"params": "parameters", "macs": "multiply-adds (one image)",
          "latency_ms": "latency (ms)"}


def front_cost(groups: list[Group]) -> str:
    """The cost a run searched against (its ``pareto.json``), else ``params``."""
    for g in groups:
        for run in g.runs:
            try:
                doc = json.loads((run.path / PARETO).read_text())
                return next(k for k in doc["objectives"] if k != "score" and k in LABELS)
            except (OSError, ValueError, KeyError, TypeError, StopIteration, AttributeError):
                continue
    return "params"


def plot_pareto(groups: list[Group], cost: str | None = None
                ) -> tuple[Figure, list[dict[str, Any]]] | None:
    """Scatter of score against ``cost`` (log scale; default: the cost the runs searched
    against, else parameters), one colour per group, and the front over all of them; the open
    figure and the front's rows, or None without that cost."""
    import matplotlib.pyplot as plt

    cost = cost or front_cost(groups)
    points = [(g, run, r) for g in groups for run in g.runs for r in run.rows
              if r["status"] == "ok" and cost_of(r, cost)]
    if not points:
        return None
    fig, ax = plt.subplots()
    for g in groups:
        mine = [(cost_of(r, cost), raw_score(r)) for h, _, r in points if h is g]
        if mine:
            ax.scatter(*zip(*mine, strict=True), s=10, alpha=0.6, linewidths=0,
                       label=g.label if len(groups) > 1 else None)
    xy = [(cost_of(r, cost), raw_score(r)) for _, _, r in points]
    front = pareto_front(xy)
    ax.plot([xy[i][0] for i in front], [xy[i][1] for i in front], drawstyle="steps-post",
            color="black", linewidth=1, marker="o", markersize=3, label="Pareto front")
    ax.set(xscale="log", xlabel=LABELS[cost],
           ylabel=score_label([r for g in groups for r in g.runs], best=False))
    legend_below(ax)
    rows = [{"run": str(points[i][1].path), "id": points[i][2]["id"], cost: xy[i][0],
             "score": xy[i][1]} for i in front]
    return fig, rows
