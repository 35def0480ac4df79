"""Search add-ons: wrappers that add one cross-cutting behaviour to any ask/tell strategy.

Like NNI's strategy middleware, each concern lives in one wrapper instead of an option inside
every strategy. A wrapper needs only ``ask``, ``tell``, ``discard``, ``state_dict`` and
``load_state_dict`` of what it wraps (a :class:`~nascli.strategies.base.Strategy` or another
wrapper), and is itself such an object, so wrappers compose::

    strategy = Deduplicate(ChildFilter(RegularizedEvolution(space, 0), proxy_scores, children=4))

Attributes a wrapper does not define are read from the strategy it wraps, so
``strategy.population`` or ``strategy.best`` work through any number of wrappers.
"""

from __future__ import annotations

import itertools
from collections.abc import Callable, Iterator, Sequence
from typing import Any

import numpy as np

from nascli.spaces import Genotype, SearchSpace
from nascli.strategies.base import (
    AskTell,
    SearchExhausted,
    StrategyError,
    as_score,
    check_option,
    is_int,
)

#: Spaces with at most this many encodings are enumerated to tell "exhausted" from "unlucky".
ENUMERATE_LIMIT = 1 << 16

#: ``max_retries`` of a Deduplicate around a strategy without ``duplicate_retries``
DEFAULT_RETRIES = 100

#: Scores a list of candidate genotypes (e.g. by a zero-cost proxy); higher is better.
Scorer = Callable[[list[Genotype]], Sequence[float]]

WRAPPER_STATE_VERSION = 1

# keeps the fallback draws apart from an inner strategy's default_rng(seed)
_FALLBACK_STREAM = 0xDED0


class _Wrapper:
    """Forwarding and state checks shared by the add-ons."""

    kind = "wrapper"

    def __init__(self, inner: AskTell) -> None:
        self.inner = inner

    def __getattr__(self, name: str) -> Any:
        # only reached for attributes the wrapper lacks; "inner" itself must not recurse
        if name == "inner" or name.startswith("__"):
            raise AttributeError(name)
        return getattr(self.inner, name)

    def _label(self) -> str:
        return str(getattr(self.inner, "name", type(self.inner).__name__))

    def _check_state(self, state: dict[str, Any]) -> None:
        if state.get("wrapper") != self.kind:
            found = state.get("wrapper") or f"strategy {state.get('strategy')!r}"
            raise StrategyError(
                f"state dict is for {found}, not a {self.kind} wrapper (was the strategy built "
                "with other add-ons, or with dedup=False?)"
            )
        if state.get("version") != WRAPPER_STATE_VERSION:
            raise StrategyError(f"unsupported {self.kind} state version {state.get('version')!r}")


