"""The search loop: ask the strategy, evaluate, tell, record; resumable at every step."""

from __future__ import annotations

import logging
import math
import time
from collections import deque
from collections.abc import Callable, Iterable
from concurrent.futures import FIRST_COMPLETED, Future, wait
from dataclasses import dataclass, field
from typing import Any

from rich.progress import (
    BarColumn,
    MofNCompleteColumn,
    Progress,
    TextColumn,
    TimeElapsedColumn,
    TimeRemainingColumn,
)

from nascli.engine.console import console
from nascli.engine.objective import pareto_document
from nascli.engine.rundir import PARETO, RunDir, RunDirError, now_iso
from nascli.engine.signals import Terminated, shielded
from nascli.estimators.base import Estimate
from nascli.strategies.base import SearchExhausted

log = logging.getLogger("nascli.search")

@dataclass
class Budget:
    """Stop after ``evaluations`` finished evaluations or ``seconds`` of search, whichever first."""

    evaluations: int | None = None
    seconds: float | None = None

    def __post_init__(self) -> None:
        if self.evaluations is None and self.seconds is None:
            raise ValueError("evaluations=None and seconds=None: a budget needs at least one")
        if self.evaluations is not None and (isinstance(self.evaluations, bool)
                                             or int(self.evaluations) != self.evaluations
                                             or self.evaluations < 1):
            raise ValueError(f"evaluations={self.evaluations!r} is invalid; expected an integer "
                             ">= 1 or null")
        if self.seconds is not None and not (math.isfinite(self.seconds) and self.seconds > 0):
            raise ValueError(f"seconds={self.seconds!r} is invalid; expected a positive number "
                             "or null")


@dataclass
class SearchResult:
    """Every evaluation (history rows) and the best one."""

    history: list[dict[str, Any]] = field(default_factory=list)
    best: dict[str, Any] | None = None
    stopped_because: str = ""

    def top(self, k: int = 10) -> list[dict[str, Any]]:
        """The ``k`` best finished evaluations, best first."""
        ok = [r for r in self.history if r["status"] == "ok"]
        return sorted(ok, key=lambda r: r["score"], reverse=True)[:k]


