"""Cell diagrams: each cell drawn as a small DAG with matplotlib (no graphviz needed)."""

from __future__ import annotations

from pathlib import Path
from typing import Any


def _layout(cell: Any) -> dict[int, tuple[float, float]]:
    """x by longest path from the inputs, y spread within each column."""
    depth = {0: 0, 1: 0}
    for b, block in enumerate(cell.blocks):
        depth[b + 2] = 1 + max(depth[i] for i in block.inputs)
    columns: dict[int, list[int]] = {}
    for state, d in depth.items():
        columns.setdefault(d, []).append(state)
    pos = {}
    for d, states in columns.items():
        for k, s in enumerate(states):
            pos[s] = (float(d), -(k - (len(states) - 1) / 2))
    return pos


def draw_cell(ax: Any, cell: Any, title: str) -> None:
    """Draw one cell on a matplotlib axis: states as boxes, ops as labelled edges."""
    pos = _layout(cell)
    out_x = max(x for x, _ in pos.values()) + 1.2
    names = {0: "h_i", 1: "h_{i-1}"}
    for b, block in enumerate(cell.blocks):
        tx, ty = pos[b + 2]
        for i, op in zip(block.inputs, block.ops, strict=True):
            sx, sy = pos[i]
            ax.annotate("", xy=(tx, ty), xytext=(sx, sy),
                        arrowprops={"arrowstyle": "->", "color": "0.4", "lw": 1})
            ax.text((sx + tx) / 2, (sy + ty) / 2, op, fontsize=6, ha="center",
                    bbox={"boxstyle": "round,pad=0.1", "fc": "white", "ec": "none"})
    for s in cell.concat:
        sx, sy = pos[s]
        ax.annotate("", xy=(out_x, 0), xytext=(sx, sy),
                    arrowprops={"arrowstyle": "->", "color": "tab:red", "lw": 0.8, "alpha": 0.6})
    for s, (x, y) in pos.items():
        combine = cell.blocks[s - 2].combine if s >= 2 else None
        label = names.get(s, f"{s - 2}" + ("+" if combine == "add" else "||"))
        ax.text(x, y, label, ha="center", va="center", fontsize=8,
                bbox={"boxstyle": "round", "fc": "lightblue" if s < 2 else "wheat"})
    ax.text(out_x, 0, "concat", ha="center", va="center", fontsize=8,
            bbox={"boxstyle": "round", "fc": "lightcoral"})
    ax.set_title(title, fontsize=9)
    ax.set_xlim(-0.6, out_x + 0.6)
    ys = [y for _, y in pos.values()]
    ax.set_ylim(min(ys) - 0.8, max(ys) + 0.8)
    ax.axis("off")


def draw_genotype(genotype: Any, path: str | Path, title: str = "") -> Path:
    """Save a PNG with the normal and the reduction cell of ``genotype``."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, axes = plt.subplots(1, 2, figsize=(12, 4))
    draw_cell(axes[0], genotype.normal, f"normal cell {title}")
    draw_cell(axes[1], genotype.reduce, f"reduction cell {title}")
    fig.tight_layout()
    path = Path(path)
    fig.savefig(path, dpi=130)
    plt.close(fig)
    return path
