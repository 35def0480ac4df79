"""Successive halving across candidates (``schedule=halving``): many cheap first rungs, more
training for the best.

Rung ``k`` trains a candidate for ``steps[k]`` optimisation steps (by default the estimator's
own training length times ``eta**k``; see :meth:`Halving.steps`), from scratch with a schedule
of that length. Of the candidates
that finished rung ``k``, the best ``1/eta`` are promoted to rung ``k + 1``.

- ``sync`` (Jamieson and Talwalkar 2016): brackets of ``bracket`` new candidates; rung ``k+1``
  of a bracket starts when all of its rung ``k`` has finished. Exact, but workers wait at
  rung boundaries.
- ``async`` (ASHA, Li et al. 2020): whenever a worker is free, promote a candidate that is in
  the top ``1/eta`` of its rung so far and not promoted yet (highest rung first), else start a
  new one. No worker waits. ``auto`` picks ``async`` when several workers evaluate.

The strategy proposes the new candidates and hears their first-rung scores (scores of one
rung are comparable; across rungs they are not). The schedule keeps no state of its own: it
is rebuilt from the history rows' ``fidelity`` and the pending evaluations, so a resumed
search continues the rungs.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from typing import Any

from nascli.config import ConfigError, check

MODES = ("auto", "sync", "async")


@dataclass
class Halving:
    """``schedule.*`` of ``schedule=halving`` (rungs: :meth:`steps`; ``bracket``: new
    candidates per synchronous bracket, null: ``eta**(rungs - 1)``)."""

    eta: int = 3
    rungs: int = 3
    min_steps: int | None = None
    max_steps: int | None = None
    mode: str = "auto"
    bracket: int | None = None

    def __post_init__(self) -> None:
        check(self.eta >= 2, "schedule.eta", self.eta, "an integer >= 2")
        check(self.rungs >= 2, "schedule.rungs", self.rungs, "an integer >= 2")
        for key in ("min_steps", "max_steps", "bracket"):
            value = getattr(self, key)
            check(value is None or value >= 1, f"schedule.{key}", value,
                  "an integer >= 1 or null")
        check(self.mode in MODES, "schedule.mode", self.mode, " or ".join(MODES))

    def steps(self, full_steps: int) -> list[int]:
        """Training steps of each rung, given the estimator's full training length.

        With neither ``min_steps`` nor ``max_steps``, the first rung is the estimator's own
        training and each later one ``eta`` times longer (``rungs`` rungs): every candidate gets
        the usual cheap score, the best get more training. With only ``max_steps``: ``rungs``
        rungs ``eta`` apart up to it; with only ``min_steps``: ``rungs`` rungs from it; with
        both: ``min_steps * eta**k`` below ``max_steps``, then ``max_steps``.
        """
        if self.max_steps is None:
            low = self.min_steps or full_steps
            return [low * self.eta ** k for k in range(self.rungs)]
        top = self.max_steps
        if self.min_steps is None:
            out = [max(1, round(top / self.eta ** k)) for k in range(self.rungs - 1, 0, -1)]
        else:
            check(self.min_steps < top, "schedule.min_steps", self.min_steps,
                  f"fewer steps than schedule.max_steps ({top})")
            out = [self.min_steps * self.eta ** k for k in range(64)
                   if self.min_steps * self.eta ** k < top]
        if len(set(out)) < len(out) or out[-1] >= top:
            raise ConfigError(f"schedule: {top} steps at the top rung leave no room for "
                              f"{self.rungs} rungs {self.eta}x apart; lower schedule.rungs or "
                              "schedule.eta, or raise schedule.max_steps")
        return [*out, top]


def no_schedule() -> None:
    """``schedule=none``: every candidate gets the estimator's full training."""
    return None


@dataclass
class _Entry:
    """One evaluation at one rung."""

    eid: int
    hash: str
    genotype: Any
    bracket: int
    score: float | None = None
    done: bool = False
    promoted: bool = False