class Search:
    """Drives one search. ``executor`` evaluates; ``run_dir`` (optional) records everything.

    Args:
        space: the search space (for hashes and JSON).
        strategy: an object with ``ask``, ``tell``, ``state_dict``, ``load_state_dict``.
        executor: ``LocalExecutor`` or ``PoolExecutor``.
        budget: when to stop.
        run_dir: where to write history, best genotype and state (None: keep in memory).
        queue: genotypes to evaluate before asking the strategy (see :meth:`enqueue`).
        progress: show a live rich progress bar.
        on_evaluation: called with each history row as it is recorded.
        seed: the run seed; evaluation ``i`` is estimated with seed ``seed + i``, so a resumed
            run repeats exactly what an uninterrupted one does.
        cache: an :class:`~nascli.engine.cache.EvalCache` (or anything with its ``get`` and
            ``put``): an architecture found there is recorded at once as a ``cached`` row
            without evaluating it, and every finished ``ok`` evaluation is stored there.
        constraints: :class:`~nascli.engine.constraints.Constraints`: a new candidate over a
            limit is recorded as ``rejected`` without training (budget: ``count_rejected``).
        costs: a :class:`~nascli.engine.constraints.CostMeter`; each row then holds the
            ``costs`` it counted (needed by constraints and by objectives other than score).
        objective: an :class:`~nascli.engine.objective.Objective` (default: the score).
        schedule: a :class:`~nascli.engine.schedule.Scheduler` (successive halving): rows
            carry their ``fidelity``; only first-rung scores are told to the strategy.

    The strategy is wrapped in :class:`~nascli.strategies.Deduplicate` unless it already is
    (alone or under other add-ons): that wrapper is the one place where repeated
    architectures are caught.
    """

    def __init__(
        self, space: Any, strategy: Any, executor: Any, budget: Budget,
        run_dir: RunDir | None = None, queue: Iterable[Any] = (), progress: bool = False,
        on_evaluation: Callable[[dict[str, Any]], None] | None = None, seed: int = 0,
        cache: Any = None, constraints: Any = None, costs: Any = None,
        objective: Any = None, schedule: Any = None,
    ) -> None:
        from nascli.engine.constraints import Constraints
        from nascli.engine.objective import Objective
        from nascli.strategies import Deduplicate

        if not hasattr(strategy, "reserve"):
            strategy = Deduplicate(strategy)
        self.space, self.strategy, self.executor = space, strategy, executor
        self.seed = int(seed)
        #: what the run was made of (device, dataset, ...), for the manifest
        self.info: dict[str, Any] = {}
        self.budget, self.run_dir, self.progress = budget, run_dir, progress
        self.on_evaluation = on_evaluation
        self.queue: deque[Any] = deque(queue)
        self.redo: deque[tuple[int, Any]] = deque()  # unfinished before a resume: (id, genotype)
        self.history: list[dict[str, Any]] = []
        self.pending: dict[int, Any] = {}  # evaluation id -> genotype, asked but not finished
        self.cache = cache
        self.constraints = constraints or Constraints()
        self.objective = objective or Objective()
        self.costs, self.schedule = costs, schedule
        if costs is None and (self.constraints.active or self.objective.needs_costs):
            raise ValueError("constraints and objectives other than score need costs=CostMeter")
        #: pending evaluations' fidelity (successive halving): id -> rung, steps, bracket
        self.fidelity: dict[int, dict[str, Any]] = {}
        self._rejected_in_a_row = 0
        #: pending evaluations answered by the cache: id -> entry (saved with the state, so a
        #: resume records the very entry an uninterrupted run recorded)
        self._hits: dict[int, dict[str, Any]] = {}
        self.next_id = 0
        self.elapsed_before = 0.0
        self._start = time.monotonic()
        self._resumed = False

    # -- resume -----------------------------------------------------------------------------
    def resume(self) -> int:
        """Load history and state from ``run_dir``; returns the number of finished evaluations.

        Evaluations that were asked but never recorded run again first, under their own ids
        and seeds; a row recorded after the last state save is told to the strategy now; the
        best genotype is rewritten from the history.
        """
        assert self.run_dir is not None
        self._resumed = True
        self.run_dir.clean_temporary()
        self.run_dir.open_history()
        self.history = self.run_dir.history()
        state = self.run_dir.load_state(check=_check_state)
        if state is not None:
            self._load_state(state)
        else:
            self.next_id = 1 + max((row["id"] for row in self.history), default=-1)
            for row in self.history:
                if _told(row):
                    self.strategy.record(self.space.from_json(row["genotype"]), row["score"])
        self.pending = dict((i, g) for i, g in self.redo)
        if self.schedule is not None:
            self.schedule.restore(self.history, {i: (g, self.fidelity[i]) for i, g in self.redo
                                                 if i in self.fidelity},
                                  self.space.hash, self.space.from_json)
        for row in reversed(self.history):
            if row["status"] != "rejected":
                break
            self._rejected_in_a_row += 1
        self.write_best()
        return len(self.history)

    def _load_state(self, state: dict[str, Any]) -> None:
        """Continue from a saved state: the strategy, the ids, and what was pending."""
        try:
            self.strategy.load_state_dict(state["strategy"])
        except (KeyError, TypeError, IndexError, AttributeError) as exc:
            raise RunDirError(f"{self.run_dir.path / 'state.pt'}: damaged strategy state "
                              f"({type(exc).__name__}: {exc}); the run cannot be resumed "
                              "exactly") from None
        self.elapsed_before = float(state["elapsed"])
        self.next_id = max(int(state["next_id"]),
                           1 + max((r["id"] for r in self.history), default=-1))
        by_id = {row["id"]: row for row in self.history}
        hits, fidelity = state.get("cached", {}), state.get("fidelity", {})
        for i, g in sorted(state["pending"].items(), key=lambda t: int(t[0])):
            row = by_id.get(int(i))
            if row is None:
                self.redo.append((int(i), self.space.from_json(g)))
                if i in hits:
                    self._hits[int(i)] = hits[i]
                if i in fidelity:
                    self.fidelity[int(i)] = fidelity[i]
            elif _told(row):  # recorded after the last state save: not heard of yet
                self.strategy.tell(self.space.from_json(row["genotype"]), row["score"],
                                   _told_metrics(row))
        self.queue = deque(self.space.from_json(g) for g in state["queue"])

    def _save_state(self) -> None:
        if self.run_dir is None:
            return
        self.run_dir.save_state({
            "strategy": self.strategy.state_dict(),
            "pending": {str(i): self.space.to_json(g) for i, g in self.pending.items()},
            "queue": [self.space.to_json(g) for g in self.queue],
            "cached": {str(i): e for i, e in self._hits.items() if i in self.pending},
            "fidelity": {str(i): f for i, f in self.fidelity.items() if i in self.pending},
            "next_id": self.next_id,
            "elapsed": self.elapsed(),
        })

    def write_best(self) -> dict[str, Any] | None:
        """Rewrite ``best.json`` from the history (the one record); returns the best row."""
        best = self.best()
        if self.run_dir is not None and best is not None:
            self.run_dir.write_best(
                self.space.from_json(best["genotype"]), self.space, score=best["score"],
                evaluation=best["id"], metrics=best.get("metrics"), params=best.get("params"),
                macs=best.get("macs"))
        return best

    def summary(self) -> dict[str, Any]:
        """Counts (cache hits among them), failure reasons and the best evaluation, for the
        manifest and the CLI."""
        failed = [r for r in self.history if r["status"] == "failed"]
        reasons: dict[str, int] = {}
        for r in failed:
            key = (r.get("error") or "unknown").split(":")[0][:80]
            reasons[key] = reasons.get(key, 0) + 1
        best = self.best()
        rejected = sum(r["status"] == "rejected" for r in self.history)
        return {"evaluations": len(self.history) - rejected, "failed": len(failed),
                "rejected": rejected,
                "cached": sum(bool(r.get("cached")) for r in self.history),
                "failure_reasons": reasons,
                "best": {k: best[k] for k in ("id", "score", "hash", "arch")} if best else None}

    # -- loop -------------------------------------------------------------------------------
    def elapsed(self) -> float:
        """Seconds of search, over all resumed sessions."""
        return self.elapsed_before + time.monotonic() - self._start

    def _finished(self) -> int:
        """Evaluations that count against the budget (rejected ones only with
        ``constraints.count_rejected``)."""
        if self.constraints.count_rejected:
            return len(self.history)
        return sum(r["status"] != "rejected" for r in self.history)

    def _can_start(self, in_flight: int) -> str | None:
        """Why no new evaluation may start, or None if one may."""
        if self.budget.evaluations is not None and (
            self._finished() + in_flight >= self.budget.evaluations
        ):
            return "evaluation budget reached"
        if self._rejected_in_a_row >= self.constraints.max_rejected_in_a_row:
            return (f"{self._rejected_in_a_row} candidates in a row were over the limits "
                    "(constraints.max_rejected_in_a_row); loosen the constraints or pick a "
                    "space with smaller cells")
        if self.budget.seconds is not None and self.elapsed() >= self.budget.seconds:
            return "time budget reached"
        return None

    def enqueue(self, genotypes: Iterable[Any]) -> None:
        """Evaluate these genotypes before asking the strategy (warm starts, pre-screening,
        user picks): like Optuna's ``enqueue_trial``, any strategy gets a warm start this way,
        and learns from the results when they are told."""
        self.queue.extend(genotypes)

    def _next_genotype(self) -> tuple[Any, int, dict[str, Any] | None]:
        """The next genotype, its evaluation id and fidelity (None without a schedule):
        unfinished ones, the schedule's promotions, queued ones, then asks. Raises
        :class:`_Wait` while a synchronous schedule waits for a rung to finish."""
        if self.redo:
            eid, g = self.redo.popleft()
            return g, eid, self.fidelity.get(eid)
        fid = None
        if self.schedule is not None:
            action, promoted, fid = self.schedule.next()
            if action == "wait":
                raise _Wait
            if action == "promote":
                eid, self.next_id = self.next_id, self.next_id + 1
                return promoted, eid, fid
        while self.queue:
            g = self.queue.popleft()
            if self.strategy.reserve(g):
                eid, self.next_id = self.next_id, self.next_id + 1
                return g, eid, fid
        try:
            g = self.strategy.ask()
        except SearchExhausted as exc:
            raise StopIteration(str(exc)) from None
        eid, self.next_id = self.next_id, self.next_id + 1
        return g, eid, fid

    def run(self) -> SearchResult:
        """Run until the budget is spent; returns the history and the best evaluation."""
        if self.run_dir is not None and not self._resumed and self.run_dir.history():
            raise RunDirError(
                f"{self.run_dir.path} already holds evaluations; resume it (Search.resume(), "
                "or resume=RUN_DIR on the command line) or write to a new directory"
            )
        self._start = time.monotonic()
        in_flight: dict[Future, tuple[int, Any, float]] = {}
        stopped = ""
        bar = self._progress()
        try:
            while True:
                stopped = self._fill(in_flight) or stopped
                bar.update(self._finished(), self.best(), self._last_worker())  # cache hits
                if not in_flight:
                    break
                done, _ = wait(list(in_flight), return_when=FIRST_COMPLETED)
                for future in done:
                    eid, g, t0 = in_flight.pop(future)
                    self._record(eid, g, future, time.monotonic() - t0)
                    bar.update(self._finished(), self.best(), self._last_worker())
        except KeyboardInterrupt as exc:
            stopped = "terminated (SIGTERM)" if isinstance(exc, Terminated) else "interrupted"
            log.warning("%s: %d evaluations are saved; resume with resume=%s", stopped,
                        self._finished(), self.run_dir.path if self.run_dir else "<run dir>")
            raise
        finally:
            with shielded():
                bar.stop()
                self._save_state()
                if self.run_dir is not None:
                    self.run_dir.close()
                    self.write_best()
        log.info("search finished: %s (%d evaluations, %.1f s)", stopped, self._finished(),
                 self.elapsed())
        return SearchResult(history=list(self.history), best=self.best(), stopped_because=stopped)

    def _fill(self, in_flight: dict[Future, tuple[int, Any, float]]) -> str:
        """Start evaluations until every worker is busy; returns why it stopped starting
        new ones ("" while the budget allows more)."""
        while len(in_flight) < self.executor.workers:
            reason = self._can_start(len(in_flight))
            if reason:
                return reason
            redo = bool(self.redo)
            try:
                g, eid, fid = self._next_genotype()
            except _Wait:
                return ""
            except StopIteration as stop:
                log.warning("stopping: %s", stop)
                return str(stop)
            if not redo and (fid is None or fid["rung"] == 0) and self._rejected(eid, g):
                continue  # the strategy proposes again
            self._start_evaluation(in_flight, eid, g, fid, redo)
        return ""

    def _rejected(self, eid: int, genotype: Any) -> bool:
        """Record ``genotype`` as rejected, without training, if it breaks a constraint."""
        if not self.constraints.active:
            return False
        costs = self.costs(genotype)
        why = self.constraints.violation(costs)
        if why is None:
            return False
        row = self._row(eid, genotype, Estimate.failed(why), "constraints")
        row["status"] = "rejected"
        self._rejected_in_a_row += 1
        self.pending[eid] = genotype
        self._commit(eid, genotype, row)
        return True

    def _start_evaluation(self, in_flight: dict[Future, tuple[int, Any, float]], eid: int,
                          g: Any, fid: dict[str, Any] | None, redo: bool) -> None:
        """Submit evaluation ``eid`` (or record it at once from the cache)."""
        # a re-run keeps the decision of the interrupted one: its saved entry, or training
        hit = self._hits.get(eid) if redo else self._lookup(g)
        self.pending[eid] = g
        if fid is not None:
            self.fidelity[eid] = fid
            if not redo:
                self.schedule.started(eid, self.space.hash(g), g, fid)
        if hit is None:
            self._save_state()
            t0 = time.monotonic()  # before submit: a local executor evaluates inside it
            if fid is None:
                future = self.executor.submit(g, seed=self.seed + eid)
            else:
                future = self.executor.submit(g, seed=self.seed + eid, steps=fid["steps"])
            in_flight[future] = (eid, g, t0)
        else:
            self._hits[eid] = hit
            self._save_state()  # the hit survives a kill before its row is written
            self._record_hit(eid, g, hit)

    def _lookup(self, genotype: Any) -> dict[str, Any] | None:
        """The cache's entry for ``genotype``, or None (no cache, or not there)."""
        if self.cache is None or self.schedule is not None:  # cache entries have no fidelity
            return None
        return self.cache.get(self.space.hash(genotype))

    def _record_hit(self, eid: int, genotype: Any, hit: dict[str, Any]) -> None:
        """Record a cache hit as a finished evaluation: it costs this run nothing, and its
        ``source`` names the run, row and seed that computed it."""
        est = Estimate(score=hit["score"], metrics=dict(hit["metrics"]), params=hit["params"],
                       macs=hit["macs"], epochs=0.0)
        row = self._row(eid, genotype, est, "cache")
        row.update(cached=True, source=hit["source"])
        self._commit(eid, genotype, row)

    def _record(self, eid: int, genotype: Any, future: Future, wall: float) -> None:
        try:
            est, worker = future.result()
        except Exception as exc:  # the estimator itself crashed: the search goes on
            est, worker = Estimate.failed(f"{type(exc).__name__}: {exc}", seconds=wall), "?"
        row = self._row(eid, genotype, est, worker)
        self._commit(eid, genotype, row)
        if self.cache is not None and self.schedule is None and row["status"] == "ok":
            self.cache.put(row, seed=self.seed + eid)

    def _row(self, eid: int, genotype: Any, est: Estimate, worker: str) -> dict[str, Any]:
        """The history row of evaluation ``eid``."""
        score = est.score if est.ok else None
        status = "ok" if score is not None else "failed"
        h = self.space.hash(genotype)
        row = {
            "id": eid,
            "hash": h,
            "genotype": self.space.to_json(genotype),
            "arch": self.space.to_text(genotype),
            "score": score,
            "status": status,
            "error": est.error if status == "failed" else None,
            "metrics": {k: v for k, v in est.metrics.items()
                        if not (isinstance(v, float) and not math.isfinite(v))},
            "params": est.params,
            "macs": est.macs,
            "seconds": round(est.seconds, 4),
            "epochs": est.epochs,
            "worker": worker,
            "elapsed": round(self.elapsed(), 3),
            "finished_at": now_iso(),
        }
        if self.costs is not None:
            row["costs"] = self.costs(genotype)
            if score is not None and self.objective.kind == "mnas":
                row["raw_score"], row["score"] = score, self.objective.reward(score,
                                                                               row["costs"])
        if eid in self.fidelity:
            row["fidelity"] = self.fidelity[eid]
        return row

    def _commit(self, eid: int, genotype: Any, row: dict[str, Any]) -> None:
        """Append ``row`` to the history, tell the strategy, save the state and log it."""
        self.history.append(row)
        if self.run_dir is not None:
            self.run_dir.append(row)
        self.pending.pop(eid, None)
        self._hits.pop(eid, None)
        fid = self.fidelity.pop(eid, None)
        if fid is not None:
            self.schedule.finished(eid, fid, row["score"])
        if row["status"] != "rejected":
            self._rejected_in_a_row = 0
        if _told(row):  # promoted candidates were told at their first rung
            self.strategy.tell(genotype, row["score"], _told_metrics(row))
        self._save_state()
        _log_row(row)
        if self.run_dir is not None and self.objective.needs_costs and row["status"] == "ok":
            self.run_dir.write_json(PARETO, pareto_document(
                self.history, self.objective.cost, self.costs.where))
        best = self.best()
        if best is not None and best["id"] == eid:
            self.write_best()
        if self.on_evaluation is not None:
            self.on_evaluation(row)

    def _last_worker(self) -> str:
        """``#id by worker`` of the last evaluation when several workers share the work."""
        if self.executor.workers < 2 or not self.history:
            return ""
        row = self.history[-1]
        return f"#{row['id']} by {row['worker']}"

    def best(self) -> dict[str, Any] | None:
        """The best finished evaluation so far (ties: the earliest); under a schedule, the
        best of the highest rung reached (scores of lower rungs had less training)."""
        best, key = None, None
        for row in self.history:
            if row["status"] != "ok":
                continue
            mine = ((row.get("fidelity") or {}).get("rung", 0), row["score"])
            if key is None or mine > key:
                best, key = row, mine
        return best

    def _progress(self) -> _Bar:
        return _Bar(self.budget.evaluations, self._finished(), enabled=self.progress)


