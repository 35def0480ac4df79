"""``nascli search``: config -> space, strategy, estimator -> search loop -> run directory."""

from __future__ import annotations

import contextlib
import logging
import sys
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from omegaconf import DictConfig, OmegaConf
from rich.table import Table

from nascli.commands import oneshot
from nascli.commands.common import (
    EstimatorFactory,
    build_device,
    build_space,
    load_data,
)
from nascli.commands.runs import open_new_run, open_resumed_run, record_resume
from nascli.config import check, instantiate, option_name, section
from nascli.engine.cache import EvalCache, cache_settings
from nascli.engine.console import console, is_interactive
from nascli.engine.constraints import Constraints, CostMeter
from nascli.engine.loggers import build_logger, log_evaluations
from nascli.engine.rundir import RunDir, RunDirError, now_iso
from nascli.engine.schedule import Halving, Scheduler, full_training_steps
from nascli.engine.search import Budget, Search
from nascli.engine.signals import Terminated, graceful, ignore_from_now, shielded
from nascli.errors import UserError
from nascli.estimators.proxy import ProxyEstimator
from nascli.spaces import SearchSpace

log = logging.getLogger("nascli.search")


@dataclass
class Prescreen:
    """Proxy pre-screening and warm starts: score ``samples`` random candidates with ``proxy``
    and queue the best ``keep`` before the strategy asks (any strategy; for evolution, set
    ``keep`` to the population size for the zero-cost warm start of the population)."""

    proxy: str | None = None
    samples: int = 0
    keep: int = 0

    def __post_init__(self) -> None:
        if self.proxy:
            check(1 <= self.keep <= self.samples, "prescreen.keep", self.keep,
                  f"an integer in 1..prescreen.samples ({self.samples})")


@dataclass
class ChildFilter:
    """Propose ``children`` candidates per ask and evaluate the best by ``proxy`` (any
    strategy; with evolution, K mutated children compete by a zero-cost proxy)."""

    proxy: str | None = None
    children: int = 1

    def __post_init__(self) -> None:
        check(self.children >= 1, "child_filter.children", self.children, "an integer >= 1")
        check(self.children == 1 or bool(self.proxy), "child_filter.proxy", self.proxy,
              "a proxy name when child_filter.children > 1")


def proxy_scorer(name: str, space: SearchSpace, data: Any, device: Any, seed: int):
    """A function from a list of genotypes to proxy scores (failed: -inf).

    Each genotype's network is initialised with a seed of its own (the run seed and its
    hash), so a score never depends on how many were scored before: a resumed search
    filters children exactly as an uninterrupted one.
    """
    estimator = ProxyEstimator(space, data, device=device, seed=seed, name=name)

    def score(genotypes: list[Any]) -> list[float]:
        out = []
        for g in genotypes:
            est = estimator(g, seed=(seed + int(space.hash(g)[:8], 16)) % 2**32)
            out.append(est.score if est.ok else float("-inf"))
        return out

    return score


def prescreened(space: SearchSpace, p: Prescreen, score: Any, seed: int) -> list[Any]:
    """The best ``p.keep`` of ``p.samples`` distinct random genotypes by a proxy."""
    import numpy as np

    rng = np.random.default_rng(seed + 7919)
    seen: set[str] = set()
    samples: list[Any] = []
    while len(samples) < p.samples:
        g = space.sample(rng)
        if space.hash(g) not in seen:
            seen.add(space.hash(g))
            samples.append(g)
    scores = score(samples)
    order = sorted(range(len(samples)), key=lambda i: (-scores[i], i))
    log.info("proxy %s scored %d samples; queueing the best %d", p.proxy, p.samples, p.keep)
    return [samples[i] for i in order[: p.keep]]


class Derived:
    """The strategy of a gradient-based search: its derived genotype, then nothing more."""

    def __init__(self, space: SearchSpace, genotype: Any) -> None:
        self.space, self.genotype, self.asked = space, genotype, False

    def ask(self) -> Any:
        """The derived genotype, once."""
        from nascli.strategies.base import SearchExhausted

        if self.asked:
            raise SearchExhausted("the derived genotype has been evaluated")
        self.asked = True
        return self.genotype

    def tell(self, genotype: Any, score: float | None, metrics: Any = None) -> None:
        """Nothing to learn."""

    def discard(self, genotype: Any) -> None:
        """Nothing to hand back."""

    def state_dict(self) -> dict[str, Any]:
        """Whether the genotype was asked."""
        return {"asked": self.asked}

    def load_state_dict(self, state: dict[str, Any]) -> None:
        """Continue from :meth:`state_dict`."""
        self.asked = bool(state["asked"])