@dataclass
class Scheduler:
    """Decides what each free worker runs next (see the module docstring).

    Args:
        steps: training steps per rung, increasing.
        eta: the promotion ratio.
        asynchronous: ASHA (True) or synchronous brackets.
        bracket: new candidates per synchronous bracket (default ``eta ** (rungs - 1)``).
    """

    steps: list[int]
    eta: int = 3
    asynchronous: bool = True
    bracket: int | None = None
    rungs: list[dict[int, _Entry]] = field(default_factory=list)

    def __post_init__(self) -> None:
        self.rungs = [{} for _ in self.steps]
        self.bracket = self.bracket or self.eta ** (len(self.steps) - 1)

    # -- records --------------------------------------------------------------------------
    def started(self, eid: int, h: str, genotype: Any, fidelity: dict[str, int]) -> None:
        """An evaluation began (``fidelity``: its rung, steps, bracket and parent)."""
        rung = fidelity["rung"]
        self.rungs[rung][eid] = _Entry(eid, h, genotype, fidelity["bracket"])
        parent = fidelity.get("parent")
        if rung > 0 and parent in self.rungs[rung - 1]:
            self.rungs[rung - 1][parent].promoted = True

    def finished(self, eid: int, fidelity: dict[str, int], score: float | None) -> None:
        """An evaluation ended (``score`` None: failed; it is never promoted)."""
        entry = self.rungs[fidelity["rung"]].get(eid)
        if entry is not None:
            entry.score, entry.done = score, True

    def restore(self, rows: list[dict[str, Any]], pending: dict[int, tuple[Any, dict]],
                hash_of: Any, from_json: Any) -> None:
        """Rebuild the rungs from history rows and pending ``id -> (genotype, fidelity)``."""
        for row in sorted(rows, key=lambda r: r["id"]):
            f = row.get("fidelity")
            if f is None or f["rung"] >= len(self.rungs):
                continue
            self.started(row["id"], row["hash"], from_json(row["genotype"]), f)
            self.finished(row["id"], f, row["score"] if row["status"] == "ok" else None)
        for eid, (genotype, f) in sorted(pending.items()):
            self.started(eid, hash_of(genotype), genotype, f)

    # -- decisions ------------------------------------------------------------------------
    def fidelity(self, rung: int, bracket: int, parent: int | None = None) -> dict[str, Any]:
        """The ``fidelity`` field of an evaluation at ``rung``."""
        out: dict[str, Any] = {"rung": rung, "steps": self.steps[rung], "bracket": bracket}
        if parent is not None:
            out["parent"] = parent
        return out

    def next(self) -> tuple[str, Any, dict[str, Any] | None]:
        """``("promote", genotype, fidelity)``, ``("new", None, fidelity)`` or ``("wait",
        None, None)`` (synchronous: a rung of the open bracket is still running)."""
        return self._next_async() if self.asynchronous else self._next_sync()

    def _promotable(self, rung: int, entries: list[_Entry]) -> _Entry | None:
        """The best not yet promoted entry in the top ``1/eta`` of ``entries`` (finished)."""
        ranked = sorted((e for e in entries if e.done and e.score is not None),
                        key=lambda e: (-e.score, e.eid))
        quota = len([e for e in entries if e.done]) // self.eta
        for e in ranked[:quota]:
            if not e.promoted:
                return e
        return None

    def _next_async(self) -> tuple[str, Any, dict[str, Any] | None]:
        for rung in range(len(self.rungs) - 2, -1, -1):
            e = self._promotable(rung, list(self.rungs[rung].values()))
            if e is not None:
                return "promote", e.genotype, self.fidelity(rung + 1, 0, e.eid)
        return "new", None, self.fidelity(0, 0)

    def _next_sync(self) -> tuple[str, Any, dict[str, Any] | None]:
        current = max((e.bracket for r in self.rungs for e in r.values()), default=0)
        below: list[_Entry] = []
        for rung in range(len(self.rungs)):  # every rung before this one has finished
            members = [e for e in self.rungs[rung].values() if e.bracket == current]
            if rung == 0:
                planned = self.bracket or 0
            else:
                ok = sum(e.score is not None for e in below)
                planned = min(len(below) // self.eta, ok)
            if len(members) < planned:
                if rung == 0:
                    return "new", None, self.fidelity(0, current)
                e = self._promotable(rung - 1, below)
                if e is not None:
                    return "promote", e.genotype, self.fidelity(rung, current, e.eid)
            if not all(e.done for e in members):
                return "wait", None, None
            below = members
        return "new", None, self.fidelity(0, current + 1)  # the bracket is complete


def full_training_steps(recipe: Any, train_size: int) -> int:
    """Optimisation steps of one train-and-test evaluation with ``recipe`` (its epochs of
    ``train_size // batch_size`` steps, capped by ``max_steps``)."""
    per_epoch = max(1, train_size // min(recipe.batch_size, train_size))
    if recipe.max_steps is not None:
        per_epoch = min(per_epoch, max(1, math.ceil(recipe.max_steps / recipe.epochs)))
    return per_epoch * recipe.epochs