class _Bar:
    """The live progress bar of a search (does nothing when disabled)."""

    def __init__(self, total: int | None, completed: int, enabled: bool) -> None:
        self.progress: Progress | None = None
        if enabled:
            self.progress = Progress(
                TextColumn("[bold]{task.description}"), BarColumn(), MofNCompleteColumn(),
                TextColumn("best {task.fields[best]}"), TimeElapsedColumn(),
                TextColumn("left"), TimeRemainingColumn(), TextColumn("{task.fields[last]}"),
                console=console(), transient=False,
            )
            self.progress.start()
            self.task = self.progress.add_task("search", total=total, best="-", last="",
                                               completed=completed)

    def update(self, completed: int, best: dict[str, Any] | None, last: str = "") -> None:
        """Show ``completed`` evaluations, the best score so far and the last one's worker."""
        if self.progress is not None:
            self.progress.update(self.task, completed=completed, last=last,
                                 best=f"{best['score']:.4f}" if best else "-")

    def stop(self) -> None:
        """Leave the bar's last state on the terminal."""
        if self.progress is not None:
            self.progress.stop()


#: what a saved cache hit holds (nascli.engine.cache.check_entry)
_HIT_FIELDS = {"score", "metrics", "params", "macs", "source"}


def _check_state(state: dict[str, Any]) -> None:
    """Raise KeyError/TypeError/ValueError unless ``state`` has the engine's fields."""
    for key, kind in (("strategy", dict), ("pending", dict), ("queue", list),
                      ("next_id", int), ("elapsed", float)):
        if not isinstance(state[key], kind):
            raise TypeError(f"field {key!r} is {type(state[key]).__name__}, not {kind.__name__}")
    if state["next_id"] < 0 or not math.isfinite(state["elapsed"]):
        raise ValueError("next_id or elapsed out of range")
    for i, g in state["pending"].items():
        if not (isinstance(i, str) and i.isdigit() and isinstance(g, dict)):
            raise ValueError(f"pending entry {i!r}")
    _check_hits(state.get("cached", {}), state["pending"])
    for i, f in state.get("fidelity", {}).items():
        if not (i in state["pending"] and isinstance(f, dict)
                and all(isinstance(f.get(k), int) for k in ("rung", "steps", "bracket"))):
            raise ValueError(f"fidelity entry {i!r}")


