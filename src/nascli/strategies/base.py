"""The ask-and-tell interface shared by every search strategy.

A strategy proposes genotypes with :meth:`Strategy.ask` and learns from results given to
:meth:`Strategy.tell`; it never calls the objective itself, so the same object runs in a plain
loop, behind parallel workers (several asks before the matching tells, tells in any order) or
against a lookup table. Strategies touch a space only through ``decisions``, ``sample``,
``mutate``, ``encode``/``decode`` and ``hash``, so they work on any
:class:`~nascli.spaces.SearchSpace`.

Duplicates: by default a strategy never asks for an architecture whose canonical hash was
already asked (pending or told). ``allow_duplicates=True`` turns that off (the papers'
behaviour, useful when scores are noisy and re-evaluation is wanted).
"""

from __future__ import annotations

import itertools
import math
from collections.abc import Iterator
from typing import Any, ClassVar

import numpy as np

from nascli.spaces import Genotype, SearchSpace

#: Spaces with at most this many encodings are enumerated to tell "exhausted" from "unlucky".
ENUMERATE_LIMIT = 1 << 16

STATE_VERSION = 1


class StrategyError(ValueError):
    """Bad strategy options or a state dict that does not fit this strategy."""


class SearchExhausted(RuntimeError):
    """No architecture that has not been asked already could be found.

    Raised only when duplicates are not allowed: either every distinct architecture of a small
    space has been asked, or ``max_retries`` draws in a large space all hit seen ones.
    """


def as_score(score: float | None) -> float | None:
    """A finite float, or ``None`` for a failed evaluation (``None``, NaN or infinite)."""
    if score is None:
        return None
    score = float(score)
    return score if math.isfinite(score) else None


