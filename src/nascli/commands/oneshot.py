"""The one-shot phases of ``nascli search``: train the supernet first, re-rank and probe after.

Phase 1 (before the search) trains the supernet of ``proxy=supernet`` into the run directory
(``supernet.pt``, rewritten each epoch, resumed after a kill) unless ``oneshot.supernet`` names
a trained one. Phase 2 is the ordinary search loop, scoring candidates by inheritance. Phase 3
re-scores the ``oneshot.rerank_top_k`` best by a stand-alone estimator (``oneshot.reference``,
train-and-test by default) and picks ``best.json`` by that score, and measures how well the
inherited ranking agrees with the stand-alone one on ``oneshot.probe`` random genotypes
(``oneshot_ranking.json``: Kendall tau and Spearman rho).
"""

from __future__ import annotations

import logging
import math
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import torch
from omegaconf import DictConfig, OmegaConf, open_dict
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn

from nascli.config import check, instantiate, locate, section
from nascli.engine.console import console
from nascli.engine.rundir import RunDir, RunDirError, read_json_object
from nascli.errors import UserError
from nascli.oneshot.estimator import SupernetEstimator
from nascli.oneshot.supernet import SuperNet
from nascli.oneshot.train import SupernetTraining, read_checkpoint, train_supernet

log = logging.getLogger("nascli.oneshot")

SUPERNET = "supernet.pt"
RANKING = "oneshot_ranking.json"
RERANK = "oneshot_rerank.json"
#: ops without parameters (a collapse of one-shot rankings towards them is a known failure)
PARAMETER_FREE = ("identity", "avg_pool", "max_pool")


@dataclass
class OneShot(SupernetTraining):
    """The ``oneshot`` section: how the supernet is trained (the fields of
    :class:`~nascli.oneshot.train.SupernetTraining`), or which trained one to load, and the
    re-ranking and probing after the search."""

    supernet: str | None = None
    rerank_top_k: int = 0
    probe: int = 0
    reference: dict[str, Any] = field(
        default_factory=lambda: {"_target_": "nascli.estimators.TrainEstimator"})

    def __post_init__(self) -> None:
        super().__post_init__()
        for key in ("rerank_top_k", "probe"):
            value = getattr(self, key)
            check(isinstance(value, int) and value >= 0, f"oneshot.{key}", value,
                  "an integer >= 0")
        check(self.probe == 0 or self.probe >= 3, "oneshot.probe", self.probe,
              "0 or an integer >= 3 (a rank correlation needs at least 3 genotypes)")

    def recipe(self) -> SupernetTraining:
        """The training fields alone."""
        names = SupernetTraining.__dataclass_fields__
        return SupernetTraining(**{k: getattr(self, k) for k in names})


def settings(cfg: DictConfig) -> OneShot:
    """The ``oneshot`` section of ``cfg`` (defaults when absent)."""
    return section(OneShot, cfg.get("oneshot") or {}, "oneshot")


def uses_supernet(cfg: DictConfig) -> bool:
    """True when the run's estimator scores candidates by supernet inheritance."""
    target = locate(str(cfg.proxy.get("_target_", "")), "proxy")
    return isinstance(target, type) and issubclass(target, SupernetEstimator)


def check_unused(cfg: DictConfig) -> None:
    """Refuse ``oneshot.*`` settings that a run without a supernet would silently ignore."""
    o = settings(cfg)
    for key in ("supernet", "rerank_top_k", "probe"):
        if getattr(o, key):
            raise UserError(f"oneshot.{key}={getattr(o, key)!r} applies to strategy=oneshot or "
                            f"proxy=supernet; this run's proxy is "
                            f"{cfg.proxy.get('_target_', '?')}")


def prepare(cfg: DictConfig, run_dir: RunDir, built: tuple[Any, ...], seed: int,
            progress: bool, on_start: Callable[[], None] | None = None) -> dict[str, Any]:
    """Phase 1: set ``cfg.proxy.supernet`` to a trained supernet (training it if needed, after
    ``on_start()`` has recorded the run); returns facts for the manifest."""
    space, data, device_settings, device = built
    o = settings(cfg)
    given = cfg.proxy.get("supernet") or o.supernet
    if given:
        path = Path(str(given)).expanduser()
        read_checkpoint(path, SuperNet(space, data.num_classes, data.in_channels), data)
        info = {"supernet": str(path), "supernet_trained_here": False}
    else:
        if on_start is not None:
            on_start()
        path = run_dir.path / SUPERNET
        torch.manual_seed(seed)
        supernet = SuperNet(space, data.num_classes, data.in_channels).to(device)
        if device_settings.channels_last:
            supernet = supernet.to(memory_format=torch.channels_last)
        result = _train(supernet, data, o.recipe(), device, device_settings, path, seed,
                        progress)
        info = {"supernet": str(path), "supernet_trained_here": True,
                "supernet_epochs": result.epochs, "supernet_seconds": round(result.seconds, 2),
                "supernet_losses": [round(x, 4) for x in result.losses]}
        log.info("supernet: %d epochs in %.1f s (final loss %.4f) -> %s", result.epochs,
                 result.seconds, result.losses[-1] if result.losses else math.nan, path)
    with open_dict(cfg):
        cfg.proxy.supernet = str(path)
    return info


