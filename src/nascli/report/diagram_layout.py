"""A cell as a drawing graph, and a layered layout of it in pure Python (no Graphviz).

The graph follows the NASNet paper's figures: the inputs h_{i-1} and h_i, one node per op of
every block, the block's combine node (``add`` or ``concat``), the final ``concat`` of the
cell's output states and h_{i+1}. Edges run from a state to an op, from an op to its combine
node and from each output state to ``concat``.

The layout is a small Sugiyama layout, bottom to top as in the paper: layers by depth, dummy
nodes on edges that skip layers, barycenter sweeps and adjacent swaps against crossings, then x
positions that pull nodes over their neighbours under minimum-gap constraints (an isotonic
projection per layer). Units are typographic points, and node boxes are sized from the measured
label text, so labels never overlap: every label sits inside its own box, boxes in a layer keep
a gap, and layers are a fixed pitch apart. Edges cross layers only in the gaps between them and
pass a layer through their dummy's reserved column, so they never run over a node either.
"""

from __future__ import annotations

import itertools
from dataclasses import dataclass, field
from functools import cache
from typing import Any

#: Label size in points.
FONT_SIZE = 9.0
#: Padding between a label and its box, in points (x, y).
PAD_X, PAD_Y = 5.0, 3.5
#: Horizontal gap between two boxes in a layer; smaller next to an edge's dummy column.
NODE_GAP, DUMMY_GAP = 12.0, 8.0
#: Width reserved for an edge passing through a layer.
DUMMY_WIDTH = 2.0
#: Vertical gap between layers, in points: at least the first, growing with how far edges in
#: the gap run sideways (``LAYER_SLOPE`` points up per point across), up to the second.
LAYER_GAP, MAX_LAYER_GAP, LAYER_SLOPE = 26.0, 72.0, 0.2
#: Width per edge at a box's top or bottom, so edges fanning in or out keep apart.
PORT_WIDTH = 11.0
#: Margin around the drawing, in points.
MARGIN = 6.0

_NAMES = {0: "h_i", 1: "h_{i-1}"}
OUTPUT_LABEL = "h_{i+1}"


@dataclass(frozen=True)
class Node:
    """A node of the drawing: ``kind`` is input, op, combine, concat or output."""

    id: str
    kind: str
    label: str
    layer: int


@dataclass(frozen=True)
class CellGraph:
    """Nodes and edges (``(source id, target id)``) of one cell's drawing."""

    nodes: tuple[Node, ...]
    edges: tuple[tuple[str, str], ...]

    @property
    def op_labels(self) -> list[str]:
        """Labels of the op nodes, two per block."""
        return [n.label for n in self.nodes if n.kind == "op"]


@dataclass(frozen=True)
class Box:
    """An axis-aligned box in points, y up."""

    x0: float
    y0: float
    x1: float
    y1: float

    def overlaps(self, other: Box) -> bool:
        """True if the interiors intersect (touching edges do not count)."""
        return (self.x0 < other.x1 and other.x0 < self.x1
                and self.y0 < other.y1 and other.y0 < self.y1)

    def contains(self, other: Box) -> bool:
        """True if ``other`` lies inside this box."""
        return (self.x0 <= other.x0 and other.x1 <= self.x1
                and self.y0 <= other.y0 and other.y1 <= self.y1)


@dataclass
class CellLayout:
    """Where everything goes, in points: node boxes, label boxes, edge routes and the extent.

    ``routes`` holds one polyline per graph edge, from the source's top to the target's bottom;
    consecutive points are joined by vertical-tangent curves that stay between their ys.
    """

    graph: CellGraph
    boxes: dict[str, Box]
    label_boxes: dict[str, Box]
    routes: list[tuple[str, str, list[tuple[float, float]]]]
    width: float
    height: float
    font_size: float = FONT_SIZE
    nodes: dict[str, Node] = field(init=False)

    def __post_init__(self) -> None:
        self.nodes = {n.id: n for n in self.graph.nodes}


# -- graph -------------------------------------------------------------------------------------
def state_node(state: int) -> str:
    """Node id of hidden state ``state`` (an input, or a block's combine node)."""
    return f"h{state}" if state < 2 else f"b{state - 2}"