class Deduplicate(_Wrapper):
    """Never hands out an architecture (by canonical ``space.hash``) that was told or is pending.

    ``ask`` asks the inner strategy until it proposes an unseen architecture. A re-proposal of
    a told architecture is answered at once: the inner strategy is told the cached score (a
    failure again as a failure) with metrics ``{"cached": True}``, so learning strategies learn
    from it. A re-proposal of a pending one is handed back with ``inner.discard``. After
    ``max_retries`` re-proposals in one ask, a uniformly random unseen architecture is asked
    instead: drawn with this wrapper's own RNG, or picked from the unseen rest of a space with
    at most :data:`ENUMERATE_LIMIT` encodings. The inner strategy is told its result later like
    any result it never asked for. :class:`~nascli.strategies.base.SearchExhausted` when every
    distinct architecture of a small space was asked, or a large space gives only seen draws.

    Args:
        inner: the strategy to wrap.
        space: for the hashes (default: ``inner.space``).
        seed: seeds the fallback draws (default: ``inner.seed``, else 0).
        max_retries: proposals per ask before the fallback (default: the inner strategy's
            ``duplicate_retries``: 100, or 20 for the controller strategies).

    Counters: ``num_asked`` (handed out), ``num_told``, ``num_failed``, ``num_pending``,
    ``num_cached`` (re-proposals answered from the cache), ``num_returned`` (re-proposals of
    pending ones handed back), ``num_fallbacks``.
    """

    kind = "deduplicate"

    def __init__(
        self,
        inner: AskTell,
        *,
        space: SearchSpace | None = None,
        seed: int | None = None,
        max_retries: int | None = None,
    ) -> None:
        super().__init__(inner)
        self.space = inner.space if space is None else space
        seed = getattr(inner, "seed", 0) if seed is None else seed
        if max_retries is None:
            max_retries = getattr(inner, "duplicate_retries", DEFAULT_RETRIES)
        label = self._label()
        check_option(is_int(seed), label, "seed", seed, "an integer")
        check_option(is_int(max_retries) and max_retries >= 1, label, "max_retries", max_retries,
                     "an integer >= 1")
        self.seed = int(seed)
        self.max_retries = int(max_retries)
        self.rng = np.random.default_rng([_FALLBACK_STREAM, self.seed])
        #: told (or recorded) hash -> latest score; None: failed
        self._told: dict[str, float | None] = {}
        #: handed out, neither told nor discarded
        self._pending: set[str] = set()
        #: the pending ones the inner strategy never asked (fallbacks and reservations)
        self._fallbacks: set[str] = set()
        self.num_asked = 0
        self.num_told = 0
        self.num_failed = 0
        self.num_cached = 0
        self.num_returned = 0
        self.num_fallbacks = 0
        self._enumeration: list[tuple[str, tuple[int, ...]]] | None = None  # lazily built

    # -- ask and tell ---------------------------------------------------------------------------
    def ask(self) -> Genotype:
        """The next architecture that was neither told nor is pending."""
        for _ in range(self.max_retries):
            genotype = self.inner.ask()
            h = self.space.hash(genotype)
            if h in self._told:
                self.num_cached += 1
                self.inner.tell(genotype, self._told[h], {"cached": True})
            elif h in self._pending:
                self.num_returned += 1
                self.inner.discard(genotype)
            else:
                return self._hand_out(genotype, h)
        genotype, h = self._fallback()
        self.num_fallbacks += 1
        self._fallbacks.add(h)
        return self._hand_out(genotype, h)

    def tell(
        self, genotype: Genotype, score: float | None, metrics: dict[str, Any] | None = None
    ) -> None:
        """Record the result (the cache answers later re-proposals) and tell the inner strategy."""
        h = self.space.hash(genotype)
        self._pending.discard(h)
        self._fallbacks.discard(h)
        value = as_score(score)
        self._told[h] = value
        self.num_told += 1
        if value is None:
            self.num_failed += 1
        self.inner.tell(genotype, score, metrics)

    def discard(self, genotype: Genotype) -> None:
        """Forget a pending ask without a result: it is no longer seen and may be asked again."""
        h = self.space.hash(genotype)
        if h not in self._pending:
            raise StrategyError(f"{self._label()}: cannot discard {h}: it is not pending")
        self._pending.remove(h)
        if h in self._fallbacks:
            self._fallbacks.remove(h)  # the inner strategy never asked it
        else:
            self.inner.discard(genotype)

    def reserve(self, genotype: Genotype) -> bool:
        """Mark an architecture chosen elsewhere (an engine's warm-start queue) as pending, so
        no ask repeats it while it is evaluated; its tell reaches the inner strategy as a tell
        without an ask. False, and nothing reserved, if it was already seen."""
        h = self.space.hash(genotype)
        if self.seen(h):
            return False
        self._pending.add(h)
        self._fallbacks.add(h)  # like a fallback: the inner strategy never asked it
        return True

    def record(self, genotype: Genotype, score: float | None) -> None:
        """Cache a result without telling the inner strategy (e.g. a run's history on resume):
        the architecture is not asked again, and a re-proposal is answered with ``score``."""
        self._told[self.space.hash(genotype)] = as_score(score)

    def seen(self, h: str) -> bool:
        """Whether the architecture with canonical hash ``h`` was told, recorded or is pending."""
        return h in self._told or h in self._pending

    def cached(self, h: str) -> float | None:
        """The told score of hash ``h`` (``None``: it failed); ``KeyError`` if never told."""
        return self._told[h]

    @property
    def num_pending(self) -> int:
        """Asks handed out and neither told nor discarded."""
        return len(self._pending)

    # -- state ----------------------------------------------------------------------------------
    def state_dict(self) -> dict[str, Any]:
        """The inner strategy's state under ``inner`` plus the cache, pending hashes, RNG and
        counters (plain containers: JSON-ready when the inner state is)."""
        return {
            "wrapper": self.kind,
            "version": WRAPPER_STATE_VERSION,
            "seed": self.seed,
            "max_retries": self.max_retries,
            "rng": self.rng.bit_generator.state,
            "told": dict(self._told),
            "pending": sorted(self._pending),
            "fallbacks": sorted(self._fallbacks),
            "num_asked": self.num_asked,
            "num_told": self.num_told,
            "num_failed": self.num_failed,
            "num_cached": self.num_cached,
            "num_returned": self.num_returned,
            "num_fallbacks": self.num_fallbacks,
            "inner": self.inner.state_dict(),
        }

    def load_state_dict(self, state: dict[str, Any]) -> None:
        """Restore a :meth:`state_dict` (``max_retries`` stays the constructor's)."""
        self._check_state(state)
        self.inner.load_state_dict(state["inner"])
        self.seed = int(state["seed"])
        self.rng = np.random.default_rng()
        self.rng.bit_generator.state = state["rng"]
        self._told = {h: None if s is None else float(s) for h, s in state["told"].items()}
        self._pending = set(state["pending"])
        self._fallbacks = set(state["fallbacks"])
        for key in ("num_asked", "num_told", "num_failed", "num_cached", "num_returned",
                    "num_fallbacks"):
            setattr(self, key, int(state[key]))

    # -- helpers --------------------------------------------------------------------------------
    def _hand_out(self, genotype: Genotype, h: str) -> Genotype:
        self._pending.add(h)
        self.num_asked += 1
        return genotype

    def _fallback(self) -> tuple[Genotype, str]:
        """A uniform unseen architecture: ``max_retries`` draws, then enumeration of a small
        space; :class:`SearchExhausted` if none is found."""
        for _ in range(self.max_retries):
            genotype = self.space.sample(self.rng)
            h = self.space.hash(genotype)
            if not self.seen(h):
                return genotype, h
        label, space = self._label(), self.space.name
        if self.space.size() > ENUMERATE_LIMIT:
            raise SearchExhausted(
                f"{label}: {self.max_retries} random draws from space {space!r} were all "
                "architectures asked before; raise max_retries or build with dedup=False"
            )
        unseen = [(h, idx) for h, idx in self._enumerate() if not self.seen(h)]
        if not unseen:
            raise SearchExhausted(
                f"{label}: all {len(self._enumerate())} distinct architectures of space "
                f"{space!r} have been asked; stop the search or build with dedup=False"
            )
        h, idx = unseen[int(self.rng.integers(len(unseen)))]
        return self.space.decode(list(idx)), h

    def _enumerate(self) -> list[tuple[str, tuple[int, ...]]]:
        """One (hash, indices) per distinct architecture of a small space, in a fixed order."""
        if self._enumeration is None:
            out: dict[str, tuple[int, ...]] = {}
            for idx in _all_indices(self.space):
                out.setdefault(self.space.hash(self.space.decode(list(idx))), idx)
            self._enumeration = list(out.items())
        return self._enumeration