def _train(supernet: SuperNet, data: Any, recipe: SupernetTraining, device: torch.device,
           device_settings: Any, path: Path, seed: int, progress: bool) -> Any:
    bar = None
    if progress:
        bar = Progress(TextColumn("[bold]supernet epoch {task.fields[epoch]}"), BarColumn(),
                       MofNCompleteColumn(), TextColumn("loss {task.fields[loss]}"),
                       TimeElapsedColumn(), console=console())
        bar.start()
        task = bar.add_task("supernet", total=None, epoch=1, loss="-")

    def on_step(epoch: int, step: int, loss: float) -> None:
        if bar is not None:
            bar.update(task, completed=step, epoch=f"{epoch + 1}/{recipe.epochs}",
                       loss=f"{loss:.3f}")

    try:
        return train_supernet(supernet, data, recipe, device=device, checkpoint=path, seed=seed,
                              amp=device_settings.amp,
                              channels_last=device_settings.channels_last, on_step=on_step)
    finally:
        if bar is not None:
            bar.stop()


# -- phase 3 ----------------------------------------------------------------------------------
def finish(cfg: DictConfig, search: Any, run_dir: RunDir, built: tuple[Any, ...],
           seed: int) -> dict[str, Any]:
    """Re-rank the best candidates and probe the ranking, as configured; returns a summary."""
    o = settings(cfg)
    out: dict[str, Any] = {}
    if not (o.rerank_top_k or o.probe):
        return out
    space, data, device_settings, device = built
    reference = instantiate(OmegaConf.create(o.reference), "oneshot.reference", space=space,
                            data=data, device=device, amp=device_settings.amp,
                            channels_last=device_settings.channels_last, seed=seed)
    if o.rerank_top_k:
        out["rerank"] = rerank(search, run_dir, reference, o.rerank_top_k, seed)
    if o.probe:
        inherit = _inheritance_estimator(cfg, built, seed)
        out["ranking"] = probe(space, run_dir, inherit, reference, o.probe, seed,
                               search.history)
    return out


def _inheritance_estimator(cfg: DictConfig, built: tuple[Any, ...], seed: int) -> Any:
    from nascli.commands.common import build_estimator

    space, data, device_settings, device = built
    return build_estimator(cfg, space, data, device_settings, device, seed)


def _cached(run_dir: RunDir, name: str) -> dict[str, dict[str, Any]]:
    """Rows of an earlier (interrupted) phase-3 file by genotype hash."""
    try:
        data = read_json_object(run_dir.path / name)
    except RunDirError as exc:
        log.warning("%s; computing it again", exc)
        return {}
    rows = data.get("rows") if isinstance(data, dict) else None
    if not isinstance(rows, list):
        return {}
    return {r["hash"]: r for r in rows if isinstance(r, dict) and isinstance(r.get("hash"), str)
            and isinstance(r.get("standalone"), (int, float, type(None)))}


def _standalone(reference: Any, genotype: Any, seed: int) -> tuple[float | None, dict[str, Any]]:
    est = reference(genotype, seed=seed)
    return (est.score if est.ok else None), {"error": est.error, "seconds": round(est.seconds, 3),
                                             **{k: v for k, v in est.metrics.items()
                                                if isinstance(v, (int, float, str))}}


def rerank(search: Any, run_dir: RunDir, reference: Any, k: int, seed: int) -> dict[str, Any]:
    """Re-score the ``k`` best candidates by ``reference``; ``best.json`` becomes the best of
    them by that score. Writes ``oneshot_rerank.json`` after each candidate."""
    space = search.space
    top = sorted((r for r in search.history if r["status"] == "ok"),
                 key=lambda r: (-r["score"], r["id"]))[:k]
    cached = _cached(run_dir, RERANK)
    rows = []
    for r in top:
        row = cached.get(r["hash"])
        if row is None:
            score, extra = _standalone(reference, space.from_json(r["genotype"]),
                                       seed + 1_000_003 + r["id"])
            row = {"id": r["id"], "hash": r["hash"], "arch": r["arch"], "inherited": r["score"],
                   "standalone": score, **extra}
            log.info("rerank #%d: inherited %.4f, stand-alone %s", r["id"], r["score"],
                     "failed" if score is None else f"{score:.4f}")
        rows.append(row)
        run_dir.write_json(RERANK, {"reference": getattr(reference, "name", "?"), "k": k,
                                    "complete": len(rows) == len(top), "rows": rows})
    ok = [r for r in rows if r["standalone"] is not None]
    if not ok:
        return {"k": k, "best": None}
    best = max(ok, key=lambda r: (r["standalone"], -r["id"]))
    by_id = {r["id"]: r for r in search.history}[best["id"]]
    run_dir.write_best(space.from_json(by_id["genotype"]), space, score=best["standalone"],
                       evaluation=best["id"], metrics={"inherited_acc": best["inherited"],
                                                       "reranked_by": getattr(reference, "name",
                                                                              "?")},
                       params=by_id.get("params"), macs=by_id.get("macs"))
    log.info("rerank: best of the top %d by stand-alone score is #%d (%.4f)", k, best["id"],
             best["standalone"])
    return {"k": k, "best": {"id": best["id"], "standalone": best["standalone"],
                             "inherited": best["inherited"]}}


