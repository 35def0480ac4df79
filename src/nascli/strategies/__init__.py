"""Search strategies behind one ask-and-tell interface, built by name.

>>> strategy = build("evolution", space, seed=0, population_size=50, sample_size=10)
>>> genotype = strategy.ask(); strategy.tell(genotype, score)
"""

from __future__ import annotations

import inspect
from collections.abc import Callable
from typing import Any

from nascli.spaces import SearchSpace
from nascli.strategies.base import SearchExhausted, Strategy, StrategyError, as_score
from nascli.strategies.controller import Controller, ControllerStrategy
from nascli.strategies.evolution import RegularizedEvolution
from nascli.strategies.ppo import PPO
from nascli.strategies.random_search import RandomSearch
from nascli.strategies.reinforce import Reinforce

STRATEGIES: dict[str, Callable[..., Strategy]] = {}


def register_strategy(name: str, factory: Callable[..., Strategy] | None = None):
    """Register a strategy class or factory ``(space, seed, **options)`` under ``name``
    (usable as a decorator)."""

    def _add(f: Callable[..., Strategy]) -> Callable[..., Strategy]:
        STRATEGIES[name] = f
        return f

    return _add(factory) if factory is not None else _add


def _accepted_options(factory: Callable[..., Strategy]) -> set[str] | None:
    """Keyword options a factory takes, following ``**options`` up the class chain."""
    names: set[str] = set()
    is_class = inspect.isclass(factory)
    targets = [c.__init__ for c in inspect.getmro(factory)] if is_class else [factory]
    for target in targets:
        if target is object.__init__:
            break
        params = inspect.signature(target).parameters.values()
        names |= {p.name for p in params if p.kind is p.KEYWORD_ONLY}
        if not any(p.kind is p.VAR_KEYWORD for p in params):
            return names
    return names if is_class else None


def build(name: str, space: SearchSpace, seed: int = 0, **options: Any) -> Strategy:
    """A registered strategy by name; unknown names or options list the valid ones."""
    if name not in STRATEGIES:
        raise StrategyError(f"unknown strategy {name!r}; valid: {', '.join(sorted(STRATEGIES))}")
    factory = STRATEGIES[name]
    accepted = _accepted_options(factory)
    if accepted is not None:
        unknown = sorted(set(options) - accepted)
        if unknown:
            raise StrategyError(
                f"strategy {name!r} got unknown option(s) {', '.join(unknown)}; valid: "
                f"{', '.join(sorted(accepted))}"
            )
    return factory(space, seed, **options)


register_strategy("random", RandomSearch)
register_strategy("evolution", RegularizedEvolution)
register_strategy("ppo", PPO)
register_strategy("reinforce", Reinforce)

__all__ = [
    "PPO",
    "STRATEGIES",
    "Controller",
    "ControllerStrategy",
    "RandomSearch",
    "RegularizedEvolution",
    "Reinforce",
    "SearchExhausted",
    "Strategy",
    "StrategyError",
    "as_score",
    "build",
    "register_strategy",
]
