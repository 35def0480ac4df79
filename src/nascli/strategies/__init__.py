"""Search strategies behind one ask-and-tell interface, built by name.

>>> strategy = build("evolution", space, seed=0, population_size=50, sample_size=12)
>>> genotype = strategy.ask(); strategy.tell(genotype, score)

``build`` wraps the strategy in :class:`~nascli.strategies.addons.Deduplicate`, so it never
asks an architecture twice; other cross-cutting behaviour is a wrapper too
(:class:`~nascli.strategies.addons.ChildFilter`).
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from nascli.registry import Registry, UnknownNameError
from nascli.spaces import SearchSpace
from nascli.strategies.addons import ENUMERATE_LIMIT, ChildFilter, Deduplicate, Scorer
from nascli.strategies.base import (
    AskTell,
    SearchExhausted,
    Strategy,
    StrategyError,
    as_score,
    option_parameters,
)
from nascli.strategies.controller import Controller, ControllerStrategy
from nascli.strategies.evolution import RegularizedEvolution
from nascli.strategies.nsga2 import ParetoEvolution
from nascli.strategies.ppo import PPO
from nascli.strategies.random_search import RandomSearch
from nascli.strategies.reinforce import Reinforce

#: name -> strategy class or factory ``(space, seed, **options)``
STRATEGIES: Registry[Callable[..., Strategy]] = Registry("strategy")


def register_strategy(name: str, factory: Callable[..., Strategy] | None = None) -> Any:
    """``STRATEGIES.register``: add a strategy class or factory under ``name`` (without
    ``factory``, a decorator)."""
    return STRATEGIES.register(name, factory)


def build(
    name: str,
    space: SearchSpace,
    seed: int = 0,
    *,
    dedup: bool = True,
    max_retries: int | None = None,
    **options: Any,
) -> Strategy | Deduplicate:
    """The strategy registered as ``name``, built with ``options``, inside a
    :class:`Deduplicate` (``max_retries`` is the wrapper's) unless ``dedup=False``.

    Unknown names raise :class:`~nascli.registry.UnknownNameError`, unknown options
    :class:`StrategyError`; both list the valid ones in one line.
    """
    factory = STRATEGIES.get(name)
    accepted = option_parameters(factory)
    if accepted is not None:
        unknown = sorted(set(options) - set(accepted))
        if unknown:
            raise StrategyError(
                f"strategy {name!r} got unknown option(s) {', '.join(unknown)}; valid: "
                f"{', '.join(sorted(accepted)) or '(none)'} (build also takes dedup, max_retries)"
            )
    strategy = factory(space, seed, **options)
    if not dedup:
        if max_retries is not None:
            raise StrategyError("max_retries is the Deduplicate wrapper's; it needs dedup=True")
        return strategy
    return Deduplicate(strategy, seed=seed, max_retries=max_retries)


register_strategy("random", RandomSearch)
register_strategy("evolution", RegularizedEvolution)
register_strategy("ppo", PPO)
register_strategy("reinforce", Reinforce)
register_strategy("nsga2", ParetoEvolution)

__all__ = [
    "ENUMERATE_LIMIT",
    "PPO",
    "STRATEGIES",
    "AskTell",
    "ChildFilter",
    "Controller",
    "ControllerStrategy",
    "Deduplicate",
    "ParetoEvolution",
    "RandomSearch",
    "RegularizedEvolution",
    "Reinforce",
    "Scorer",
    "SearchExhausted",
    "Strategy",
    "StrategyError",
    "UnknownNameError",
    "as_score",
    "build",
    "option_parameters",
    "register_strategy",
]