class ChildFilter(_Wrapper):
    """Asks the inner strategy ``children`` times per ask and keeps the best by ``score``.

    For proxy-guided search: the K proposals are scored by ``score(list_of_genotypes) ->
    list_of_floats`` (higher is better; NaN and -inf never win; ties go to the first), the
    winner is asked and the others are handed back with ``inner.discard`` (never evaluated,
    never learnt from). If no proposal has a usable score, the first is asked. With
    ``children=1`` the scorer is not called. If the inner strategy raises
    :class:`~nascli.strategies.base.SearchExhausted` after some children, the filter chooses
    among those.

    Around a :class:`Deduplicate` (``ChildFilter(Deduplicate(s), ...)``) the K children are
    distinct and unseen, so the scorer never spends time on repeats; inside one
    (``Deduplicate(ChildFilter(s, ...))``) a winner that repeats a seen architecture is
    answered from the cache and K new children are drawn. ``score`` is not part of the state
    dict: pass it again when resuming, and keep it deterministic for exact resumes.

    Args:
        inner: the strategy to wrap.
        score: the scorer of a list of candidates.
        children: K >= 1 proposals per ask.
    """

    kind = "child_filter"

    def __init__(self, inner: AskTell, score: Scorer, *, children: int) -> None:
        super().__init__(inner)
        check_option(is_int(children) and children >= 1, "child_filter", "children", children,
                     "an integer >= 1")
        if not callable(score):
            raise StrategyError(f"child_filter: score must be callable, got {score!r}")
        self.score = score
        self.children = int(children)
        self.num_filtered = 0

    def ask(self) -> Genotype:
        """The best of ``children`` proposals of the inner strategy."""
        candidates: list[Genotype] = []
        winner = 0
        try:
            for _ in range(self.children):
                try:
                    candidates.append(self.inner.ask())
                except SearchExhausted:
                    if not candidates:
                        raise
                    break  # a nearly exhausted space: choose among the children there are
            if len(candidates) > 1:
                winner = self._pick(candidates)
                self.num_filtered += 1
        except BaseException:
            # hand everything back so the inner strategy's pending asks stay true
            for genotype in candidates:
                self.inner.discard(genotype)
            raise
        for k, genotype in enumerate(candidates):
            if k != winner:
                self.inner.discard(genotype)
        return candidates[winner]

    def tell(
        self, genotype: Genotype, score: float | None, metrics: dict[str, Any] | None = None
    ) -> None:
        """Tell the inner strategy."""
        self.inner.tell(genotype, score, metrics)

    def discard(self, genotype: Genotype) -> None:
        """Hand a pending ask back to the inner strategy."""
        self.inner.discard(genotype)

    def state_dict(self) -> dict[str, Any]:
        """The inner strategy's state under ``inner``, plus K and a counter."""
        return {
            "wrapper": self.kind,
            "version": WRAPPER_STATE_VERSION,
            "children": self.children,
            "num_filtered": self.num_filtered,
            "inner": self.inner.state_dict(),
        }

    def load_state_dict(self, state: dict[str, Any]) -> None:
        """Restore a :meth:`state_dict` (``children`` and ``score`` stay the constructor's)."""
        self._check_state(state)
        self.inner.load_state_dict(state["inner"])
        self.num_filtered = int(state["num_filtered"])

    def _pick(self, candidates: list[Genotype]) -> int:
        scores = np.asarray(self.score(list(candidates)), dtype=float)
        if scores.shape != (len(candidates),):
            raise StrategyError(
                f"child_filter: score returned {scores.shape} scores for {len(candidates)} "
                "children; expected one per child"
            )
        scores = np.where(np.isnan(scores), -np.inf, scores)
        return int(np.argmax(scores))  # all -inf: 0, the first


def _all_indices(space: SearchSpace) -> Iterator[tuple[int, ...]]:
    return itertools.product(*(range(len(d)) for d in space.decisions))
