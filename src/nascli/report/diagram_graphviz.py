"""Cell diagrams laid out by Graphviz ``dot`` (optional: ``pip install nascli[diagram]`` and the
``dot`` binary). Same graph as the pure-Python layout (:func:`~.diagram_layout.cell_graph`)."""

from __future__ import annotations

import importlib.util
import shutil
from pathlib import Path
from typing import Any

from nascli.report.diagram_layout import cell_graph

#: Fill colour per node kind, shared with the matplotlib drawing.
COLORS = {
    "input": "#cfe2f3",
    "output": "#cfe2f3",
    "op": "#fff2cc",
    "combine": "#d9ead3",
    "concat": "#f4cccc",
}


def graphviz_available() -> bool:
    """True if the ``graphviz`` package imports and the ``dot`` binary is on PATH."""
    return shutil.which("dot") is not None and importlib.util.find_spec("graphviz") is not None


def _label(label: str) -> str:
    """h_{i-1} as an HTML label with a subscript; op names as they are."""
    if label.startswith("h_"):
        return f"<h<sub>{label[3:-1] if label[2] == '{' else label[2:]}</sub>>"
    return label


def _add_cell(g: Any, cell: Any, prefix: str, name: str) -> None:
    """One cell as a cluster of ``g``; node ids are prefixed so two cells can share a graph."""
    graph = cell_graph(cell)
    with g.subgraph(name=f"cluster_{prefix}") as c:
        # "b" is the top of the cluster once rankdir=BT turns the drawing upside down
        c.attr(label=name, labelloc="b", style="rounded", color="#999999", fontsize="11")
        for node in graph.nodes:
            c.node(prefix + node.id, label=_label(node.label), fillcolor=COLORS[node.kind])
        with c.subgraph() as inputs:  # the paper draws h_{i-1} and h_i side by side
            inputs.attr(rank="same")
            inputs.node(prefix + "h1")
            inputs.node(prefix + "h0")
            inputs.edge(prefix + "h1", prefix + "h0", style="invis")
        for u, v in graph.edges:
            c.edge(prefix + u, prefix + v)


def render_graphviz(cells: list[tuple[Any, str]], path: Path, title: str, fmt: str) -> Path:
    """Write ``cells`` (``(cell, name)`` pairs, side by side) to ``path`` in format ``fmt``."""
    import graphviz

    g = graphviz.Digraph(
        # remincross off: its pass over the whole graph may mirror a cluster, h_i left of h_{i-1}
        graph_attr={"rankdir": "BT", "remincross": "false", "nodesep": "0.18", "ranksep": "0.3",
                    "fontname": "DejaVu Sans", "label": title, "labelloc": "t"},
        node_attr={"shape": "box", "style": "rounded,filled", "fontname": "DejaVu Sans",
                   "fontsize": "10", "height": "0.28", "margin": "0.08,0.03", "color": "#666666"},
        edge_attr={"arrowsize": "0.6", "color": "#555555"},
    )
    if fmt == "png":
        g.graph_attr["dpi"] = "150"
    for k, (cell, name) in enumerate(cells):
        _add_cell(g, cell, f"c{k}_", name)
    path.write_bytes(g.pipe(format=fmt))
    return path
