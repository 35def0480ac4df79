"""Search spaces: decisions, genotypes, the NASNet space, and a registry by name."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from nascli.spaces.base import Decision, Genotype, SearchSpace, SpaceError, as_rng
from nascli.spaces.nasnet import (
    COMBINE_OPS,
    DARTS_OPS,
    KNOWN_OPS,
    NASNET_OPS,
    Block,
    Cell,
    DARTSSpace,
    NASNetGenotype,
    NASNetSpace,
    canonical_cell,
)

SPACES: dict[str, Callable[..., SearchSpace]] = {}


def register_space(name: str, factory: Callable[..., SearchSpace] | None = None):
    """Register a space factory under ``name`` (usable as a decorator)."""

    def _add(f: Callable[..., SearchSpace]) -> Callable[..., SearchSpace]:
        SPACES[name] = f
        return f

    return _add(factory) if factory is not None else _add


def get_space(name: str, **options: Any) -> SearchSpace:
    """Build a registered space by name; unknown names list the valid ones."""
    if name not in SPACES:
        raise SpaceError(f"unknown search space {name!r}; valid: {', '.join(sorted(SPACES))}")
    return SPACES[name](**options)


register_space("nasnet", NASNetSpace)
register_space("darts", DARTSSpace)

__all__ = [
    "COMBINE_OPS",
    "DARTS_OPS",
    "KNOWN_OPS",
    "NASNET_OPS",
    "SPACES",
    "Block",
    "Cell",
    "DARTSSpace",
    "Decision",
    "Genotype",
    "NASNetGenotype",
    "NASNetSpace",
    "SearchSpace",
    "SpaceError",
    "as_rng",
    "canonical_cell",
    "get_space",
    "register_space",
]
