"""One look for every report figure, and one way to save it: PNG and SVG side by side.

Sizes suit a one-column figure of a paper (about 5.5 x 3.4 in at 9 pt); the colours are Okabe
and Ito's colour-blind-safe palette (a group keeps its colour in every figure); the legend sits
under the axes, where it hides no data; SVG text stays text (editable, searchable) and the SVG
holds no date, so the same runs give the same file.
"""

from __future__ import annotations

import contextlib
from collections.abc import Iterator
from pathlib import Path
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from matplotlib.axes import Axes
    from matplotlib.figure import Figure

FORMATS = ("png", "svg")
PNG_DPI = 200
#: Okabe and Ito's colour-blind-safe palette, most distinct colours first
PALETTE = ("#0072B2", "#D55E00", "#009E73", "#E69F00", "#CC79A7", "#56B4E9", "#000000",
           "#F0E442")
STYLE = {
    "figure.figsize": (5.5, 3.4),
    "font.size": 9,
    "axes.titlesize": 9,
    "axes.labelsize": 9,
    "legend.fontsize": 8,
    "legend.title_fontsize": 8,
    "legend.frameon": False,
    "axes.spines.top": False,
    "axes.spines.right": False,
    "axes.grid": True,
    "grid.alpha": 0.3,
    "grid.linewidth": 0.5,
    "lines.linewidth": 1.5,
    "savefig.bbox": "tight",
    "savefig.pad_inches": 0.03,
    "svg.fonttype": "none",
    "svg.hashsalt": "nascli-report",
}


@contextlib.contextmanager
def style() -> Iterator[None]:
    """Report style for the figures made and saved inside the block (Agg backend)."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    from cycler import cycler

    with plt.style.context({**STYLE, "axes.prop_cycle": cycler(color=PALETTE)}):
        yield


def legend_below(ax: Axes, title: str | None = None) -> None:
    """The legend under the axes: one column for long labels, two for short ones."""
    handles, labels = ax.get_legend_handles_labels()
    if not handles:
        return
    columns = 1 if len(labels) == 1 or max(map(len, labels)) > 32 else 2
    ax.legend(handles, labels, title=title, loc="upper center", bbox_to_anchor=(0.5, -0.2),
              ncol=columns, borderaxespad=0.0)


def save(fig: Figure, out: Path, stem: str) -> list[str]:
    """Write ``out/stem.png`` and ``out/stem.svg``, close the figure; the file names."""
    import matplotlib.pyplot as plt

    names = []
    try:
        for ext in FORMATS:
            name = f"{stem}.{ext}"
            if ext == "svg":
                fig.savefig(Path(out) / name, format="svg", metadata={"Date": None})
            else:
                fig.savefig(Path(out) / name, format="png", dpi=PNG_DPI)
            names.append(name)
    finally:
        plt.close(fig)
    return names
