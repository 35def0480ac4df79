"""``nascli search``: config -> space, strategy, estimator -> search loop -> run directory."""

from __future__ import annotations

import logging
import sys
import time
from pathlib import Path
from typing import Any

from omegaconf import DictConfig, OmegaConf
from rich.table import Table

from nascli.commands import UserError
from nascli.commands.common import (
    build_estimator,
    build_space,
    load_data,
    network_settings,
    setup,
)
from nascli.config import validate
from nascli.engine.console import console, is_interactive
from nascli.engine.executors import LocalExecutor, PoolExecutor
from nascli.engine.rundir import CONFIG, RunDir, now_iso
from nascli.engine.search import Budget, Search
from nascli.estimators.proxy import ProxyEstimator
from nascli.spaces import SearchSpace
from nascli.strategies import build as build_strategy

log = logging.getLogger("nascli.search")

STRATEGY_OPTIONS = {
    "random": ("max_retries",),
    "evolution": ("population_size", "sample_size", "identity_prob", "max_retries",
                  "children_per_step"),
    "ppo": ("hidden_size", "lr", "batch_size", "entropy_weight", "baseline_decay", "temperature",
            "tanh_constant", "max_retries", "clip", "epochs"),
    "reinforce": ("hidden_size", "lr", "batch_size", "entropy_weight", "baseline_decay",
                  "temperature", "tanh_constant", "max_retries"),
}


def _resumed_config(cfg: DictConfig) -> tuple[DictConfig, Path]:
    """The original run's config, with this command line's budget when one was given."""
    run = Path(str(cfg.resume)).expanduser()
    if not (run / CONFIG).is_file():
        raise UserError(f"resume={run}: not a nascli run directory (no {CONFIG})")
    original = OmegaConf.load(run / CONFIG)
    from hydra.core.hydra_config import HydraConfig

    given = [o for o in HydraConfig.get().overrides.task if o.lstrip("+").startswith("budget")]
    if given:
        original.budget = cfg.budget
    original.resume = str(run)
    return original, run


def _proxy_ranked(space: SearchSpace, proxy: str, samples: int, data: Any, net: Any,
                  device: Any, seed: int, keep: int) -> list[Any]:
    """The best ``keep`` of ``samples`` random genotypes by a zero-cost proxy."""
    import numpy as np

    estimator = ProxyEstimator(proxy, data, net, device=device, seed=seed)
    rng = np.random.default_rng(seed + 7919)
    seen, scored = set(), []
    t0 = time.perf_counter()
    while len(scored) < samples:
        g = space.sample(rng)
        h = space.hash(g)
        if h in seen:
            continue
        seen.add(h)
        est = estimator(g)
        scored.append((est.score if est.ok else float("-inf"), len(scored), g))
    scored.sort(key=lambda t: (-t[0], t[1]))
    log.info("proxy %s scored %d samples in %.1f s; keeping the best %d", proxy, samples,
             time.perf_counter() - t0, keep)
    return [g for _, _, g in scored[:keep]]


def _child_scorer(proxy: str, data: Any, net: Any, device: Any, seed: int):
    estimator = ProxyEstimator(proxy, data, net, device=device, seed=seed)

    def score(children: list[Any]) -> list[float]:
        out = []
        for g in children:
            est = estimator(g)
            out.append(est.score if est.ok else float("-inf"))
        return out

    return score


