"""``nascli correlate``: rank correlation of zero-cost proxies with trained accuracy."""

from __future__ import annotations

import logging
import math
from pathlib import Path
from typing import Any

import numpy as np
from omegaconf import DictConfig
from rich.table import Table
from scipy import stats

from nascli.commands.common import EstimatorFactory, build_device, build_space, load_data
from nascli.engine.console import console
from nascli.engine.rundir import HISTORY, RunDir, now_iso, read_history
from nascli.errors import UserError
from nascli.estimators.proxy import ProxyEstimator
from nascli.proxies import PROXIES

log = logging.getLogger("nascli.correlate")

BASELINES = ("params", "macs")


def rank_correlations(proxy_scores: list[float], accuracies: list[float]) -> dict[str, Any]:
    """Spearman's rho and Kendall's tau (with p-values) over the finite pairs."""
    pairs = [(p, a) for p, a in zip(proxy_scores, accuracies, strict=True)
             if p is not None and math.isfinite(p) and a is not None]
    if len(pairs) < 3 or len({p for p, _ in pairs}) < 2:
        return {"n": len(pairs), "spearman": None, "kendall": None}
    x, y = np.array(pairs).T
    rho, p_rho = stats.spearmanr(x, y)
    tau, p_tau = stats.kendalltau(x, y)
    return {"n": len(pairs), "spearman": float(rho), "spearman_p": float(p_rho),
            "kendall": float(tau), "kendall_p": float(p_tau)}


def _trained(cfg: DictConfig, built: tuple[Any, ...], run_dir: RunDir
             ) -> list[tuple[Any, float]]:
    """(genotype, accuracy) pairs: from an existing run, or trained here."""
    if cfg.from_run:
        path = Path(str(cfg.from_run)).expanduser()
        rows = read_history(path / HISTORY)
        if not rows:
            raise UserError(f"from_run={path}: no {HISTORY} with evaluations")
        return [(built[0].from_json(r["genotype"]), r["score"]) for r in rows
                if r["status"] == "ok"]
    from nascli.engine.executors import LocalExecutor
    from nascli.engine.search import Budget, Search
    from nascli.strategies import build

    space, seed = built[0], int(cfg.seed)
    search = Search(space, build("random", space, seed),
                    LocalExecutor(EstimatorFactory(cfg, seed, built=built)),
                    Budget(int(cfg.samples)), run_dir=run_dir,
                    progress=str(cfg.progress) == "on", seed=seed)
    result = search.run()
    return [(space.from_json(r["genotype"]), r["score"]) for r in result.history
            if r["status"] == "ok"]


def correlate_task(cfg: DictConfig) -> dict[str, Any]:
    """The Hydra task of ``nascli correlate``."""
    from hydra.core.hydra_config import HydraConfig

    unknown = [p for p in cfg.proxies if p not in PROXIES]
    if unknown:
        raise UserError(f"proxies: unknown {', '.join(map(str, unknown))}; valid: "
                        f"{', '.join(PROXIES.names())}")
    space = build_space(cfg)
    settings, device = build_device(cfg)
    seed = int(cfg.seed)
    data = load_data(cfg, seed)
    run_dir = RunDir(HydraConfig.get().runtime.output_dir)
    pairs = _trained(cfg, (space, data, settings, device), run_dir)
    if len(pairs) < 3:
        raise UserError(f"only {len(pairs)} trained architectures; correlations need >= 3")
    accuracies = [a for _, a in pairs]
    names = list(dict.fromkeys([*map(str, cfg.proxies), *BASELINES]))
    scores: dict[str, list[float | None]] = {}
    for name in names:
        estimator = ProxyEstimator(space, data, device=device, seed=seed, name=name,
                                   batch_size=int(cfg.proxy_batch_size))
        values = []
        for i, (g, _) in enumerate(pairs):
            est = estimator(g, seed=seed + i)
            values.append(est.score if est.ok else None)
        scores[name] = values
        log.info("scored %d architectures with %s", len(pairs), name)
    table_rows = {name: rank_correlations(scores[name], accuracies) for name in names}
    result = {"dataset": data.summary(), "architectures": len(pairs),
              "accuracy": {"min": min(accuracies), "max": max(accuracies),
                           "mean": float(np.mean(accuracies))},
              "correlations": table_rows, "scores": scores, "accuracies": accuracies,
              "finished_at": now_iso()}
    run_dir.write_json("correlation.json", result)
    _plots(run_dir.path, names, scores, accuracies)
    console().print(correlation_table(
        table_rows, f"proxy vs accuracy: {len(pairs)} architectures on {data.name}"))
    return table_rows


def correlation_table(rows: dict[str, dict[str, Any]], title: str) -> Table:
    """One line per proxy: Spearman's rho and Kendall's tau, each with its two-sided p-value
    (the chance of a correlation this strong between unrelated rankings), and n."""
    table = Table(title=title, caption="p: two-sided p-value against no correlation")
    for col in ("proxy", "Spearman rho", "p (rho)", "Kendall tau", "p (tau)", "n"):
        table.add_column(col, justify="left" if col == "proxy" else "right")
    for name, r in rows.items():
        table.add_row(name + (" (baseline)" if name in BASELINES else ""), _fmt(r["spearman"]),
                      _fmt_p(r.get("spearman_p")), _fmt(r["kendall"]),
                      _fmt_p(r.get("kendall_p")), str(r["n"]))
    return table


def _fmt(value: float | None) -> str:
    return "-" if value is None or not math.isfinite(value) else f"{value:+.3f}"


def _fmt_p(value: float | None) -> str:
    """A p-value: 3 decimals, or scientific notation below 0.001."""
    if value is None or not math.isfinite(value):
        return "-"
    return f"{value:.3f}" if value >= 1e-3 else f"{value:.1e}"


def _plots(out: Path, names: list[str], scores: dict[str, list], accuracies: list[float]) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    folder = out / "scatter"
    folder.mkdir(exist_ok=True)
    for name in names:
        xs = [(s, a) for s, a in zip(scores[name], accuracies, strict=True) if s is not None]
        fig, ax = plt.subplots(figsize=(4.5, 3.5))
        if xs:
            ax.scatter(*zip(*xs, strict=True), s=14)
        ax.set(xlabel=name, ylabel="validation accuracy", title=f"{name} vs accuracy")
        if name in BASELINES and xs and min(s for s, _ in xs) > 0:
            ax.set_xscale("log")
        fig.tight_layout()
        fig.savefig(folder / f"{name}.png", dpi=110)
        plt.close(fig)