def _check_hits(hits: Any, pending: dict[str, Any]) -> None:
    """Raise TypeError/ValueError unless ``hits`` are saved cache hits of pending ids."""
    if not isinstance(hits, dict):
        raise TypeError(f"field 'cached' is {type(hits).__name__}, not dict")
    for i, hit in hits.items():
        if not (i in pending and isinstance(hit, dict) and set(hit) >= _HIT_FIELDS
                and isinstance(hit["score"], float) and isinstance(hit["metrics"], dict)):
            raise ValueError(f"cached entry {i!r}")


class _Wait(Exception):
    """A synchronous schedule has nothing to start until a running rung finishes."""


def _told(row: dict[str, Any]) -> bool:
    """Whether the strategy hears of ``row``: not of promotions to a later rung."""
    return (row.get("fidelity") or {}).get("rung", 0) == 0


def _told_metrics(row: dict[str, Any]) -> dict[str, Any]:
    """The metrics a strategy is told: the estimator's, with the costs (Pareto strategies
    need them)."""
    metrics = dict(row.get("metrics") or {})
    metrics.update(params=row.get("params"), macs=row.get("macs"))
    metrics.update(row.get("costs") or {})
    return metrics


def _log_row(row: dict[str, Any]) -> None:
    """One log line per evaluation."""
    eid, worker = row["id"], row["worker"]
    if row.get("cached"):
        src = row["source"]
        log.info("#%d score %.4f  cached (run %s, #%s)  %s", eid, row["score"], src.get("run"),
                 src.get("id"), row["arch"])
    elif row["status"] == "ok":
        rung = f"  rung {row['fidelity']['rung']} ({row['fidelity']['steps']} steps)" \
            if row.get("fidelity") else ""
        log.info("#%d score %.4f  params %s  %.1fs%s  %s%s", eid, row["score"],
                 _fmt_int(row["params"]), row["seconds"], rung, row["arch"], _by(worker))
    elif row["status"] == "rejected":
        log.info("#%d rejected before training: %s", eid, row["error"])
    else:
        log.warning("#%d failed: %s%s", eid, row["error"], _by(worker))


def _by(worker: str) -> str:
    """`` (worker)`` for log lines of pool workers; nothing for the local executor."""
    return "" if worker == "local" else f"  ({worker})"


def _fmt_int(n: int | None) -> str:
    if n is None:
        return "-"
    return f"{n / 1e6:.2f}M" if n >= 1e6 else f"{n / 1e3:.1f}k"