def cell_graph(cell: Any) -> CellGraph:
    """The drawing graph of a :class:`~nascli.spaces.genotype.CellGenotype`.

    Layers: inputs 0; a block at depth d (1 + the deepest of its inputs) puts its ops on layer
    2d - 1 and its combine node on 2d; ``concat`` and h_{i+1} go on top.
    """
    depth = {0: 0, 1: 0}
    nodes = [Node("h1", "input", _NAMES[1], 0), Node("h0", "input", _NAMES[0], 0)]
    edges: list[tuple[str, str]] = []
    for b, block in enumerate(cell.blocks):
        d = 1 + max(depth.get(i, 0) for i in block.inputs)
        depth[b + 2] = d
        for k, (i, op) in enumerate(zip(block.inputs, block.ops, strict=True)):
            nodes.append(Node(f"b{b}op{k}", "op", op, 2 * d - 1))
            edges += [(state_node(i), f"b{b}op{k}"), (f"b{b}op{k}", f"b{b}")]
        nodes.append(Node(f"b{b}", "combine", block.combine, 2 * d))
    top = 2 * max(depth.values()) + 1
    nodes += [Node("concat", "concat", "concat", top), Node("out", "output", OUTPUT_LABEL, top + 1)]
    edges += [(state_node(s), "concat") for s in cell.concat] + [("concat", "out")]
    return CellGraph(tuple(nodes), tuple(edges))


# -- text --------------------------------------------------------------------------------------
def mathtext(label: str) -> str:
    """How matplotlib spells a label: state names as math (h_{i-1}), the rest as plain text."""
    return f"${label}$" if label.startswith("h_") else label


@cache
def text_size(label: str, font_size: float = FONT_SIZE) -> tuple[float, float]:
    """Width and height (ascent + descent) of ``label`` drawn by matplotlib, in points."""
    from matplotlib.font_manager import FontProperties
    from matplotlib.textpath import TextToPath

    text = mathtext(label)
    w, h, _ = TextToPath().get_text_width_height_descent(
        text, FontProperties(size=font_size), ismath=text.startswith("$"))
    return float(w), float(h)


# -- layering ----------------------------------------------------------------------------------
@dataclass
class _Layered:
    """The graph with dummies: per-layer order, neighbours, widths and each edge's chain."""

    layers: list[list[str]]
    preds: dict[str, list[str]]
    succs: dict[str, list[str]]
    width: dict[str, float]
    chains: list[list[str]]


def _layered(graph: CellGraph, node_w: dict[str, float]) -> _Layered:
    """Split edges that skip layers into chains through one dummy per skipped layer."""
    layer_of = {n.id: n.layer for n in graph.nodes}
    layers: list[list[str]] = [[] for _ in range(max(layer_of.values()) + 1)]
    for n in graph.nodes:
        layers[n.layer].append(n.id)
    width = dict(node_w)
    preds: dict[str, list[str]] = {n: [] for n in width}
    succs: dict[str, list[str]] = {n: [] for n in width}
    chains = []
    for u, v in graph.edges:
        chain = [u] + [f"{u}>{v}@{k}" for k in range(layer_of[u] + 1, layer_of[v])] + [v]
        for k, d in enumerate(chain[1:-1], start=layer_of[u] + 1):
            layers[k].append(d)
            width[d], preds[d], succs[d] = DUMMY_WIDTH, [], []
        for a, b in itertools.pairwise(chain):
            succs[a].append(b)
            preds[b].append(a)
        chains.append(chain)
    return _Layered(layers, preds, succs, width, chains)


def _crossings(upper: list[str], lower: list[str], preds: dict[str, list[str]]) -> int:
    """Weighted edge crossings between two adjacent layers (``upper`` above ``lower``).

    An edge from an op into its own block's combine node weighs 2, so among orders with equal
    crossings the one that keeps a block's two ops together under their combine node wins.
    """
    pos = {n: i for i, n in enumerate(lower)}
    edges = [(i, pos[p], 2 if p.startswith(n + "op") else 1)
             for i, n in enumerate(upper) for p in preds[n] if p in pos]
    return sum(w * v for k, (a, b, w) in enumerate(edges) for c, d, v in edges[k + 1:]
               if (a - c) * (b - d) < 0)


def _total_crossings(layers: list[list[str]], preds: dict[str, list[str]]) -> int:
    return sum(_crossings(layers[k + 1], layers[k], preds) for k in range(len(layers) - 1))


