"""Cell diagrams like the NASNet paper's figures, as PNG, SVG or PDF.

Each op of each block is its own node, so two identical ops on one input stay two edges; blocks
end in their combine node and the cell in ``concat`` -> h_{i+1}. Graphviz ``dot`` lays the graph
out when it is installed (``pip install nascli[diagram]`` plus the ``dot`` binary); otherwise a
pure-Python layered layout (:mod:`nascli.report.diagram_layout`) is drawn with matplotlib.
"""

from __future__ import annotations

import itertools
import logging
from pathlib import Path
from typing import Any

from nascli.report.diagram_graphviz import COLORS, graphviz_available, render_graphviz
from nascli.report.diagram_layout import CellLayout, layout_cell, mathtext

log = logging.getLogger(__name__)

#: File formats, chosen by the path's suffix.
FORMATS: tuple[str, ...] = ("png", "svg", "pdf")
#: ``auto`` takes Graphviz when available, else matplotlib.
BACKENDS: tuple[str, ...] = ("auto", "graphviz", "matplotlib")
#: Points between two cells drawn side by side, and the height of a caption line.
CELL_GAP, CAPTION_H = 30.0, 18.0
PNG_DPI = 150


def draw_cell(ax: Any, cell: Any, title: str) -> None:
    """Draw one cell on a matplotlib axis, scaled to fit it (pure-Python layout)."""
    layout = layout_cell(cell)
    fig_w, fig_h = ax.figure.get_size_inches() * 72
    pos = ax.get_position()
    scale = min(pos.width * fig_w / layout.width, pos.height * fig_h / layout.height)
    _draw_layout(ax, layout, 0.0, 0.0, scale)
    ax.set_title(title, fontsize=9)
    ax.set_xlim(0, layout.width)
    ax.set_ylim(0, layout.height)
    ax.set_aspect("equal")
    ax.axis("off")


def draw_genotype(genotype: Any, path: str | Path, title: str = "",
                  backend: str = "auto") -> Path:
    """Save the normal and the reduction cell of ``genotype`` side by side.

    The format follows the suffix of ``path`` (``.png``, ``.svg`` or ``.pdf``).
    """
    cells = [(genotype.normal, "normal cell"), (genotype.reduce, "reduction cell")]
    return _render(cells, Path(path), title, backend)


def draw_cell_file(cell: Any, path: str | Path, title: str = "", backend: str = "auto") -> Path:
    """Save one cell (a :class:`~nascli.spaces.genotype.CellGenotype`) to ``path``."""
    return _render([(cell, title)], Path(path), "", backend)


def diagram_backend(backend: str = "auto") -> str:
    """The backend ``backend`` resolves to here: ``graphviz`` or ``matplotlib``."""
    if backend not in BACKENDS:
        raise ValueError(f"unknown diagram backend {backend!r}; valid: {', '.join(BACKENDS)}")
    if backend == "auto":
        return "graphviz" if graphviz_available() else "matplotlib"
    if backend == "graphviz" and not graphviz_available():
        raise RuntimeError("the graphviz backend needs `pip install graphviz` and the `dot` "
                           "binary (e.g. `apt-get install graphviz`)")
    return backend


def _render(cells: list[tuple[Any, str]], path: Path, title: str, backend: str) -> Path:
    fmt = path.suffix.lower().lstrip(".")
    if fmt not in FORMATS:
        raise ValueError(f"diagram path {str(path)!r} must end in one of "
                         f"{', '.join('.' + f for f in FORMATS)}")
    chosen = diagram_backend(backend)
    if chosen == "graphviz":
        try:
            return render_graphviz(cells, path, title, fmt)
        except Exception as exc:  # a broken dot install must not lose the report
            if backend == "graphviz":
                raise
            log.warning("graphviz failed (%s); drawing the cell diagram with matplotlib", exc)
    return _render_matplotlib(cells, path, title, fmt)


def _render_matplotlib(cells: list[tuple[Any, str]], path: Path, title: str, fmt: str) -> Path:
    """Cells side by side on one figure at 1 data unit = 1 point, so labels fit their boxes."""
    from matplotlib import rc_context
    from matplotlib.figure import Figure

    layouts = [(layout_cell(cell), name) for cell, name in cells]
    captions = CAPTION_H if any(name for _, name in cells) else 0.0
    top = CAPTION_H if title else 0.0
    width = sum(lay.width for lay, _ in layouts) + CELL_GAP * (len(layouts) - 1)
    height = max(lay.height for lay, _ in layouts) + captions + top
    with rc_context({"svg.fonttype": "none"}):  # SVG keeps labels as <text>, searchable
        fig = Figure(figsize=(width / 72, height / 72))
        ax = fig.add_axes((0, 0, 1, 1))
        x = 0.0
        for lay, name in layouts:
            _draw_layout(ax, lay, x, 0.0, 1.0)
            if name:
                ax.text(x + lay.width / 2, lay.height + captions / 2, name, ha="center",
                        va="center", fontsize=10, fontweight="bold")
            x += lay.width + CELL_GAP
        if title:
            ax.text(width / 2, height - top / 2, title, ha="center", va="center", fontsize=10)
        ax.set_xlim(0, width)
        ax.set_ylim(0, height)
        ax.axis("off")
        fig.savefig(path, format=fmt, dpi=PNG_DPI, facecolor="white")
    return path


def _edge_path(points: list[tuple[float, float]], dx: float, dy: float) -> Any:
    """A route as a path: vertical-tangent curves between layers, lines through dummies."""
    from matplotlib.path import Path as MplPath

    verts = [(points[0][0] + dx, points[0][1] + dy)]
    codes = [MplPath.MOVETO]
    for (x1, y1), (x2, y2) in itertools.pairwise(points):
        if x1 == x2:
            verts.append((x2 + dx, y2 + dy))
            codes.append(MplPath.LINETO)
        else:
            ym = (y1 + y2) / 2 + dy
            verts += [(x1 + dx, ym), (x2 + dx, ym), (x2 + dx, y2 + dy)]
            codes += [MplPath.CURVE4] * 3
    return MplPath(verts, codes)


def _draw_layout(ax: Any, layout: CellLayout, dx: float, dy: float, scale: float) -> None:
    """Draw ``layout`` shifted by (dx, dy) points; ``scale`` is points on paper per unit."""
    from matplotlib.patches import FancyArrowPatch, FancyBboxPatch

    for _, _, points in layout.routes:
        ax.add_patch(FancyArrowPatch(
            path=_edge_path(points, dx, dy), arrowstyle="-|>,head_length=0.5,head_width=0.25",
            mutation_scale=10 * scale, lw=0.8 * scale, color="#555555", zorder=1))
    for node_id, box in layout.boxes.items():
        node = layout.nodes[node_id]
        ax.add_patch(FancyBboxPatch(
            (box.x0 + dx, box.y0 + dy), box.x1 - box.x0, box.y1 - box.y0,
            boxstyle="round,pad=0,rounding_size=3",
            fc=COLORS[node.kind], ec="#666666", lw=0.7 * scale, zorder=2))
        ax.text((box.x0 + box.x1) / 2 + dx, (box.y0 + box.y1) / 2 + dy, mathtext(node.label),
                ha="center", va="center", fontsize=layout.font_size * scale, zorder=3)
