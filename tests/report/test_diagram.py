"""Cell diagrams: one node per op, valid PNG and SVG from both backends, and a pure-Python layout
whose boxes and edges never overlap."""

from __future__ import annotations

import xml.etree.ElementTree as ET
from collections import Counter
from itertools import combinations, pairwise
from pathlib import Path

import pytest

from nascli.genotypes import AMOEBANET_A, DARTS_V2, NASNET_A
from nascli.report import diagram
from nascli.report.diagram import diagram_backend, draw_cell, draw_cell_file, draw_genotype
from nascli.report.diagram_graphviz import graphviz_available
from nascli.report.diagram_layout import Box, cell_graph, layout_cell
from nascli.spaces import CellGenotype, NASNetSpace

PNG_MAGIC = b"\x89PNG\r\n\x1a\n"
RANDOM = NASNetSpace(blocks=5).sample(0)
GENOTYPES = {"nasnet-a": NASNET_A, "amoebanet-a": AMOEBANET_A, "random": RANDOM}
CELLS = {f"{name}-{kind}": g.cell(kind) for name, g in GENOTYPES.items()
         for kind in ("normal", "reduce")}
BACKENDS = [
    "matplotlib",
    pytest.param("graphviz", marks=pytest.mark.skipif(
        not graphviz_available(), reason="needs the graphviz package and the dot binary")),
]


def _texts(svg: Path) -> list[str]:
    """Text of every <text> element in an SVG file (which must parse as XML)."""
    root = ET.parse(svg).getroot()
    return ["".join(e.itertext()).strip() for e in root.iter() if e.tag.split("}")[-1] == "text"]


def test_random_cell_has_five_blocks():
    assert len(RANDOM.normal.blocks) == len(RANDOM.reduce.blocks) == 5


@pytest.mark.parametrize("cell_name", sorted(CELLS))
def test_graph_has_one_node_per_op(cell_name: str):
    cell = CELLS[cell_name]
    graph = cell_graph(cell)
    assert graph.op_labels == [op for b in cell.blocks for op in b.ops]
    kinds = Counter(n.kind for n in graph.nodes)
    assert kinds == {"input": 2, "op": 2 * len(cell.blocks), "combine": len(cell.blocks),
                     "concat": 1, "output": 1}
    assert len(graph.edges) == len(set(graph.edges)) == 4 * len(cell.blocks) + len(cell.concat) + 1


@pytest.mark.parametrize("backend", BACKENDS)
@pytest.mark.parametrize("name", sorted(GENOTYPES))
def test_genotype_png_and_svg(tmp_path: Path, name: str, backend: str):
    genotype = GENOTYPES[name]
    png = draw_genotype(genotype, tmp_path / "cells.png", title=name, backend=backend)
    assert png.read_bytes()[:8] == PNG_MAGIC
    svg = draw_genotype(genotype, tmp_path / "cells.svg", title=name, backend=backend)
    ops = Counter(op for kind in ("normal", "reduce")
                  for b in genotype.cell(kind).blocks for op in b.ops)
    assert Counter(t for t in _texts(svg) if t in ops) == ops


@pytest.mark.parametrize("backend", BACKENDS)
def test_nasnet_normal_svg_has_ten_op_labels(tmp_path: Path, backend: str):
    svg = draw_cell_file(NASNET_A.normal, tmp_path / "normal.svg", "NASNet-A normal", backend)
    ops = Counter(t for t in _texts(svg) if t in {"sep_conv_5x5", "sep_conv_3x3", "avg_pool_3x3",
                                                  "identity"})
    assert sum(ops.values()) == 10
    assert ops["avg_pool_3x3"] == 3  # two of them on h_{i-1} into one block: two nodes


def _check_layout(cell: CellGenotype) -> None:
    layout = layout_cell(cell)
    frame = Box(0, 0, layout.width, layout.height)
    boxes = layout.boxes
    for node_id, box in boxes.items():
        assert frame.contains(box), node_id
        assert box.contains(layout.label_boxes[node_id]), node_id
    for (a, box_a), (b, box_b) in combinations(boxes.items(), 2):
        assert not box_a.overlaps(box_b), (a, b)
        assert not layout.label_boxes[a].overlaps(layout.label_boxes[b]), (a, b)
    for u, v, points in layout.routes:
        # each piece is drawn inside the rectangle its two points span
        for (x1, y1), (x2, y2) in pairwise(points):
            assert y2 > y1, (u, v)
            span = Box(min(x1, x2), y1, max(x1, x2), y2)
            hit = [n for n, box in boxes.items() if span.overlaps(box)]
            assert not hit, (u, v, hit)


@pytest.mark.parametrize("cell_name", sorted(CELLS))
def test_layout_has_no_overlaps(cell_name: str):
    _check_layout(CELLS[cell_name])


def test_layout_has_no_overlaps_on_more_cells():
    space = NASNetSpace(blocks=5, combine=("add", "concat"))
    for seed in range(1, 9):
        genotype = space.sample(seed)
        _check_layout(genotype.normal)
        _check_layout(genotype.reduce)
    _check_layout(DARTS_V2.normal)


def test_draw_cell_on_an_axis(tmp_path: Path):
    from matplotlib.figure import Figure

    fig = Figure(figsize=(8, 3))
    ax = fig.add_subplot()
    draw_cell(ax, NASNET_A.reduce, "reduction cell")
    fig.savefig(tmp_path / "ax.png")
    assert (tmp_path / "ax.png").read_bytes()[:8] == PNG_MAGIC


def test_format_and_backend_errors(tmp_path: Path, monkeypatch: pytest.MonkeyPatch):
    with pytest.raises(ValueError, match=r"\.png"):
        draw_genotype(NASNET_A, tmp_path / "cells.jpg")
    with pytest.raises(ValueError, match="backend"):
        draw_genotype(NASNET_A, tmp_path / "cells.png", backend="tikz")
    monkeypatch.setattr(diagram, "graphviz_available", lambda: False)
    assert diagram_backend("auto") == "matplotlib"
    with pytest.raises(RuntimeError, match="dot"):
        diagram_backend("graphviz")
    assert draw_genotype(NASNET_A, tmp_path / "cells.png").read_bytes()[:8] == PNG_MAGIC