def _sweep(layers: list[list[str]], g: _Layered, down: bool) -> None:
    """One barycenter sweep; layer 0 (h_{i-1}, h_i in the paper's order) stays fixed."""
    seq = range(1, len(layers)) if down else range(len(layers) - 2, 0, -1)
    for k in seq:
        ref = layers[k - 1] if down else layers[k + 1]
        nbrs = g.preds if down else g.succs
        pos = {n: i for i, n in enumerate(ref)}
        scale = (len(layers[k]) - 1) / max(len(ref) - 1, 1)

        def key(item: tuple[int, str], nbrs: dict[str, list[str]] = nbrs,
                pos: dict[str, int] = pos, scale: float = scale) -> tuple[float, int]:
            i, n = item
            ps = [pos[m] for m in nbrs[n] if m in pos]
            return (sum(ps) / len(ps) * scale if ps else float(i), i)

        layers[k] = [n for _, n in sorted(enumerate(layers[k]), key=key)]


def _transpose(layers: list[list[str]], g: _Layered, rounds: int = 6) -> None:
    """Swap neighbours in a layer while that removes crossings."""
    def local(k: int) -> int:
        below = _crossings(layers[k], layers[k - 1], g.preds)
        above = _crossings(layers[k + 1], layers[k], g.preds) if k + 1 < len(layers) else 0
        return below + above

    for _ in range(rounds):
        improved = False
        for k in range(1, len(layers)):
            for i in range(len(layers[k]) - 1):
                before = local(k)
                layers[k][i], layers[k][i + 1] = layers[k][i + 1], layers[k][i]
                if local(k) < before:
                    improved = True
                else:
                    layers[k][i], layers[k][i + 1] = layers[k][i + 1], layers[k][i]
        if not improved:
            return


def _order(g: _Layered, sweeps: int = 12) -> list[list[str]]:
    """Layer orders with few crossings: the best of several barycenter sweeps, then swaps."""
    current = [list(layer) for layer in g.layers]
    best, best_c = [list(layer) for layer in current], _total_crossings(current, g.preds)
    for it in range(sweeps):
        _sweep(current, g, down=it % 2 == 0)
        c = _total_crossings(current, g.preds)
        if c < best_c:
            best, best_c = [list(layer) for layer in current], c
    _transpose(best, g)
    return best


# -- x positions -------------------------------------------------------------------------------
def _isotonic(z: list[float], w: list[float]) -> list[float]:
    """Weighted least-squares nondecreasing fit of ``z`` (pool adjacent violators)."""
    pools: list[list[float]] = []  # [value, weight, count]
    for zi, wi in zip(z, w, strict=True):
        pools.append([zi, wi, 1])
        while len(pools) > 1 and pools[-2][0] > pools[-1][0]:
            v2, w2, c2 = pools.pop()
            v1, w1, c1 = pools.pop()
            pools.append([(v1 * w1 + v2 * w2) / (w1 + w2), w1 + w2, c1 + c2])
    return [v for v, _, c in pools for _ in range(int(c))]


def _separations(layer: list[str], g: _Layered) -> list[float]:
    """Cumulative minimum offset of each node's centre from the first node's centre."""
    offsets = [0.0]
    for a, b in itertools.pairwise(layer):
        gap = DUMMY_GAP if "@" in a + b else NODE_GAP
        offsets.append(offsets[-1] + (g.width[a] + g.width[b]) / 2 + gap)
    return offsets


def _place(layer: list[str], desired: list[float], g: _Layered) -> dict[str, float]:
    """Closest positions to ``desired`` that keep the order and the gaps of ``layer``."""
    offsets = _separations(layer, g)
    weights = [2.0 if "@" in n else 1.0 for n in layer]  # long edges straight first
    y = _isotonic([d - o for d, o in zip(desired, offsets, strict=True)], weights)
    return {n: yi + o for n, yi, o in zip(layer, y, offsets, strict=True)}


def _assign_x(order: list[list[str]], g: _Layered, rounds: int = 40) -> dict[str, float]:
    """Centre x of every node: packed, then pulled towards its neighbours' mean.

    A dummy is pulled towards the mean of its whole chain (its dummies and both ends), so a
    long edge runs as one vertical column where the layers leave room, not as a staircase.
    """
    chain_of = {d: chain for chain in g.chains for d in chain[1:-1]}
    x: dict[str, float] = {}
    for layer in order:
        offsets = _separations(layer, g)
        x.update({n: o - offsets[-1] / 2 for n, o in zip(layer, offsets, strict=True)})
    for it in range(rounds):
        seq = order if it % 2 == 0 else order[::-1]
        for layer in seq:
            desired = []
            for n in layer:
                nb = chain_of.get(n) or g.preds[n] + g.succs[n]
                desired.append(sum(x[m] for m in nb) / len(nb) if nb else x[n])
            x.update(_place(layer, desired, g))
    return x


