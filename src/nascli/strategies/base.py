"""The ask-and-tell interface shared by every search strategy.

A strategy proposes genotypes with :meth:`Strategy.ask` and learns from results given to
:meth:`Strategy.tell`; it never calls the objective itself, so the same object runs in a plain
loop, behind parallel workers (several asks before the matching tells, tells in any order) or
against a lookup table. Strategies touch a space only through ``decisions``, ``sample``,
``mutate``, ``encode``/``decode`` and ``hash``, so they work on any
:class:`~nascli.spaces.SearchSpace`.

A strategy alone may propose an architecture it proposed before. Avoiding repeats is one
concern with one home: the :class:`~nascli.strategies.addons.Deduplicate` wrapper, which
:func:`nascli.strategies.build` puts around every strategy unless ``dedup=False``.

A strategy's options are its keyword-only constructor parameters: plain config types, the
defaults the shipped configs use, and range checks that raise :class:`StrategyError` naming
the option, the bad value and what is valid.
"""

from __future__ import annotations

import inspect
import math
from collections.abc import Callable
from typing import Any, ClassVar, Protocol, runtime_checkable

import numpy as np

from nascli.spaces import Genotype, SearchSpace

#: Version 2: deduplication moved out of strategies (no told-score cache, no allow_duplicates).
STATE_VERSION = 2


class StrategyError(ValueError):
    """Bad strategy options or a state dict that does not fit this strategy."""


class SearchExhausted(RuntimeError):
    """No architecture that has not been asked already could be found.

    Raised by :class:`~nascli.strategies.addons.Deduplicate`: either every distinct
    architecture of a small space has been asked, or ``max_retries`` draws in a large space all
    hit seen ones.
    """


@runtime_checkable
class AskTell(Protocol):
    """What the engine and the wrappers need of a strategy (a :class:`Strategy` or a wrapper)."""

    def ask(self) -> Genotype: ...

    def tell(
        self, genotype: Genotype, score: float | None, metrics: dict[str, Any] | None = None
    ) -> None: ...

    def discard(self, genotype: Genotype) -> None: ...

    def state_dict(self) -> dict[str, Any]: ...

    def load_state_dict(self, state: dict[str, Any]) -> None: ...


def as_score(score: float | None) -> float | None:
    """A finite float, or ``None`` for a failed evaluation (``None``, NaN or infinite)."""
    if score is None:
        return None
    score = float(score)
    return score if math.isfinite(score) else None


# -- options -----------------------------------------------------------------------------------
def option_parameters(factory: Callable[..., Any]) -> dict[str, inspect.Parameter] | None:
    """The keyword-only parameters (the options) of a strategy class or factory.

    For a class, ``**options`` is followed up the MRO, and a subclass's parameter overrides its
    base's (``Reinforce``'s ``lr`` default). ``None`` if a plain function takes arbitrary
    ``**options`` (then only the factory itself can check them).
    """
    found: dict[str, inspect.Parameter] = {}
    is_class = inspect.isclass(factory)
    targets = [c.__init__ for c in inspect.getmro(factory)] if is_class else [factory]
    for target in targets:
        if target is object.__init__:
            break
        params = inspect.signature(target).parameters.values()
        for p in params:
            if p.kind is p.KEYWORD_ONLY:
                found.setdefault(p.name, p)
        if not any(p.kind is p.VAR_KEYWORD for p in params):
            return found
    return found if is_class else None


def check_option(ok: bool, strategy: str, option: str, value: Any, expected: str) -> None:
    """Raise ``strategy: option=value is invalid; expected ...`` unless ``ok``."""
    if not ok:
        raise StrategyError(f"{strategy}: {option}={value!r} is invalid; expected {expected}")


def is_int(value: Any) -> bool:
    """An integer that is not a bool (config integers; numpy integers too)."""
    return isinstance(value, int | np.integer) and not isinstance(value, bool)


def is_number(value: Any) -> bool:
    """A finite real number that is not a bool."""
    return (
        isinstance(value, int | float | np.integer | np.floating)
        and not isinstance(value, bool)
        and math.isfinite(float(value))
    )


