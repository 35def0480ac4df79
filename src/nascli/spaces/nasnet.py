"""The NASNet cell search space (Zoph et al. 2018) and its DARTS variant.

Genotypes are plain data in :mod:`nascli.spaces.genotype`; this module holds the space: the
decisions, sampling, mutation, validation and the search-time network settings. A space knows
op names only: its ops are checked against the op table of ``nascli.models.ops`` through
:func:`known_ops`, the one (lazy) import from spaces to models.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Sequence
from typing import Any

import numpy as np

from nascli.spaces.base import (
    Decision,
    Genotype,
    SearchSpace,
    SpaceError,
    approx_count,
    as_rng,
)
from nascli.spaces.genotype import (
    CELL_TYPES,
    COMBINE_OPS,
    MAX_BLOCKS,
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
    is_integer,
    short_repr,
)

#: The 13 ops of the NASNet paper, in the paper's order.
NASNET_OPS: tuple[str, ...] = (
    "identity",
    "conv_1x3_3x1",
    "conv_1x7_7x1",
    "dil_conv_3x3",
    "avg_pool_3x3",
    "max_pool_3x3",
    "max_pool_5x5",
    "max_pool_7x7",
    "conv_1x1",
    "conv_3x3",
    "sep_conv_3x3",
    "sep_conv_5x5",
    "sep_conv_7x7",
)

#: The DARTS op set (Liu et al. 2019) without ``none``; ``skip_connect`` is ``identity``.
DARTS_OPS: tuple[str, ...] = (
    "max_pool_3x3",
    "avg_pool_3x3",
    "identity",
    "sep_conv_3x3",
    "sep_conv_5x5",
    "dil_conv_3x3",
    "dil_conv_5x5",
)

#: Macro-network stems (the same names as ``nascli.models.STEMS``; a test keeps them equal).
STEMS: tuple[str, ...] = ("cifar", "imagenet")

# Caps on space options, which may come from untrusted genotype files (see also MAX_BLOCKS).
#: Ops per space.
MAX_OPS = 256
#: N of search-time networks.
MAX_CELLS_PER_STAGE = 64
#: C of search-time networks (NASNet-A large has 168).
MAX_CHANNELS = 4096


def known_ops() -> list[str]:
    """Op names the network builder knows, sorted (``nascli.models.ops.OPS``; imports torch)."""
    # the one edge from spaces to models: lazy, so that importing nascli.spaces stays torch-free
    from nascli.models.ops import OPS

    return OPS.names()


def _names(option: str, value: Any) -> tuple[str, ...]:
    """A non-empty list of distinct strings, at most MAX_OPS of them, aliases resolved."""
    if isinstance(value, str) or not isinstance(value, Sequence):
        raise SpaceError(f"{option} must be a list of names, got {type(value).__name__}")
    if len(value) > MAX_OPS:
        raise SpaceError(
            f"{option} has {len(value)} entries, exceeding the limit of {MAX_OPS} per space"
        )
    if not value or not all(isinstance(v, str) for v in value):
        raise SpaceError(f"{option} must be a non-empty list of names, got {short_repr(value)}")
    names = tuple(OP_ALIASES.get(v, v) for v in value) if option == "ops" else tuple(value)
    repeated = sorted(n for n, k in Counter(names).items() if k > 1)
    if repeated:
        raise SpaceError(f"{option} repeats {', '.join(map(short_repr, repeated))}")
    return names


def _count(option: str, value: Any, limit: int, unit: str) -> int:
    """An integer in 1..limit (not a bool, float or string)."""
    if not is_integer(value) or value < 1:
        raise SpaceError(
            f"{option}={short_repr(value)} is invalid; expected an integer in 1..{limit}"
        )
    if value > limit:
        raise SpaceError(f"{option}={short_repr(value)} exceeds the limit of {limit} {unit}")
    return int(value)


class NASNetSpace(SearchSpace):
    """The NASNet cell space: per cell type and block, two inputs, two ops and a combine op.

    Args:
        ops: op names (default: the paper's 13); each must be in the op table
            (:func:`known_ops`), aliases such as ``skip_connect`` are resolved.
        blocks: blocks per cell, B (default 5; at most :data:`MAX_BLOCKS`).
        combine: combine ops (default ``("add",)``; the paper also allows ``"concat"``).
        cells_per_stage: N of the networks built for search-time estimates.
        channels: C (filters of the first stack) of those networks.
        stem: their stem, ``cifar`` or ``imagenet``.

    The last three are kept in :attr:`network` for ``nascli.models.build_model``; they are not
    part of a genotype or of its hash.
    """

    name = "nasnet"

    def __init__(
        self,
        ops: Sequence[str] = NASNET_OPS,
        blocks: int = 5,
        combine: Sequence[str] = ("add",),
        cells_per_stage: int = 1,
        channels: int = 8,
        stem: str = "cifar",
    ) -> None:
        # bounds first: these options may come from an untrusted file, and the decisions below
        # grow with `blocks`
        blocks = _count("blocks", blocks, MAX_BLOCKS, "blocks per cell")
        ops = _names("ops", ops)
        valid_ops = known_ops()
        bad = [o for o in ops if o not in valid_ops]
        if bad:
            raise SpaceError(
                f"ops: unknown op(s) {', '.join(map(short_repr, bad))}; valid ops: "
                f"{', '.join(valid_ops)}"
            )
        combine = _names("combine", combine)
        bad = [c for c in combine if c not in COMBINE_OPS]
        if bad:
            raise SpaceError(
                f"combine: unknown combine op(s) {', '.join(map(short_repr, bad))}; valid: "
                f"{', '.join(COMBINE_OPS)}"
            )
        if stem not in STEMS:
            raise SpaceError(f"stem={short_repr(stem)} is invalid; valid: {', '.join(STEMS)}")
        self.ops = ops
        self.blocks = blocks
        self.combine = combine
        #: search-time network settings, the keyword arguments of the space's network builder
        self.network: dict[str, Any] = {
            "cells_per_stage": _count(
                "cells_per_stage", cells_per_stage, MAX_CELLS_PER_STAGE, "cells per stage"
            ),
            "channels": _count("channels", channels, MAX_CHANNELS, "channels"),
            "stem": stem,
        }
        self._decisions = [
            d
            for kind in CELL_TYPES
            for b in range(self.blocks)
            for d in (
                Decision(f"{kind}.b{b}.input1", tuple(range(b + 2))),
                Decision(f"{kind}.b{b}.input2", tuple(range(b + 2))),
                Decision(f"{kind}.b{b}.op1", self.ops),
                Decision(f"{kind}.b{b}.op2", self.ops),
                Decision(f"{kind}.b{b}.combine", self.combine),
            )
        ]

    @property
    def decisions(self) -> list[Decision]:
        """5 decisions per block, normal cell first: input1, input2, op1, op2, combine."""
        return self._decisions

    def config(self) -> dict[str, Any]:
        """The constructor arguments, JSON-ready."""
        return {
            "ops": list(self.ops),
            "blocks": self.blocks,
            "combine": list(self.combine),
            **self.network,
        }

    # -- encoding ---------------------------------------------------------------------------
    def decode(self, indices: Sequence[int]) -> NASNetGenotype:
        """Genotype from one choice index per decision; concat lists follow the NASNet rule."""
        self._check_indices(indices, self._decisions)
        values = [d.choices[int(i)] for d, i in zip(self._decisions, indices, strict=True)]
        cells = []
        for c in range(2):
            blocks = []
            for b in range(self.blocks):
                k = (c * self.blocks + b) * 5
                i1, i2, o1, o2, comb = values[k : k + 5]
                blocks.append(Block(inputs=(i1, i2), ops=(o1, o2), combine=comb))
            cells.append(CellGenotype(blocks=tuple(blocks)))
        return NASNetGenotype(normal=cells[0], reduce=cells[1])

    def encode(self, genotype: Genotype) -> list[int]:
        """Choice indices of a genotype (its concat lists are not part of the encoding)."""
        g = self.validate(genotype)
        out: list[int] = []
        for kind in CELL_TYPES:
            for block in g.cell(kind).blocks:
                out += [
                    block.inputs[0],
                    block.inputs[1],
                    self.ops.index(block.ops[0]),
                    self.ops.index(block.ops[1]),
                    self.combine.index(block.combine),
                ]
        return out

    def validate(self, genotype: Genotype, where: str = "genotype") -> NASNetGenotype:
        """Check ops, input indices, block counts and concat lists; the error names the field."""
        if not isinstance(genotype, NASNetGenotype):
            raise SpaceError(f"{where}: expected a NASNet genotype, got {type(genotype).__name__}")
        for kind in CELL_TYPES:
            cell = genotype.cell(kind)
            if len(cell.blocks) != self.blocks:
                raise SpaceError(
                    f"{where}: {kind}.blocks has {len(cell.blocks)} blocks, the space has "
                    f"{self.blocks}"
                )
            for b, block in enumerate(cell.blocks):
                self._validate_block(block, b, f"{where}: {kind}.blocks[{b}]")
            self._validate_concat(cell, f"{where}: {kind}.concat")
        return genotype

    def _validate_block(self, block: Block, b: int, field_: str) -> None:
        for j, i in enumerate(block.inputs):
            if not 0 <= i < b + 2:
                raise SpaceError(
                    f"{field_}.inputs[{j}] = {i} is out of range; block {b} may read "
                    f"states 0..{b + 1}"
                )
        for j, op in enumerate(block.ops):
            if op not in self.ops:
                raise SpaceError(
                    f"{field_}.ops[{j}] = {short_repr(op)} is not an op of this space; "
                    f"valid: {', '.join(self.ops)}"
                )
        if block.combine not in self.combine:
            raise SpaceError(
                f"{field_}.combine = {short_repr(block.combine)}; valid: "
                f"{', '.join(self.combine)}"
            )

    @staticmethod
    def _validate_concat(cell: CellGenotype, field_: str) -> None:
        if not cell.concat:
            raise SpaceError(f"{field_} is empty")
        for c in cell.concat:
            if not 0 <= c < cell.num_states:
                raise SpaceError(
                    f"{field_} has state {c}, valid states are 0..{cell.num_states - 1}"
                )
        if len(set(cell.concat)) != len(cell.concat):
            raise SpaceError(f"{field_} repeats a state: {list(cell.concat)}")

    # -- mutation ---------------------------------------------------------------------------
    def mutate(
        self, genotype: Genotype, rng: np.random.Generator | int | None = None
    ) -> NASNetGenotype:
        """Regularized-evolution mutation: one hidden-state or one op change in one cell.

        The concat list is recomputed by the NASNet rule when the cell follows it, and kept
        (minus states that no longer exist) when it was given explicitly.
        """
        rng = as_rng(rng)
        g = self.validate(genotype)
        kind = CELL_TYPES[int(rng.integers(2))]
        cell = g.cell(kind)
        kinds = ["hidden_state", "op"]
        if len(self.combine) > 1:
            kinds.append("combine")
        while True:
            what = kinds[int(rng.integers(len(kinds)))]
            b = int(rng.integers(self.blocks))
            j = int(rng.integers(2))
            block = cell.blocks[b]
            if what == "hidden_state":
                choices = [s for s in range(b + 2) if s != block.inputs[j]]
                new = list(block.inputs)
                new[j] = choices[int(rng.integers(len(choices)))]
                block = Block(inputs=(new[0], new[1]), ops=block.ops, combine=block.combine)
                break
            if what == "op" and len(self.ops) > 1:
                choices = [o for o in self.ops if o != block.ops[j]]
                new_ops = list(block.ops)
                new_ops[j] = choices[int(rng.integers(len(choices)))]
                block = Block(inputs=block.inputs, ops=(new_ops[0], new_ops[1]),
                              combine=block.combine)
                break
            if what == "combine":
                choices = [c for c in self.combine if c != block.combine]
                block = Block(inputs=block.inputs, ops=block.ops, combine=choices[0])
                break
        blocks = list(cell.blocks)
        blocks[b] = block
        if cell.concat == default_concat(cell.blocks):
            new_cell = CellGenotype(blocks=tuple(blocks))
        else:
            new_cell = CellGenotype(blocks=tuple(blocks), concat=cell.concat)
        if kind == "normal":
            return NASNetGenotype(normal=new_cell, reduce=g.reduce)
        return NASNetGenotype(normal=g.normal, reduce=new_cell)

    # -- canonical form ---------------------------------------------------------------------
    def canonical(self, genotype: Genotype) -> NASNetGenotype:
        """Canonical form: see :func:`canonical_cell`."""
        g = self.validate(genotype)
        return NASNetGenotype(normal=canonical_cell(g.normal), reduce=canonical_cell(g.reduce))

    # -- JSON and text ----------------------------------------------------------------------
    def to_json(self, genotype: Genotype) -> dict[str, Any]:
        """``{"normal": {"blocks": [...], "concat": [...]}, "reduce": {...}}``."""
        return genotype_to_json(genotype)

    def from_json(self, data: Any, where: str = "genotype") -> NASNetGenotype:
        """Parse and validate the dict written by :meth:`to_json`."""
        return self.validate(genotype_from_json(data, where=where), where=where)

    def to_text(self, genotype: Genotype) -> str:
        """One line, e.g. ``N: 0:sep_conv_3x3+1:identity ... ; concat 2,3 | R: ...``."""
        return genotype_to_text(genotype)

    def from_text(self, text: str, where: str = "genotype text") -> NASNetGenotype:
        """Parse and validate the form written by :meth:`to_text`."""
        return self.validate(genotype_from_text(text, where=where), where=where)

    def describe_genotype(self, genotype: Genotype) -> str:
        """Multi-line, paper-like description of a genotype."""
        return describe_genotype(self.validate(genotype))

    def describe(self) -> str:
        """One line about the space."""
        return (
            f"nasnet: B={self.blocks}, {len(self.ops)} ops, combine={'/'.join(self.combine)}, "
            f"{len(self._decisions)} decisions, {approx_count(self.size())} encodings"
        )


class DARTSSpace(NASNetSpace):
    """The NASNet cell structure with the DARTS op set and B=4 (a space variant)."""

    name = "darts"

    def __init__(
        self,
        ops: Sequence[str] = DARTS_OPS,
        blocks: int = 4,
        combine: Sequence[str] = ("add",),
        cells_per_stage: int = 1,
        channels: int = 8,
        stem: str = "cifar",
    ) -> None:
        super().__init__(
            ops=ops,
            blocks=blocks,
            combine=combine,
            cells_per_stage=cells_per_stage,
            channels=channels,
            stem=stem,
        )
