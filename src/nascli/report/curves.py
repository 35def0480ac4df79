"""Best-so-far curves: per run, averaged over a group's seeds, and drawn as steps.

The best score so far only changes when an evaluation finishes, so curves are step functions
(``steps-post``: a value holds until the next evaluation). Every point of a group's curve is
the mean over all its seeds, with a band of one sample standard deviation: the curve starts
once every seed has a finished evaluation and ends where the shortest seed ends (in
evaluations, or in wall time), so no point averages fewer seeds.
"""

from __future__ import annotations

import warnings
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, Literal

import numpy as np

from nascli.report.figures import legend_below
from nascli.report.runs import Group, Run, score_label, wall_times

if TYPE_CHECKING:
    from matplotlib.figure import Figure

Axis = Literal["evaluations", "time"]
#: (seconds per unit, unit name) for the wall-time axis, by the longest curve
TIME_UNITS = ((7200.0, 3600.0, "h"), (120.0, 60.0, "min"), (0.0, 1.0, "s"))


@dataclass
class Curve:
    """A group's mean best-so-far at ``x`` (evaluations, or seconds), std across seeds
    (None for one seed), and the number of seeds ``n``."""

    x: np.ndarray
    mean: np.ndarray
    std: np.ndarray | None
    n: int


def best_so_far(history: list[dict[str, Any]]) -> np.ndarray:
    """Best finished score after each evaluation in id order (NaN before the first success)."""
    out, best = [], -np.inf
    for row in sorted(history, key=lambda r: r["id"]):
        if row["status"] == "ok":
            best = max(best, row["score"])
        out.append(best if np.isfinite(best) else np.nan)
    return np.array(out, dtype=float)


def best_over_time(history: list[dict[str, Any]]) -> tuple[np.ndarray, np.ndarray]:
    """(finish times in s, best score known at each), in time order: with parallel workers
    an evaluation with a later id may finish first."""
    rows = sorted(history, key=lambda r: r["id"])
    times = wall_times(rows)
    order = np.argsort(times, kind="stable")
    return times[order], best_so_far([{**rows[i], "id": k} for k, i in enumerate(order)])


def _curve(x: np.ndarray, values: np.ndarray) -> Curve:
    """Mean and sample std over the rows (seeds) of ``values`` at ``x``, from the first point
    where every seed has a success (or, if one never has, wherever any has one)."""
    finite = np.isfinite(values)
    keep = finite.all(axis=0) if finite.all(axis=0).any() else finite.any(axis=0)
    x, values = x[keep], values[:, keep]
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", RuntimeWarning)
        mean = np.nanmean(values, axis=0)
        std = np.nanstd(values, axis=0, ddof=1) if len(values) > 1 else None
    if std is not None:
        std = np.where(np.isfinite(std), std, 0.0)
    return Curve(x, mean, std, len(values))


def by_evaluations(runs: list[Run]) -> Curve:
    """Mean best-so-far after 1, 2, ... evaluations, up to the shortest seed's count."""
    curves = [best_so_far(r.rows) for r in runs]
    n = min(len(c) for c in curves)
    return _curve(np.arange(1, n + 1), np.array([c[:n] for c in curves]))


def by_time(runs: list[Run]) -> Curve:
    """Mean best-so-far at every finish time of any seed, up to the time the shortest seed
    ended; each seed holds its best between its own finish times."""
    tracks = [best_over_time(r.rows) for r in runs]
    horizon = min(t[-1] for t, _ in tracks)
    grid = np.unique(np.concatenate([t[t <= horizon] for t, _ in tracks]))
    values = np.full((len(tracks), len(grid)), np.nan)
    for i, (t, best) in enumerate(tracks):
        at = np.searchsorted(t, grid, side="right") - 1
        values[i, at >= 0] = best[at[at >= 0]]
    return _curve(grid, values)


def time_unit(seconds: float) -> tuple[float, str]:
    """Seconds per unit and the unit's name for an axis that spans ``seconds``."""
    for above, scale, name in TIME_UNITS:
        if seconds >= above:
            return scale, name
    return 1.0, "s"


def plot_best_so_far(groups: list[Group], axis: Axis = "evaluations") -> Figure:
    """One step curve per group (mean over seeds) with a mean ± std band, against
    evaluations (integer ticks) or wall time; the open figure (the caller saves it)."""
    import matplotlib.pyplot as plt
    from matplotlib.ticker import MaxNLocator

    curves = [(g, by_evaluations(g.runs) if axis == "evaluations" else by_time(g.runs))
              for g in groups]
    scale, unit = 1.0, ""
    if axis == "time":
        scale, unit = time_unit(max((float(c.x[-1]) for _, c in curves if len(c.x)),
                                    default=0.0))
    fig, ax = plt.subplots()
    for group, c in curves:
        x = c.x / scale
        seeds = "1 seed" if c.n == 1 else f"{c.n} seeds"
        if not len(x):
            continue  # every seed failed throughout
        (line,) = ax.plot(x, c.mean, drawstyle="steps-post", label=f"{group.label} ({seeds})")
        color = line.get_color()
        if c.std is not None:
            ax.fill_between(x, c.mean - c.std, c.mean + c.std, step="post", alpha=0.2,
                            color=color, linewidth=0)
        # a step's last value has no width: mark the final mean (± std) at the curve's end
        ax.errorbar(x[-1:], c.mean[-1:], yerr=None if c.std is None else c.std[-1:], fmt="o",
                    markersize=3, capsize=2, elinewidth=1, color=color)
    if axis == "evaluations":
        ax.xaxis.set_major_locator(MaxNLocator(integer=True))
        ax.set_xlabel("evaluations")
    else:
        ax.set_xlabel(f"wall time ({unit})")
    ax.set_ylabel(score_label([r for g in groups for r in g.runs]))
    banded = any(c.std is not None for _, c in curves)
    legend_below(ax, "mean ± std over seeds" if banded else None)
    return fig
