"""Score against parameters over every finished evaluation, with the Pareto front."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from nascli.pareto import pareto_front
from nascli.report.figures import legend_below
from nascli.report.runs import Group, score_label

if TYPE_CHECKING:
    from matplotlib.figure import Figure


def plot_pareto(groups: list[Group]) -> tuple[Figure, list[dict[str, Any]]] | None:
    """Scatter of score against parameters (log scale), one colour per group, and the front
    over all of them; the open figure and the front's rows, or None without parameter counts."""
    import matplotlib.pyplot as plt

    points = [(g, run, r) for g in groups for run in g.runs for r in run.rows
              if r["status"] == "ok" and r.get("params")]
    if not points:
        return None
    fig, ax = plt.subplots()
    for g in groups:
        mine = [(float(r["params"]), float(r["score"])) for h, _, r in points if h is g]
        if mine:
            ax.scatter(*zip(*mine, strict=True), s=10, alpha=0.6, linewidths=0,
                       label=g.label if len(groups) > 1 else None)
    xy = [(float(r["params"]), float(r["score"])) for _, _, r in points]
    front = pareto_front(xy)
    ax.plot([xy[i][0] for i in front], [xy[i][1] for i in front], drawstyle="steps-post",
            color="black", linewidth=1, marker="o", markersize=3, label="Pareto front")
    ax.set(xscale="log", xlabel="parameters",
           ylabel=score_label([r for g in groups for r in g.runs], best=False))
    legend_below(ax)
    rows = [{"run": str(points[i][1].path), "id": points[i][2]["id"], "params": xy[i][0],
             "score": xy[i][1]} for i in front]
    return fig, rows
