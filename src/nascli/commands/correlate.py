"""``nascli correlate``: rank correlation of zero-cost proxies with trained accuracy, and (with
``reference.*`` set) of the search score and the proxies with a longer-trained reference."""

from __future__ import annotations

import json
import logging
import math
import os
from pathlib import Path
from typing import Any

import numpy as np
from omegaconf import DictConfig, OmegaConf
from rich.table import Table
from scipy import stats

from nascli.commands.common import EstimatorFactory, build_device, build_space, load_data
from nascli.config import instantiate, locate, option_name
from nascli.engine.console import console
from nascli.engine.rundir import HISTORY, RunDir, now_iso, read_history
from nascli.errors import UserError
from nascli.estimators.proxy import ProxyEstimator
from nascli.proxies import PROXIES

log = logging.getLogger("nascli.correlate")

BASELINES = ("params", "macs")
#: a ``reference`` key left at this value takes the proxy's option
INHERIT = "proxy"
#: each finished reference evaluation, one JSON object a line, written as it finishes
REFERENCE_FILE = "reference.jsonl"
#: the key of the search's own score (the ``proxy`` estimator) in the reference correlations
SEARCH_SCORE = "search_score"


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


# -- the reference estimator ---------------------------------------------------------------------
def reference_options(cfg: DictConfig) -> dict[str, Any] | None:
    """The reference estimator's config node: the proxy's training options (when the proxy is a
    TrainEstimator) with the ``reference`` keys that are set; None while none is (off)."""
    section = cfg.get("reference")
    if section is None:
        return None
    if not isinstance(section, DictConfig):
        raise UserError(f"reference={section!r} is invalid; expected training options such as "
                        "reference.epochs=3 reference.data_fraction=1.0, or null (off)")
    given = {str(k): v for k, v in OmegaConf.to_container(section, resolve=True).items()
             if v != INHERIT}
    if not given:
        return None
    return {**_train_options(cfg), **given}


def _train_options(cfg: DictConfig) -> dict[str, Any]:
    """The proxy's node when its estimator trains (TrainEstimator or a subclass), else a
    TrainEstimator with the default search recipe."""
    from nascli.estimators import TrainEstimator

    target = locate(str(cfg.proxy.get("_target_", "")), "proxy")
    if isinstance(target, type) and issubclass(target, TrainEstimator):
        return OmegaConf.to_container(cfg.proxy, resolve=True)
    return {"_target_": "nascli.estimators.TrainEstimator"}


def build_reference(cfg: DictConfig, built: tuple[Any, ...], seed: int
                    ) -> tuple[Any, dict[str, Any]] | None:
    """``(estimator, its resolved options)`` of ``cfg.reference``, or None when it is off.
    A bad key or value fails here, in one line, before anything is trained."""
    options = reference_options(cfg)
    if options is None:
        return None
    space, data, settings, device = built
    estimator = instantiate(OmegaConf.create(options), "reference", space=space, data=data,
                            device=device, amp=settings.amp,
                            channels_last=settings.channels_last, seed=seed)
    resolved = estimator.options() if hasattr(estimator, "options") else {
        k: v for k, v in options.items() if not k.startswith("_")}
    if cfg.reference.get("max_steps") == INHERIT and resolved.get("max_steps") is not None:
        log.warning("reference keeps the proxy's cap max_steps=%s (over the whole training); "
                    "reference.max_steps=null trains it uncapped", resolved["max_steps"])
    return estimator, resolved


def _seed_of(row: dict[str, Any], base: int) -> int:
    """The seed an evaluation was trained with (its metrics say; else the search's rule)."""
    seed = (row.get("metrics") or {}).get("seed")
    return int(seed) if isinstance(seed, int) else base + int(row["id"])


def _scored_before(from_run: Any, options: dict[str, Any]) -> dict[tuple[str, int], dict]:
    """Reference evaluations a (killed) earlier correlate run in ``from_run`` finished with
    the same options, by (architecture hash, seed)."""
    path = Path(str(from_run)).expanduser() / REFERENCE_FILE if from_run else None
    if path is None or not path.is_file():
        return {}
    done = {}
    for line in path.read_text(encoding="utf-8").splitlines():
        try:
            rec = json.loads(line)
        except ValueError:  # a torn last line
            continue
        if isinstance(rec, dict) and rec.get("options") == options and rec.get("status") == "ok":
            done[(rec["hash"], rec["seed"])] = rec
    return done


def _evaluate_reference(reference: Any, space: Any, row: dict[str, Any], seed: int,
                        options: dict[str, Any]) -> dict[str, Any]:
    """One architecture trained by the reference, as a ``reference.jsonl`` record."""
    est = reference(space.from_json(row["genotype"]), seed=seed)
    return {"id": row["id"], "hash": row["hash"], "seed": seed,
            "score": est.score if est.ok else None, "status": est.status, "error": est.error,
            "seconds": est.seconds, "metrics": est.metrics, "options": options,
            "genotype": row["genotype"]}


