"""Search spaces: decisions, genotypes, the NASNet space, and a registry by name.

Importing this package does not import torch: genotypes are plain data
(:mod:`nascli.spaces.genotype`), and networks are built from them by ``nascli.models``.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from nascli.registry import Registry
from nascli.spaces.base import Decision, Genotype, SearchSpace, SpaceError, as_rng
from nascli.spaces.genotype import (
    CELL_TYPES,
    COMBINE_OPS,
    MAX_BLOCKS,
    MAX_GENOTYPE_BYTES,
    MAX_JSON_DEPTH,
    OP_ALIASES,
    Block,
    CellGenotype,
    NASNetGenotype,
    canonical_cell,
    default_concat,
    describe_genotype,
    genotype_from_json,
    genotype_from_text,
    genotype_to_json,
    genotype_to_text,
)
from nascli.spaces.nasnet import (
    DARTS_OPS,
    MAX_OPS,
    NASNET_OPS,
    DARTSSpace,
    NASNetSpace,
    known_ops,
)

SpaceFactory = Callable[..., SearchSpace]

#: space name -> factory (a class or function taking the space's options)
SPACES: Registry[SpaceFactory] = Registry("search space")


def register_space(
    name: str, factory: SpaceFactory | None = None
) -> SpaceFactory | Callable[[SpaceFactory], SpaceFactory]:
    """Register a space factory under ``name`` (usable as a decorator)."""
    return SPACES.register(name) if factory is None else SPACES.register(name, factory)


def get_space(name: str, **options: Any) -> SearchSpace:
    """Build a registered space by name; unknown names list the valid ones."""
    if name not in SPACES:
        raise SpaceError(f"unknown search space {name!r}; valid: {', '.join(SPACES.names())}")
    return SPACES.get(name)(**options)


register_space("nasnet", NASNetSpace)
register_space("darts", DARTSSpace)

__all__ = [
    "CELL_TYPES",
    "COMBINE_OPS",
    "DARTS_OPS",
    "MAX_BLOCKS",
    "MAX_GENOTYPE_BYTES",
    "MAX_JSON_DEPTH",
    "MAX_OPS",
    "NASNET_OPS",
    "OP_ALIASES",
    "SPACES",
    "Block",
    "CellGenotype",
    "DARTSSpace",
    "Decision",
    "Genotype",
    "NASNetGenotype",
    "NASNetSpace",
    "SearchSpace",
    "SpaceError",
    "as_rng",
    "canonical_cell",
    "default_concat",
    "describe_genotype",
    "genotype_from_json",
    "genotype_from_text",
    "genotype_to_json",
    "genotype_to_text",
    "get_space",
    "known_ops",
    "register_space",
]