def param_free_share(space: Any, genotypes: list[Any]) -> float | None:
    """Share of parameter-free ops (identity, pooling) among the ops ``genotypes`` choose."""
    ops = [op for g in genotypes for kind in ("normal", "reduce")
           for b in g.cell(kind).blocks for op in b.ops]
    if not ops:
        return None
    return sum(op.startswith(PARAMETER_FREE) for op in ops) / len(ops)


def probe(space: Any, run_dir: RunDir, inherit: Any, reference: Any, k: int, seed: int,
          history: list[dict[str, Any]]) -> dict[str, Any]:
    """Score ``k`` random genotypes by inheritance and by ``reference``; write Kendall tau and
    Spearman rho to ``oneshot_ranking.json`` (rewritten after each genotype)."""
    from scipy.stats import kendalltau, spearmanr

    rng = np.random.default_rng(seed + 104_729)
    genotypes, seen = [], set()
    while len(genotypes) < k:
        g = space.sample(rng)
        if space.hash(g) not in seen:
            seen.add(space.hash(g))
            genotypes.append(g)
    cached = _cached(run_dir, RANKING)
    rows: list[dict[str, Any]] = []
    top = sorted((r for r in history if r["status"] == "ok"), key=lambda r: -r["score"])[:10]
    shares = {"uniform": sum(op.startswith(PARAMETER_FREE) for op in space.ops) / len(space.ops),
              "best": param_free_share(space, [space.from_json(r["genotype"]) for r in top[:1]]),
              "top10": param_free_share(space, [space.from_json(r["genotype"]) for r in top])}
    result: dict[str, Any] = {}
    for i, g in enumerate(genotypes):
        h = space.hash(g)
        row = cached.get(h)
        if row is None:
            est = inherit(g, seed=seed + i)
            score, extra = _standalone(reference, g, seed + 2_000_003 + i)
            row = {"hash": h, "arch": space.to_text(g), "inherited": est.score if est.ok else None,
                   "standalone": score, "params": est.params, **extra}
            log.info("probe %d/%d: inherited %s, stand-alone %s", i + 1, k, row["inherited"],
                     score)
        rows.append(row)
        result = _correlations(rows, kendalltau, spearmanr)
        run_dir.write_json(RANKING, {"probe": k, "complete": len(rows) == k,
                                     "reference": getattr(reference, "name", "?"), **result,
                                     "param_free_share": shares, "rows": rows})
    log.info("ranking on %d probes: Kendall tau %s, Spearman rho %s", k,
             _fmt(result.get("kendall_tau")), _fmt(result.get("spearman_rho")))
    return {"probe": k, **result, "param_free_share": shares}


def _correlations(rows: list[dict[str, Any]], kendalltau: Any, spearmanr: Any) -> dict[str, Any]:
    pairs = [(r["inherited"], r["standalone"]) for r in rows
             if r["inherited"] is not None and r["standalone"] is not None]
    if len(pairs) < 3:
        return {"pairs": len(pairs), "kendall_tau": None, "spearman_rho": None}
    a, b = np.array(pairs).T
    if len(set(a)) == 1 or len(set(b)) == 1:
        side = "inherited" if len(set(a)) == 1 else "stand-alone"
        return {"pairs": len(pairs), "kendall_tau": None, "spearman_rho": None,
                "note": f"undefined: every {side} score is equal (train longer)"}
    tau, tau_p = kendalltau(a, b)
    rho, rho_p = spearmanr(a, b)

    def clean(v: float) -> float | None:
        return None if not math.isfinite(float(v)) else round(float(v), 4)

    return {"pairs": len(pairs), "kendall_tau": clean(tau), "kendall_p": clean(tau_p),
            "spearman_rho": clean(rho), "spearman_p": clean(rho_p)}


def _fmt(v: float | None) -> str:
    return "n/a" if v is None else f"{v:.3f}"