def _darts(strategy: Any, run_dir: RunDir, built: tuple[Any, ...], progress: bool) -> Any:
    """Run a gradient-based search (``strategy=darts``) in the run directory (resumable);
    returns its derived genotype."""
    space, data, settings, device = built
    result = strategy.run(data, device, run_dir=run_dir.path, progress=progress,
                          channels_last=settings.channels_last)
    log.info("darts: derived %s after %d epochs", space.to_text(result.genotype),
             len(result.epochs))
    return result.genotype


def _progress(cfg: DictConfig) -> bool:
    progress = {"on": True, "off": False}.get(str(cfg.progress))
    if progress is None:
        from hydra.core.hydra_config import HydraConfig

        progress = is_interactive() and HydraConfig.get().mode.name != "MULTIRUN"
    return progress


def build_search(cfg: DictConfig, run_dir: RunDir, resumed: bool,
                 on_start: Any = None) -> Search:
    """Every object of a search from its config: space, data, strategy (with its add-ons),
    estimator behind an executor, budget and the warm-start queue.

    A supernet (``proxy=supernet``) or a gradient-based strategy (``strategy=darts``) is
    trained here, after ``on_start()`` has recorded the run (it may take a while)."""
    from nascli.oneshot.darts import DARTS
    from nascli.strategies import ChildFilter as ChildFilterWrapper
    from nascli.strategies import Deduplicate

    seed = int(cfg.seed)
    settings, device = build_device(cfg)
    space = build_space(cfg)
    data = load_data(cfg, seed)
    if len(data.val) == 0:
        raise UserError("dataset.val_fraction=0 leaves no validation images, and a search "
                        "scores candidates on them; use a val_fraction in (0, 1)")
    log.info("run directory: %s", run_dir.path)
    log.info("space %s | strategy %s | proxy %s | dataset %s (%d train, %d val) | device %s",
             space.describe(), option_name(cfg, "strategy"), option_name(cfg, "proxy"),
             data.name, len(data.train), len(data.val), device)
    built = (space, data, settings, device)
    progress = _progress(cfg)
    b = section(Budget, cfg.budget, "budget")
    inner = instantiate(cfg.strategy, "strategy", space=space, seed=seed)
    extra: dict[str, Any] = {}
    if oneshot.uses_supernet(cfg):
        extra = oneshot.prepare(cfg, run_dir, built, seed, progress, on_start)
    else:
        oneshot.check_unused(cfg)
    if isinstance(inner, DARTS):
        if on_start is not None:
            on_start()
        inner, b = Derived(space, _darts(inner, run_dir, built, progress)), Budget(evaluations=1)
    strategy = Deduplicate(inner)
    filt = section(ChildFilter, cfg.get("child_filter", {}), "child_filter")
    if filt.children > 1:
        strategy = ChildFilterWrapper(strategy, proxy_scorer(filt.proxy, space, data, device,
                                                             seed), children=filt.children)
    factory = EstimatorFactory(cfg, seed, built=built)
    gpus = settings.worker_gpus(device)
    options = engine_options(cfg, built, seed)
    executor = instantiate(cfg.executor, "executor", factory=factory, gpus=gpus)
    if options["schedule"] is not None:
        options["schedule"] = options["schedule"](executor.workers)
    cache = open_cache(cfg, built, run_dir)
    search = Search(space, strategy, executor, b, run_dir, progress=progress, seed=seed,
                    cache=cache, **options)
    if cache is not None:
        extra["cache"] = {"dir": str(cache.root.resolve()), "settings": cache.key}
    search.info.update(device=str(device), dataset=data.summary(), space=space.describe(),
                       strategy=option_name(cfg, "strategy"), proxy=option_name(cfg, "proxy"),
                       **extra)
    search.built = built
    pre = section(Prescreen, cfg.get("prescreen", {}), "prescreen")
    if pre.proxy and not resumed:
        search.enqueue(prescreened(space, pre, proxy_scorer(pre.proxy, space, data, device,
                                                            seed), seed))
    return search