class Strategy:
    """Base class of search strategies (ask-and-tell).

    Args:
        space: the search space.
        seed: seeds every random choice; same seed and same told scores give the same asks.

    Subclasses take their options as keyword-only constructor parameters, store each under
    its own name (so :meth:`options` finds it), implement :meth:`_propose` and may extend
    :meth:`_observe`, :meth:`_discard`, :meth:`_extra_state` and :meth:`_load_extra_state`.
    """

    name: ClassVar[str] = "base"
    #: proposals per ask that a Deduplicate wrapper lets this strategy make before it falls back
    #: to a random unseen architecture
    duplicate_retries: ClassVar[int] = 100

    def __init__(self, space: SearchSpace, seed: int = 0) -> None:
        check_option(is_int(seed), self.name, "seed", seed, "an integer")
        self.space = space
        self.seed = int(seed)
        self.rng = np.random.default_rng(self.seed)
        #: asked but neither told nor discarded: hash -> how many times
        self._pending: dict[str, int] = {}
        self.num_asked = 0
        self.num_told = 0
        self.num_failed = 0
        self.num_discarded = 0
        self._best: tuple[float, Genotype] | None = None

    # -- public API --------------------------------------------------------------------------
    def ask(self) -> Genotype:
        """The next genotype to evaluate (possibly one asked before)."""
        genotype, h = self._propose()
        self._pending[h] = self._pending.get(h, 0) + 1
        self.num_asked += 1
        return genotype

    def tell(
        self, genotype: Genotype, score: float | None, metrics: dict[str, Any] | None = None
    ) -> None:
        """Report the result of evaluating ``genotype`` (higher is better).

        ``score`` of ``None`` or a non-finite float marks a failed evaluation: it is counted
        but never enters a population or a best score. Genotypes that were never asked are
        accepted too (results from an earlier run, a wrapper's fallback): strategies learn from
        them. ``metrics`` (e.g. ``{"cached": True}``) is for records; built-ins ignore it.
        """
        h = self.space.hash(genotype)
        was_pending = self._unpend(h)
        value = as_score(score)
        self.num_told += 1
        if value is None:
            self.num_failed += 1
        elif self._best is None or value > self._best[0]:
            self._best = (value, genotype)
        self._observe(genotype, h, value, metrics, was_pending)

    def discard(self, genotype: Genotype) -> None:
        """Forget one pending ask of ``genotype`` without learning from it (a child a filter
        did not pick, a repeat a wrapper handed back)."""
        h = self.space.hash(genotype)
        if not self._unpend(h):
            raise StrategyError(f"{self.name}: cannot discard {h}: it is not pending")
        self.num_discarded += 1
        self._discard(genotype, h)

    @property
    def best(self) -> tuple[Genotype, float] | None:
        """The best told genotype and its score, or ``None`` before the first success."""
        return None if self._best is None else (self._best[1], self._best[0])

    @property
    def num_pending(self) -> int:
        """Asks neither told nor discarded yet."""
        return sum(self._pending.values())

    def options(self) -> dict[str, Any]:
        """The constructor options and their values, for logs and state dicts."""
        params = option_parameters(type(self)) or {}
        return {k: getattr(self, k) for k in params if hasattr(self, k)}

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
            "pending": dict(self._pending),
            "num_asked": self.num_asked,
            "num_told": self.num_told,
            "num_failed": self.num_failed,
            "num_discarded": self.num_discarded,
            "best": best,
            **self._extra_state(),
        }

    def load_state_dict(self, state: dict[str, Any]) -> None:
        """Restore a :meth:`state_dict`; the next asks match those of the saved strategy."""
        if "wrapper" in state:
            raise StrategyError(
                f"state dict is for a {state['wrapper']} wrapper, not strategy {self.name!r} "
                "(build the strategy with the same add-ons, e.g. dedup=True)"
            )
        if state.get("strategy") != self.name:
            raise StrategyError(
                f"state dict is for strategy {state.get('strategy')!r}, not {self.name!r}"
            )
        if state.get("version") != STATE_VERSION:
            raise StrategyError(
                f"unsupported strategy state version {state.get('version')!r} (this nascli "
                f"reads version {STATE_VERSION})"
            )
        if state.get("num_decisions") != len(self.space.decisions):
            raise StrategyError(
                f"state dict has {state.get('num_decisions')} decisions, space "
                f"{self.space.name!r} has {len(self.space.decisions)}"
            )
        self.seed = int(state["seed"])
        self.rng = np.random.default_rng()
        self.rng.bit_generator.state = state["rng"]
        self._pending = {h: int(c) for h, c in state["pending"].items()}
        self.num_asked = int(state["num_asked"])
        self.num_told = int(state["num_told"])
        self.num_failed = int(state["num_failed"])
        self.num_discarded = int(state["num_discarded"])
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

    def _discard(self, genotype: Genotype, h: str) -> None:
        """Drop what was kept for the latest pending ask of ``h`` (it will not be told)."""

    def _extra_state(self) -> dict[str, Any]:
        return {}

    def _load_extra_state(self, state: dict[str, Any]) -> None:
        pass

    # -- helpers ------------------------------------------------------------------------------
    def _unpend(self, h: str) -> bool:
        """Remove one pending ask of ``h``; whether there was one."""
        count = self._pending.get(h, 0)
        if count > 1:
            self._pending[h] = count - 1
        elif count == 1:
            del self._pending[h]
        return count > 0