def reference_scores(reference: tuple[Any, dict[str, Any]], rows: list[dict[str, Any]],
                     space: Any, run_dir: RunDir, cfg: DictConfig) -> list[dict[str, Any]]:
    """Each row's architecture trained by the reference with the row's seed, appended to
    ``reference.jsonl`` (on disk) as it finishes; those ``from_run`` finished are reused."""
    estimator, options = reference
    done = _scored_before(cfg.from_run, options)
    out = []
    with open(run_dir.path / REFERENCE_FILE, "a", encoding="utf-8") as fh:
        for i, row in enumerate(rows):
            seed = _seed_of(row, int(cfg.seed))
            rec = done.get((row["hash"], seed)) or _evaluate_reference(estimator, space, row,
                                                                       seed, options)
            fh.write(json.dumps(rec, default=str) + "\n")
            fh.flush()
            os.fsync(fh.fileno())
            log.info("reference %d/%d: accuracy %s, %.1f s%s", i + 1, len(rows), rec["score"],
                     rec["seconds"], " (from from_run)" if (row["hash"], seed) in done else "")
            out.append(rec)
    return out


def versus_reference(ref_rows: list[dict[str, Any]], candidates: dict[str, list],
                     seconds: dict[str, float], options: dict[str, Any]) -> dict[str, Any]:
    """Spearman and Kendall of every candidate score (the search score, each proxy, the
    baselines) against the reference's accuracy, with each one's mean seconds per
    architecture; the reference's own accuracies and seconds."""
    ref_acc = [r["score"] for r in ref_rows]
    rows = {name: {**rank_correlations(values, ref_acc), "seconds": seconds.get(name)}
            for name, values in candidates.items()}
    return {"options": options, "file": REFERENCE_FILE, "accuracies": ref_acc,
            "failed": sum(a is None for a in ref_acc),
            "seconds": _mean([r["seconds"] for r in ref_rows]), "correlations": rows}


# -- the command ---------------------------------------------------------------------------------
def _trained(cfg: DictConfig, built: tuple[Any, ...], run_dir: RunDir) -> list[dict[str, Any]]:
    """The finished evaluations (history rows): from an existing run, or trained here."""
    if cfg.from_run:
        path = Path(str(cfg.from_run)).expanduser()
        rows = read_history(path / HISTORY)
        if not rows:
            raise UserError(f"from_run={path}: no {HISTORY} with evaluations")
        return [r for r in rows if r["status"] == "ok"]
    from nascli.engine.executors import LocalExecutor
    from nascli.engine.search import Budget, Search
    from nascli.strategies import build

    space, seed = built[0], int(cfg.seed)
    search = Search(space, build("random", space, seed),
                    LocalExecutor(EstimatorFactory(cfg, seed, built=built)),
                    Budget(int(cfg.samples)), run_dir=run_dir,
                    progress=str(cfg.progress) == "on", seed=seed)
    result = search.run()
    return [r for r in result.history if r["status"] == "ok"]


def proxy_scores(cfg: DictConfig, names: list[str], built: tuple[Any, ...],
                 genotypes: list[Any]) -> tuple[dict[str, list], dict[str, float]]:
    """Each proxy's (and baseline's) score of each freshly initialised network, and its mean
    seconds per architecture."""
    space, data, _, device = built
    seed = int(cfg.seed)
    scores: dict[str, list[float | None]] = {}
    seconds: dict[str, float] = {}
    for name in names:
        estimator = ProxyEstimator(space, data, device=device, seed=seed, name=name,
                                   batch_size=int(cfg.proxy_batch_size))
        ests = [estimator(g, seed=seed + i) for i, g in enumerate(genotypes)]
        scores[name] = [e.score if e.ok else None for e in ests]
        seconds[name] = _mean([e.seconds for e in ests])
        log.info("scored %d architectures with %s", len(genotypes), name)
    return scores, seconds


def _check_proxies(cfg: DictConfig) -> None:
    unknown = [p for p in cfg.proxies if p not in PROXIES]
    if unknown:
        raise UserError(f"proxies: unknown {', '.join(map(str, unknown))}; valid: "
                        f"{', '.join(PROXIES.names())}")