def engine_options(cfg: DictConfig, built: tuple[Any, ...], seed: int) -> dict[str, Any]:
    """``constraints``, ``costs``, ``objective`` and ``schedule`` of a search from its config
    (the schedule as a function of the executor's worker count: ASHA with several)."""
    space, data, _, device = built
    constraints = section(Constraints, cfg.get("constraints", {}), "constraints")
    objective = instantiate(cfg.objective, "objective")
    costs = None
    if constraints.active or objective.needs_costs:
        latency = constraints.max_latency_ms is not None or objective.cost == "latency_ms"
        costs = CostMeter(space, data, device, constraints.network, latency=latency,
                          batch_size=constraints.latency_batch_size,
                          repeats=constraints.latency_repeats)
        log.info("costs counted on the %s network%s", costs.where,
                 f"; latency on {device}" if latency else "")
    halving = instantiate(cfg.schedule, "schedule")
    schedule = None
    if halving is not None:
        steps = halving.steps(_full_steps(cfg, data, seed, halving))
        log.info("successive halving: rungs of %s steps, eta %d", steps, halving.eta)

        def schedule(workers: int) -> Scheduler:
            asynchronous = halving.mode == "async" or (halving.mode == "auto" and workers > 1)
            return Scheduler(steps, halving.eta, asynchronous, halving.bracket)

    return {"constraints": constraints, "costs": costs, "objective": objective,
            "schedule": schedule}


def _full_steps(cfg: DictConfig, data: Any, seed: int, halving: Halving) -> int:
    """The estimator's full training length (steps), for the top rung of a schedule."""
    from hydra.utils import get_class

    from nascli.data.splits import stratified_subset
    from nascli.estimators.train import SearchTraining, TrainEstimator

    target = str(cfg.proxy.get("_target_", ""))
    try:
        cls = get_class(target)
    except Exception:
        cls = None
    if not getattr(cls, "supports_steps", False):
        raise UserError(f"schedule=halving trains candidates for chosen numbers of steps; "
                        f"proxy={option_name(cfg, 'proxy')} ({target}) has no training "
                        "steps: use proxy=train")
    if halving.max_steps is not None:
        return int(halving.max_steps)
    if not issubclass(cls, TrainEstimator):
        raise UserError(f"schedule=halving: set schedule.max_steps (the full training of "
                        f"{target} is unknown)")
    fields = set(SearchTraining.__dataclass_fields__)
    recipe = section(SearchTraining, {k: v for k, v in cfg.proxy.items() if k in fields},
                     "proxy")
    train = stratified_subset(data.train, recipe.data_fraction, seed)
    return full_training_steps(recipe, len(train))


def open_cache(cfg: DictConfig, built: tuple[Any, ...], run_dir: RunDir) -> EvalCache | None:
    """The evaluation cache of ``cache=DIR`` (None when off), keyed by this run's space,
    estimator, data and precision (docs/cache.md)."""
    path = cfg.get("cache")
    if not path:
        return None
    if oneshot.uses_supernet(cfg):
        log.warning("cache=%s is not used: proxy=supernet scores depend on this run's own "
                    "supernet", path)
        return None
    if not str(cfg.schedule._target_).endswith("no_schedule"):
        log.warning("cache=%s is not used: its entries have no fidelity, and "
                    "schedule=halving trains candidates for several lengths", path)
        return None
    _, data, settings, device = built
    # autocast and TF32 act on CUDA only (nascli.training.device): elsewhere it is plain fp32
    cuda = device.type == "cuda"
    precision = {"amp": settings.amp if cuda else "none", "tf32": bool(cuda and settings.tf32)}
    key = cache_settings(space=_plain(cfg.search_space), proxy=_plain(cfg.proxy),
                         dataset=_plain(cfg.dataset), data=data, precision=precision)
    cache = EvalCache(str(path), key, run=str(run_dir.path.resolve()))
    log.info("evaluation cache: %s (settings %s)", cache.root, cache.key)
    return cache


def _plain(node: Any) -> dict[str, Any]:
    """A resolved config node as plain JSON-ready containers."""
    return OmegaConf.to_container(node, resolve=True)


def run_seed(cfg: DictConfig) -> int:
    """The run seed: an integer in 0..2**32-1 (numpy and torch both take it)."""
    seed = cfg.get("seed")
    check(isinstance(seed, int) and not isinstance(seed, bool) and 0 <= seed < 2**32, "seed",
          seed, "an integer in 0..4294967295")
    return int(seed)


def _log_to_run(run_dir: RunDir) -> None:
    """A resumed search continues the run's own plain log (unless Hydra already writes it:
    the CLI points a resume's Hydra folder at the run)."""
    path = (run_dir.path / "search.log").resolve()
    if any(isinstance(h, logging.FileHandler) and Path(h.baseFilename).resolve() == path
           for h in logging.getLogger().handlers):
        return
    handler = logging.FileHandler(path, encoding="utf-8")
    handler.setFormatter(logging.Formatter("%(asctime)s %(levelname)-7s %(name)s: %(message)s"))
    logging.getLogger().addHandler(handler)