# -- routes ------------------------------------------------------------------------------------
def _ports(chains: list[list[str]], x: dict[str, float],
           boxes: dict[str, Box]) -> dict[tuple[int, str], float]:
    """Where each edge leaves its source's top and enters its target's bottom: spread over
    the box by the other end's x, so edges fanning out of one node do not start on one point."""
    outs: dict[str, list[int]] = {}
    ins: dict[str, list[int]] = {}
    for e, chain in enumerate(chains):
        outs.setdefault(chain[0], []).append(e)
        ins.setdefault(chain[-1], []).append(e)
    port: dict[tuple[int, str], float] = {}
    for side, groups in (("out", outs), ("in", ins)):
        for n, es in groups.items():
            other = 1 if side == "out" else -2
            es = sorted(es, key=lambda e: (x[chains[e][other]], e))
            b = boxes[n]
            for j, e in enumerate(es):
                port[(e, side)] = b.x0 + (b.x1 - b.x0) * (0.15 + 0.7 * (j + 0.5) / len(es))
    return port


def _routes(g: _Layered, x: dict[str, float], layer_y: list[float], half_h: float,
            boxes: dict[str, Box]) -> list[tuple[str, str, list[tuple[float, float]]]]:
    """Each edge as points: its source port, the bottom and top of every dummy on its way
    (so it crosses a layer inside the dummy's reserved column), and its target port."""
    port = _ports(g.chains, x, boxes)
    layer_of = {n: k for k, layer in enumerate(g.layers) for n in layer}
    routes = []
    for e, chain in enumerate(g.chains):
        pts = [(port[(e, "out")], boxes[chain[0]].y1)]
        for d in chain[1:-1]:
            y = layer_y[layer_of[d]]
            pts += [(x[d], y - half_h), (x[d], y + half_h)]
        pts.append((port[(e, "in")], boxes[chain[-1]].y0))
        routes.append((chain[0], chain[-1], pts))
    return routes


def _node_widths(graph: CellGraph, sizes: dict[str, tuple[float, float]]) -> dict[str, float]:
    """Box widths: the label plus padding, and room for every edge at the top and bottom."""
    outs = {n.id: 0 for n in graph.nodes}
    ins = dict(outs)
    for u, v in graph.edges:
        outs[u] += 1
        ins[v] += 1
    return {n: max(w + 2 * PAD_X, PORT_WIDTH * max(outs[n], ins[n]))
            for n, (w, _) in sizes.items()}


def _layer_ys(g: _Layered, x: dict[str, float], box_h: float) -> list[float]:
    """Centre y of each layer: gaps grow where edges run far sideways, so they stay legible."""
    ys = [MARGIN + box_h / 2]
    for lower in g.layers[:-1]:
        run = max((abs(x[v] - x[u]) for u in lower for v in g.succs[u]), default=0.0)
        gap = min(max(LAYER_GAP, LAYER_SLOPE * run), MAX_LAYER_GAP)
        ys.append(ys[-1] + box_h + gap)
    return ys


def layout_cell(cell: Any, font_size: float = FONT_SIZE) -> CellLayout:
    """Lay out one cell: node and label boxes, edge routes and the extent, in points."""
    graph = cell_graph(cell)
    sizes = {n.id: text_size(n.label, font_size) for n in graph.nodes}
    box_h = max(h for _, h in sizes.values()) + 2 * PAD_Y
    g = _layered(graph, _node_widths(graph, sizes))
    g.layers = _order(g)
    x = _assign_x(g.layers, g)
    left = min(x[n] - g.width[n] / 2 for n in x) - MARGIN
    x = {n: v - left for n, v in x.items()}
    layer_y = _layer_ys(g, x, box_h)
    layer_of = {n.id: n.layer for n in graph.nodes}
    boxes, label_boxes = {}, {}
    for n in graph.nodes:
        cx, cy, w = x[n.id], layer_y[layer_of[n.id]], g.width[n.id]
        boxes[n.id] = Box(cx - w / 2, cy - box_h / 2, cx + w / 2, cy + box_h / 2)
        tw, th = sizes[n.id]
        label_boxes[n.id] = Box(cx - tw / 2, cy - th / 2, cx + tw / 2, cy + th / 2)
    width = max(x[n] + g.width[n] / 2 for n in x) + MARGIN
    height = layer_y[-1] + box_h / 2 + MARGIN
    routes = _routes(g, x, layer_y, box_h / 2, boxes)
    return CellLayout(graph, boxes, label_boxes, routes, width, height, font_size)