def correlate_task(cfg: DictConfig) -> dict[str, Any]:
    """The Hydra task of ``nascli correlate``."""
    from hydra.core.hydra_config import HydraConfig

    _check_proxies(cfg)
    seed = int(cfg.seed)
    space = build_space(cfg)
    settings, device = build_device(cfg)
    built = (space, load_data(cfg, seed), settings, device)
    reference = build_reference(cfg, built, seed)
    run_dir = RunDir(HydraConfig.get().runtime.output_dir)
    rows = _trained(cfg, built, run_dir)
    if len(rows) < 3:
        raise UserError(f"only {len(rows)} trained architectures; correlations need >= 3")
    ref_rows = reference_scores(reference, rows, space, run_dir, cfg) if reference else None
    names = list(dict.fromkeys([*map(str, cfg.proxies), *BASELINES]))
    scores, seconds = proxy_scores(cfg, names, built, [space.from_json(r["genotype"])
                                                       for r in rows])
    accuracies = [r["score"] for r in rows]
    seconds = {SEARCH_SCORE: _mean([r.get("seconds", 0.0) for r in rows]), **seconds}
    table_rows = {name: rank_correlations(scores[name], accuracies) for name in names}
    result = {"dataset": built[1].summary(), "architectures": len(rows),
              "accuracy": {"min": min(accuracies), "max": max(accuracies),
                           "mean": float(np.mean(accuracies))},
              "correlations": table_rows, "scores": scores, "accuracies": accuracies,
              "seconds": seconds, "finished_at": now_iso()}
    if ref_rows is not None:
        result["reference"] = versus_reference(ref_rows, {SEARCH_SCORE: accuracies, **scores},
                                               seconds, reference[1])
    run_dir.write_json("correlation.json", result)
    _report(cfg, run_dir, result, names)
    return table_rows


def _report(cfg: DictConfig, run_dir: RunDir, result: dict[str, Any], names: list[str]) -> None:
    """Scatter plots and the tables: proxies against the trained score, and every score
    against the reference when there is one."""
    n, data = result["architectures"], result["dataset"]["name"]
    _plots(run_dir.path, names, result["scores"], result["accuracies"])
    console().print(correlation_table(result["correlations"],
                                      f"proxy vs accuracy: {n} architectures on {data}"))
    ref = result.get("reference")
    if ref is None:
        return
    search = option_name(cfg, "proxy")
    _plots(run_dir.path, [SEARCH_SCORE, *names],
           {SEARCH_SCORE: result["accuracies"], **result["scores"]}, ref["accuracies"],
           folder="scatter_reference", ylabel="reference accuracy")
    changed = ", ".join(f"{k}={v}" for k, v in OmegaConf.to_container(cfg.reference).items()
                        if v != INHERIT)
    console().print(correlation_table(
        ref["correlations"], f"score vs reference accuracy ({changed}): {n} architectures on "
        f"{data}", labels={SEARCH_SCORE: f"{search} (search score)"},
        caption=f"reference: {_fmt_s(ref['seconds'])} s/arch, {ref['failed']} failed; "
                "p: two-sided p-value against no correlation"))


def correlation_table(rows: dict[str, dict[str, Any]], title: str,
                      labels: dict[str, str] | None = None, caption: str | None = None) -> Table:
    """One line per proxy: Spearman's rho and Kendall's tau, each with its two-sided p-value
    (the chance of a correlation this strong between unrelated rankings), and n; and the mean
    seconds per architecture when the rows have them."""
    timed = any("seconds" in r for r in rows.values())
    table = Table(title=title, caption=caption or "p: two-sided p-value against no correlation")
    columns = ["proxy", "Spearman rho", "p (rho)", "Kendall tau", "p (tau)", "n"]
    for col in columns + (["s/arch"] if timed else []):
        table.add_column(col, justify="left" if col == "proxy" else "right")
    for name, r in rows.items():
        label = (labels or {}).get(name, name + (" (baseline)" if name in BASELINES else ""))
        cells = [label, _fmt(r["spearman"]), _fmt_p(r.get("spearman_p")), _fmt(r["kendall"]),
                 _fmt_p(r.get("kendall_p")), str(r["n"])]
        table.add_row(*cells, *([_fmt_s(r.get("seconds"))] if timed else []))
    return table


def _mean(values: list[float]) -> float:
    return float(np.mean(values)) if values else 0.0


def _fmt(value: float | None) -> str:
    return "-" if value is None or not math.isfinite(value) else f"{value:+.3f}"


def _fmt_s(value: float | None) -> str:
    """Seconds: 2 decimals below 10, 1 above."""
    if value is None or not math.isfinite(value):
        return "-"
    return f"{value:.2f}" if value < 10 else f"{value:.1f}"


def _fmt_p(value: float | None) -> str:
    """A p-value: 3 decimals, or scientific notation below 0.001."""
    if value is None or not math.isfinite(value):
        return "-"
    return f"{value:.3f}" if value >= 1e-3 else f"{value:.1e}"


def _plots(out: Path, names: list[str], scores: dict[str, list], accuracies: list[float], *,
           folder: str = "scatter", ylabel: str = "validation accuracy") -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    where = out / folder
    where.mkdir(exist_ok=True)
    for name in names:
        xs = [(s, a) for s, a in zip(scores[name], accuracies, strict=True)
              if s is not None and a is not None]
        fig, ax = plt.subplots(figsize=(4.5, 3.5))
        if xs:
            ax.scatter(*zip(*xs, strict=True), s=14)
        ax.set(xlabel=name, ylabel=ylabel,
               title=f"{name} vs {ylabel.removeprefix('validation ')}")
        if name in BASELINES and xs and min(s for s, _ in xs) > 0:
            ax.set_xscale("log")
        fig.tight_layout()
        fig.savefig(where / f"{name}.png", dpi=110)
        plt.close(fig)