def search_task(cfg: DictConfig) -> float | None:
    """The Hydra task of ``nascli search``; returns the best score (for sweepers)."""
    from hydra.core.hydra_config import HydraConfig

    command = " ".join(["nascli", "search", *sys.argv[1:]])
    run_seed(cfg)
    resumed = bool(cfg.get("resume"))
    if resumed:
        run_dir, cfg = open_resumed_run(cfg, list(HydraConfig.get().overrides.task))
        run_seed(cfg)
        logger = build_logger(cfg, run_dir.path)
        _log_to_run(run_dir)
    else:
        output_dir = HydraConfig.get().runtime.output_dir
        logger = build_logger(cfg, output_dir)  # before the run is opened: fails at start
        run_dir = open_new_run(output_dir)

    def on_start() -> None:
        """Record a new run before anything long runs (once)."""
        if not resumed and not run_dir.read_manifest():
            run_dir.write_config(OmegaConf.to_yaml(cfg, resolve=True))
            run_dir.write_manifest(command=command, seed=int(cfg.seed), started_at=now_iso(),
                                   status="running")

    with _recorded(run_dir):
        search = build_search(cfg, run_dir, resumed=resumed, on_start=on_start)
    search.on_evaluation = log_evaluations(logger, search)  # new evaluations only
    if resumed:
        try:
            n = search.resume()
        except BaseException:
            search.executor.shutdown(cancel=True)
            raise
        record_resume(run_dir, command)
        log.info("resuming %s: %d finished evaluations reused, %d to re-run", run_dir.path, n,
                 len(search.redo))
    else:
        on_start()
        run_dir.write_manifest(**search.info)
    try:
        result = _run(search, run_dir)
    finally:
        logger.close()
    with _recorded(run_dir):
        extra = oneshot.finish(cfg, search, run_dir, search.built, int(cfg.seed))
    if extra:
        run_dir.write_manifest(oneshot=extra)
    summary = search.summary()
    if summary["evaluations"] and summary["best"] is None:
        reasons = "; ".join(f"{n} x {why}" for why, n in summary["failure_reasons"].items())
        raise UserError(f"every one of the {summary['evaluations']} evaluations failed "
                        f"({reasons}); see {run_dir.path / 'search.log'}")
    _print_table(result.top(int(cfg.top_k)), run_dir.path)
    return result.best["score"] if result.best else None


@contextlib.contextmanager
def _recorded(run_dir: RunDir) -> Iterator[None]:
    """A phase outside the search loop (supernet or DARTS training, re-ranking): SIGTERM
    stops it like Ctrl-C, and the manifest of a recorded run says how it ended."""
    try:
        with graceful():
            yield
    except KeyboardInterrupt as exc:
        ignore_from_now()
        _end(run_dir, "terminated" if isinstance(exc, Terminated) else "interrupted")
        raise
    except Exception as exc:
        _end(run_dir, "failed", error=str(exc).splitlines()[0][:500] if str(exc) else
             type(exc).__name__)
        raise


def _end(run_dir: RunDir, status: str, **fields: Any) -> None:
    """Say in the manifest of a recorded run how it ended."""
    with shielded(), contextlib.suppress(OSError, RunDirError):
        if run_dir.read_manifest():
            run_dir.write_manifest(ended_at=now_iso(), status=status, **fields)


def _run(search: Search, run_dir: RunDir) -> Any:
    """Run the search; whatever happens (Ctrl-C, SIGTERM, a full disk) the manifest says how
    it ended and the workers stop."""
    status = "failed"
    try:
        with graceful():
            result = search.run()
        status = "finished"
        return result
    except KeyboardInterrupt as exc:
        ignore_from_now()
        status = "terminated" if isinstance(exc, Terminated) else "interrupted"
        raise
    finally:
        with shielded():
            search.executor.shutdown(cancel=status != "finished")
            with contextlib.suppress(OSError, RunDirError):
                run_dir.write_manifest(ended_at=now_iso(), status=status, **search.summary())


def _print_table(rows: list[dict[str, Any]], path: Path) -> None:
    table = Table(title=f"top candidates ({path})")
    for col in ("rank", "id", "score", "params", "MACs", "seconds", "hash"):
        table.add_column(col, justify="right" if col != "hash" else "left")
    for rank, r in enumerate(rows, 1):
        table.add_row(str(rank), str(r["id"]), f"{r['score']:.4f}",
                      f"{(r['params'] or 0) / 1e3:.1f}k", f"{(r['macs'] or 0) / 1e6:.1f}M",
                      f"{r['seconds']:.1f}", r["hash"])
    console().print(table)
    if rows:
        console().print(f"best: {rows[0]['arch']}")