class Strategy:
    """Base class of search strategies (ask-and-tell).

    Args:
        space: the search space.
        seed: seeds every random choice; same seed and same told scores give the same asks.
        max_retries: draws spent looking for an unseen architecture before falling back.
        allow_duplicates: if true, never avoid re-asking seen architectures.

    Subclasses implement :meth:`_propose` and may extend :meth:`_observe`,
    :meth:`_extra_state` and :meth:`_load_extra_state`.
    """

    name: ClassVar[str] = "base"

    def __init__(
        self,
        space: SearchSpace,
        seed: int = 0,
        *,
        max_retries: int = 100,
        allow_duplicates: bool = False,
    ) -> None:
        if int(max_retries) < 1:
            raise StrategyError(f"max_retries must be >= 1, got {max_retries}")
        self.space = space
        self.seed = int(seed)
        self.max_retries = int(max_retries)
        self.allow_duplicates = bool(allow_duplicates)
        self.rng = np.random.default_rng(self.seed)
        #: told hash -> latest score (None: failed); also the cache controllers answer from
        self._scores: dict[str, float | None] = {}
        #: asked but not yet told: hash -> how many times
        self._pending: dict[str, int] = {}
        self.num_asked = 0
        self.num_told = 0
        self.num_failed = 0
        self._best: tuple[float, Genotype] | None = None
        self._enumeration: list[tuple[str, tuple[int, ...]]] | None = None  # lazily built

    # -- public API --------------------------------------------------------------------------
    def ask(self) -> Genotype:
        """The next genotype to evaluate."""
        genotype, h = self._propose()
        self._pending[h] = self._pending.get(h, 0) + 1
        self.num_asked += 1
        return genotype

    def tell(
        self, genotype: Genotype, score: float | None, metrics: dict[str, Any] | None = None
    ) -> None:
        """Report the result of evaluating ``genotype`` (higher is better).

        ``score`` of ``None`` or a non-finite float marks a failed evaluation: it is recorded
        (the architecture is not asked again) but never enters a population or a best score.
        Genotypes that were never asked are accepted too (e.g. results from an earlier run).
        """
        h = self.space.hash(genotype)
        count = self._pending.get(h, 0)
        was_pending = count > 0
        if count > 1:
            self._pending[h] = count - 1
        elif was_pending:
            del self._pending[h]
        value = as_score(score)
        self._scores[h] = value
        self.num_told += 1
        if value is None:
            self.num_failed += 1
        elif self._best is None or value > self._best[0]:
            self._best = (value, genotype)
        self._observe(genotype, h, value, metrics, was_pending)

    @property
    def best(self) -> tuple[Genotype, float] | None:
        """The best told genotype and its score, or ``None`` before the first success."""
        return None if self._best is None else (self._best[1], self._best[0])

    @property
    def num_pending(self) -> int:
        """Asks not yet answered by a tell."""
        return sum(self._pending.values())

    def is_seen(self, h: str) -> bool:
        """Whether the architecture with canonical hash ``h`` was asked or told already."""
        return h in self._scores or h in self._pending

    def options(self) -> dict[str, Any]:
        """The constructor options (JSON-ready values only), for logs and state dicts."""
        return {"max_retries": self.max_retries, "allow_duplicates": self.allow_duplicates}

    # -- state --------------------------------------------------------------------------------
    def state_dict(self) -> dict[str, Any]:
        """Everything needed to continue exactly: plain Python containers (plus tensors for
        controller strategies). Save with ``torch.save`` (loads with ``weights_only=True``);
        for ``random`` and ``evolution`` the dict is also JSON-serialisable."""
        best = None
        if self._best is not None:
            best = {"score": self._best[0], "genotype": self.space.to_json(self._best[1])}
        return {
            "strategy": self.name,
            "version": STATE_VERSION,
            "space": self.space.name,
            "num_decisions": len(self.space.decisions),
            "seed": self.seed,
            "options": self.options(),
            "rng": self.rng.bit_generator.state,
            "scores": dict(self._scores),
            "pending": dict(self._pending),
            "num_asked": self.num_asked,
            "num_told": self.num_told,
            "num_failed": self.num_failed,
            "best": best,
            **self._extra_state(),
        }

    def load_state_dict(self, state: dict[str, Any]) -> None:
        """Restore a :meth:`state_dict`; the next asks match those of the saved strategy."""
        if state.get("strategy") != self.name:
            raise StrategyError(
                f"state dict is for strategy {state.get('strategy')!r}, not {self.name!r}"
            )
        if state.get("version") != STATE_VERSION:
            raise StrategyError(f"unsupported strategy state version {state.get('version')!r}")
        if state.get("num_decisions") != len(self.space.decisions):
            raise StrategyError(
                f"state dict has {state.get('num_decisions')} decisions, space "
                f"{self.space.name!r} has {len(self.space.decisions)}"
            )
        self.seed = int(state["seed"])
        self.rng = np.random.default_rng()
        self.rng.bit_generator.state = state["rng"]
        self._scores = dict(state["scores"])
        self._pending = {h: int(c) for h, c in state["pending"].items()}
        self.num_asked = int(state["num_asked"])
        self.num_told = int(state["num_told"])
        self.num_failed = int(state["num_failed"])
        best = state["best"]
        self._best = (
            None if best is None else (float(best["score"]), self.space.from_json(best["genotype"]))
        )
        self._load_extra_state(state)

    # -- hooks for subclasses -----------------------------------------------------------------
    def _propose(self) -> tuple[Genotype, str]:
        """The next genotype and its canonical hash (must not register it as pending)."""
        raise NotImplementedError

    def _observe(
        self,
        genotype: Genotype,
        h: str,
        score: float | None,
        metrics: dict[str, Any] | None,
        was_pending: bool,
    ) -> None:
        """Learn from a told result (``score`` is ``None`` for a failure)."""

    def _extra_state(self) -> dict[str, Any]:
        return {}

    def _load_extra_state(self, state: dict[str, Any]) -> None:
        pass

    # -- helpers ------------------------------------------------------------------------------
    def _is_new(self, h: str, extra: set[str] | frozenset[str] = frozenset()) -> bool:
        """Whether ``h`` may be asked now (always true when duplicates are allowed)."""
        return self.allow_duplicates or not (self.is_seen(h) or h in extra)

    def _sample_unique(
        self, extra: set[str] | frozenset[str] = frozenset()
    ) -> tuple[Genotype, str]:
        """A uniform sample whose hash is neither seen nor in ``extra``.

        After ``max_retries`` failed draws, a small space is enumerated to pick uniformly among
        the unseen architectures; :class:`SearchExhausted` if there is none (or the space is too
        large to enumerate).
        """
        for _ in range(self.max_retries):
            genotype = self.space.sample(self.rng)
            h = self.space.hash(genotype)
            if self._is_new(h, extra):
                return genotype, h
        size = self.space.size()
        if size > ENUMERATE_LIMIT:
            raise SearchExhausted(
                f"{self.name}: {self.max_retries} random draws from space {self.space.name!r} "
                f"were all architectures asked before; raise max_retries or pass "
                f"allow_duplicates=True"
            )
        unseen = [idx for h, idx in self._enumerate() if self._is_new(h, extra)]
        if not unseen:
            distinct = len(self._enumerate())
            raise SearchExhausted(
                f"{self.name}: all {distinct} distinct architectures of space "
                f"{self.space.name!r} have been asked; stop the search or pass "
                f"allow_duplicates=True"
            )
        genotype = self.space.decode(list(unseen[int(self.rng.integers(len(unseen)))]))
        return genotype, self.space.hash(genotype)

    def _enumerate(self) -> list[tuple[str, tuple[int, ...]]]:
        """One (hash, indices) per distinct architecture of a small space, in a fixed order."""
        if self._enumeration is None:
            out: dict[str, tuple[int, ...]] = {}
            for idx in _all_indices(self.space):
                h = self.space.hash(self.space.decode(list(idx)))
                out.setdefault(h, idx)
            self._enumeration = list(out.items())
        return self._enumeration


def _all_indices(space: SearchSpace) -> Iterator[tuple[int, ...]]:
    return itertools.product(*(range(len(d)) for d in space.decisions))