def search_task(cfg: DictConfig) -> float | None:
    """The Hydra task of ``nascli search``; returns the best score (for sweepers)."""
    from hydra.core.hydra_config import HydraConfig

    resume_dir = None
    if cfg.get("resume"):
        cfg, resume_dir = _resumed_config(cfg)
    parts = validate(cfg)
    seed = int(cfg.seed)
    s_cfg, st_cfg, p_cfg = parts["search_space"], parts["strategy"], parts["proxy"]
    space = build_space(s_cfg)
    device = setup(parts["device"])
    data = load_data(parts["dataset"], seed)
    net = network_settings(s_cfg)
    run_dir = RunDir(resume_dir or HydraConfig.get().runtime.output_dir)
    if resume_dir is not None:  # keep one plain log per run: continue the original one
        handler = logging.FileHandler(run_dir.path / "search.log", encoding="utf-8")
        handler.setFormatter(logging.Formatter("%(asctime)s %(levelname)-7s %(name)s: %(message)s"))
        logging.getLogger().addHandler(handler)
    log.info("run directory: %s", run_dir.path)
    log.info("space %s | strategy %s | proxy %s | dataset %s (%d train, %d val) | device %s",
             space.describe(), st_cfg.name, p_cfg.name, data.name, len(data.train),
             len(data.val), device)

    options = {k: getattr(st_cfg, k) for k in STRATEGY_OPTIONS[st_cfg.name]
               if getattr(st_cfg, k) is not None}
    prescreen, queue = parts.get("prescreen"), []
    if st_cfg.name == "evolution":
        if st_cfg.warm_start_proxy and resume_dir is None:
            samples = max(st_cfg.warm_start_samples, st_cfg.population_size)
            options["initial_population"] = _proxy_ranked(
                space, st_cfg.warm_start_proxy, samples, data, net, device, seed,
                st_cfg.population_size)
        if st_cfg.child_filter_proxy:
            options["score_children"] = _child_scorer(st_cfg.child_filter_proxy, data, net,
                                                      device, seed)
    if prescreen is not None and prescreen.proxy and resume_dir is None:
        if prescreen.keep < 1 or prescreen.samples < prescreen.keep:
            raise UserError(
                f"prescreen.samples={prescreen.samples}, prescreen.keep={prescreen.keep}: need "
                "1 <= keep <= samples"
            )
        queue = _proxy_ranked(space, prescreen.proxy, prescreen.samples, data, net, device,
                              seed, prescreen.keep)
    strategy = build_strategy(st_cfg.name, space, seed, **options)

    ex_cfg = parts["executor"]
    if ex_cfg.name == "pool":
        executor = PoolExecutor(_EstimatorFactory(parts, seed), workers=ex_cfg.workers,
                                gpus=list(parts["device"].gpus) if device.type == "cuda" else None)
    else:
        executor = LocalExecutor(build_estimator(p_cfg, s_cfg, data, device, parts["device"],
                                                 seed))
    if resume_dir is None:
        run_dir.write_config(OmegaConf.to_yaml(cfg, resolve=True))
    run_dir.write_manifest(
        command=" ".join(["nascli", "search", *sys.argv[1:]]), seed=seed, device=str(device),
        dataset=data.summary(), space=space.describe(), strategy=st_cfg.name,
        proxy=p_cfg.name, started_at=now_iso(), status="running",
    )
    b = parts["budget"]
    progress = {"on": True, "off": False}.get(str(cfg.progress))
    if progress is None:
        progress = is_interactive() and HydraConfig.get().mode.name != "MULTIRUN"
    search = Search(space, strategy, executor, Budget(b.evaluations, b.seconds), run_dir,
                    queue=queue, progress=progress)
    if resume_dir is not None:
        n = search.resume()
        log.info("resuming %s: %d finished evaluations reused, %d to re-run", run_dir.path, n,
                 len(search.queue))
    status = "finished"
    try:
        result = search.run()
    except KeyboardInterrupt:
        status = "interrupted"
        raise
    finally:
        executor.shutdown()
        best = search.best()
        run_dir.write_manifest(ended_at=now_iso(), status=status,
                               evaluations=len(search.history),
                               best={k: best[k] for k in ("id", "score", "hash", "arch")}
                               if best else None)
    _print_table(result.top(int(cfg.top_k)), run_dir.path)
    return result.best["score"] if result.best else None


class _EstimatorFactory:
    """Picklable factory that rebuilds the estimator inside a pool worker."""

    def __init__(self, parts: dict[str, Any], seed: int) -> None:
        self.parts, self.seed = parts, seed

    def __call__(self):
        p = self.parts
        device = setup(p["device"])
        data = load_data(p["dataset"], self.seed)
        return build_estimator(p["proxy"], p["search_space"], data, device, p["device"],
                               self.seed)


def _print_table(rows: list[dict[str, Any]], path: Path) -> None:
    table = Table(title=f"top candidates ({path})")
    for col in ("rank", "id", "score", "params", "MACs", "seconds", "hash"):
        table.add_column(col, justify="right" if col != "hash" else "left")
    for rank, r in enumerate(rows, 1):
        table.add_row(str(rank), str(r["id"]), f"{r['score']:.4f}",
                      f"{(r['params'] or 0) / 1e3:.1f}k", f"{(r['flops'] or 0) / 1e6:.1f}M",
                      f"{r['seconds']:.1f}", r["hash"])
    console().print(table)
    if rows:
        console().print(f"best: {rows[0]['arch']}")
