"""Report pieces of one-shot runs: the inherited-vs-stand-alone ranking of ``oneshot.probe``
(``oneshot_ranking.json``) and the DARTS op weights per epoch (``darts_alphas.json``)."""

from __future__ import annotations

import logging
from pathlib import Path
from typing import Any

import numpy as np

from nascli.engine.console import console
from nascli.engine.rundir import RunDirError, read_json_object
from nascli.report.figures import save as save_figure

log = logging.getLogger("nascli.report")


def _read(path: Path) -> dict[str, Any]:
    """A one-shot file, or {} when absent or damaged (the report goes on, and says so)."""
    try:
        return read_json_object(path)
    except RunDirError as exc:
        log.warning("%s; left out of the report", exc)
        return {}


def ranking(run: Path, out: Path) -> dict[str, Any] | None:
    """Print and plot ``oneshot_ranking.json``; the summary, or None without one."""
    data = _read(run / "oneshot_ranking.json")
    rows = [r for r in data.get("rows", []) if isinstance(r, dict)
            and isinstance(r.get("inherited"), (int, float))
            and isinstance(r.get("standalone"), (int, float))]
    if not rows:
        return None
    tau, rho = data.get("kendall_tau"), data.get("spearman_rho")
    shares = data.get("param_free_share") or {}
    console().print(
        f"{run}: inherited vs stand-alone on {len(rows)} probes: Kendall tau "
        f"{_fmt(tau)}, Spearman rho {_fmt(rho)}; parameter-free ops: best "
        f"{_fmt(shares.get('best'))}, top-10 {_fmt(shares.get('top10'))}, uniform "
        f"{_fmt(shares.get('uniform'))}")
    import matplotlib.pyplot as plt

    fig, ax = plt.subplots(figsize=(5.5, 4.5))
    ax.scatter([r["inherited"] for r in rows], [r["standalone"] for r in rows], s=18)
    ax.set(xlabel="inherited accuracy (supernet)", ylabel="stand-alone score",
           title=f"ranking: tau {_fmt(tau)}, rho {_fmt(rho)} (n={len(rows)})")
    fig.tight_layout()
    name = save_figure(fig, out, f"oneshot_ranking_{run.name}")[0]  # PNG and SVG
    return {"run": str(run), "probes": len(rows), "kendall_tau": tau, "spearman_rho": rho,
            "param_free_share": shares, "plot": name}


def darts_alphas(run: Path, out: Path) -> dict[str, Any] | None:
    """Plot the mean softmax weight of every op per epoch and cell type (a collapse to
    skip connections or pooling shows as those lines rising); None without the file."""
    data = _read(run / "darts_alphas.json")
    ops, epochs = data.get("ops"), data.get("epochs")
    if not isinstance(ops, list) or not isinstance(epochs, list) or not epochs:
        return None
    import matplotlib.pyplot as plt

    fig, axes = plt.subplots(1, 2, figsize=(11, 4.2), sharey=True)
    last: dict[str, list[float]] = {}
    for ax, kind in zip(axes, ("normal", "reduce"), strict=True):
        try:
            weights = np.array([np.mean(np.array(e[kind], dtype=float), axis=0)
                                for e in epochs])
        except (KeyError, TypeError, ValueError):
            log.warning("%s: malformed %s weights; left out", run / "darts_alphas.json", kind)
            continue
        x = [e.get("epoch", i) for i, e in enumerate(epochs)]
        for j, op in enumerate(ops[: weights.shape[1]]):
            ax.plot(x, weights[:, j], label=op)
        ax.set(xlabel="epoch", title=f"{kind} cell: mean op weight")
        last[kind] = [round(float(v), 4) for v in weights[-1]]
    axes[0].set_ylabel("softmax weight")
    axes[-1].legend(fontsize=7, loc="upper left", bbox_to_anchor=(1, 1))
    fig.tight_layout()
    name = save_figure(fig, out, f"darts_alphas_{run.name}")[0]  # PNG and SVG
    share = epochs[-1].get("param_free_share")
    console().print(f"{run}: DARTS op weights over {len(epochs)} epochs -> {out / name}; "
                    f"parameter-free share of the derived cell {_fmt(share)}")
    return {"run": str(run), "epochs": len(epochs), "final_mean_weights": last,
            "param_free_share": share, "plot": name}


def _fmt(v: Any) -> str:
    return f"{v:.3f}" if isinstance(v, (int, float)) else "n/a"
