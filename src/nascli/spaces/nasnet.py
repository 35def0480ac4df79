"""The NASNet cell search space (Zoph et al. 2018) and its genotype.

A genotype has a normal and a reduction cell. Hidden states of a cell are numbered: 0 is the
cell input h_i (the previous cell's output), 1 is h_{i-1} (the one before), and block ``b``
writes state ``b + 2``. Each block reads two states, applies one op to each and combines the
results (``add`` or ``concat``). The cell output concatenates the states in ``concat``: by
default every block output that no other block reads (published cells list theirs explicitly).
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from nascli.spaces.base import Decision, Genotype, SearchSpace, SpaceError, as_rng

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

#: Every op name the network builder knows (the op table in ``nascli.models.ops``).
KNOWN_OPS: tuple[str, ...] = (*NASNET_OPS, "dil_conv_5x5")

#: Names from other code bases accepted on load.
OP_ALIASES: dict[str, str] = {
    "skip_connect": "identity",
    "none": "identity",  # the NASNet TF reference calls identity "none"
    "separable_3x3_2": "sep_conv_3x3",
    "separable_5x5_2": "sep_conv_5x5",
    "separable_7x7_2": "sep_conv_7x7",
    "1x7_7x1": "conv_1x7_7x1",
    "1x3_3x1": "conv_1x3_3x1",
}

COMBINE_OPS: tuple[str, ...] = ("add", "concat")
CELL_TYPES: tuple[str, ...] = ("normal", "reduce")


@dataclass(frozen=True)
class Block:
    """One block: two input states, one op on each, and how the two results combine."""

    inputs: tuple[int, int]
    ops: tuple[str, str]
    combine: str = "add"

    def __post_init__(self) -> None:
        object.__setattr__(self, "inputs", tuple(int(i) for i in self.inputs))
        object.__setattr__(self, "ops", tuple(OP_ALIASES.get(o, o) for o in self.ops))


@dataclass(frozen=True)
class Cell:
    """A cell: its blocks in order and the states concatenated into its output."""

    blocks: tuple[Block, ...]
    concat: tuple[int, ...] = field(default=())

    def __post_init__(self) -> None:
        object.__setattr__(self, "blocks", tuple(self.blocks))
        concat = tuple(int(c) for c in self.concat) if self.concat else default_concat(self.blocks)
        object.__setattr__(self, "concat", concat)

    @property
    def num_states(self) -> int:
        """Hidden states including the two cell inputs."""
        return len(self.blocks) + 2


def default_concat(blocks: Sequence[Block]) -> tuple[int, ...]:
    """Block outputs that no later block reads (the NASNet rule for the cell output)."""
    used = {i for b in blocks for i in b.inputs}
    return tuple(s for s in range(2, len(blocks) + 2) if s not in used)


@dataclass(frozen=True)
class NASNetGenotype:
    """A normal and a reduction cell."""

    normal: Cell
    reduce: Cell

    def cell(self, kind: str) -> Cell:
        """The cell of type ``normal`` or ``reduce``."""
        return self.normal if kind == "normal" else self.reduce


def _cell_signatures(cell: Cell) -> list[str]:
    """A structural signature per hidden state; equal signatures mean equal computations.

    Operands of a block are sorted, since both combine ops are symmetric (for ``concat`` up to
    a permutation of channels, which the following 1x1 convolutions absorb).
    """
    sigs = ["h0", "h1"]
    for b in cell.blocks:
        operands = sorted(f"{op}({sigs[i]})" for i, op in zip(b.inputs, b.ops, strict=True))
        sigs.append(f"{b.combine}[{','.join(operands)}]")
    return sigs


def canonical_cell(cell: Cell) -> Cell:
    """Equivalent cell in canonical form.

    Blocks are renumbered in a topological order that breaks ties by structural signature,
    operands within a block are sorted, and the concat list is sorted. Two cells that compute the
    same function up to weight permutation get the same canonical form.
    """
    sigs = _cell_signatures(cell)
    nb = len(cell.blocks)
    deps = [{i - 2 for i in b.inputs if i >= 2} for b in cell.blocks]
    order: list[int] = []
    placed: set[int] = set()
    while len(order) < nb:
        ready = [k for k in range(nb) if k not in placed and deps[k] <= placed]
        k = min(ready, key=lambda j: (sigs[j + 2], j))
        order.append(k)
        placed.add(k)
    new_state = {0: 0, 1: 1} | {old + 2: new + 2 for new, old in enumerate(order)}
    blocks = []
    for old in order:
        b = cell.blocks[old]
        operands = sorted(
            ((sigs[i], new_state[i], op) for i, op in zip(b.inputs, b.ops, strict=True)),
            key=lambda t: (t[2] + "(" + t[0] + ")", t[1]),
        )
        blocks.append(
            Block(
                inputs=(operands[0][1], operands[1][1]),
                ops=(operands[0][2], operands[1][2]),
                combine=b.combine,
            )
        )
    concat = tuple(sorted(new_state[c] for c in cell.concat))
    return Cell(blocks=tuple(blocks), concat=concat)


class NASNetSpace(SearchSpace):
    """The NASNet cell space: per cell type and block, two inputs, two ops and a combine op.

    Args:
        ops: op names (default: the paper's 13).
        blocks: blocks per cell, B (default 5).
        combine: combine ops (default ``("add",)``; the paper also allows ``"concat"``).
    """

    name = "nasnet"

    def __init__(
        self,
        ops: Sequence[str] = NASNET_OPS,
        blocks: int = 5,
        combine: Sequence[str] = ("add",),
    ) -> None:
        ops = tuple(OP_ALIASES.get(o, o) for o in ops)
        bad = [o for o in ops if o not in KNOWN_OPS]
        if bad:
            raise SpaceError(
                f"unknown op(s) {', '.join(bad)}; valid ops: {', '.join(KNOWN_OPS)}"
            )
        if len(set(ops)) != len(ops) or not ops:
            raise SpaceError(f"ops must be a non-empty list without repeats, got {list(ops)}")
        if int(blocks) < 1:
            raise SpaceError(f"blocks must be >= 1, got {blocks}")
        combine = tuple(combine)
        bad = [c for c in combine if c not in COMBINE_OPS]
        if bad or not combine:
            raise SpaceError(
                f"unknown combine op(s) {', '.join(bad) or '(none given)'}; "
                f"valid: {', '.join(COMBINE_OPS)}"
            )
        self.ops = ops
        self.blocks = int(blocks)
        self.combine = combine
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
        return {"ops": list(self.ops), "blocks": self.blocks, "combine": list(self.combine)}

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
            cells.append(Cell(blocks=tuple(blocks)))
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
                field_ = f"{where}: {kind}.blocks[{b}]"
                for j, i in enumerate(block.inputs):
                    if not 0 <= i < b + 2:
                        raise SpaceError(
                            f"{field_}.inputs[{j}] = {i} is out of range; block {b} may read "
                            f"states 0..{b + 1}"
                        )
                for j, op in enumerate(block.ops):
                    if op not in self.ops:
                        raise SpaceError(
                            f"{field_}.ops[{j}] = {op!r} is not an op of this space; valid: "
                            f"{', '.join(self.ops)}"
                        )
                if block.combine not in self.combine:
                    raise SpaceError(
                        f"{field_}.combine = {block.combine!r}; valid: {', '.join(self.combine)}"
                    )
            if not cell.concat:
                raise SpaceError(f"{where}: {kind}.concat is empty")
            for c in cell.concat:
                if not 0 <= c < cell.num_states:
                    raise SpaceError(
                        f"{where}: {kind}.concat has state {c}, valid states are "
                        f"0..{cell.num_states - 1}"
                    )
            if len(set(cell.concat)) != len(cell.concat):
                raise SpaceError(f"{where}: {kind}.concat repeats a state: {list(cell.concat)}")
        return genotype

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
            new_cell = Cell(blocks=tuple(blocks))
        else:
            new_cell = Cell(blocks=tuple(blocks), concat=cell.concat)
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
        g = genotype
        return {
            kind: {
                "blocks": [
                    {"inputs": list(b.inputs), "ops": list(b.ops), "combine": b.combine}
                    for b in g.cell(kind).blocks
                ],
                "concat": list(g.cell(kind).concat),
            }
            for kind in CELL_TYPES
        }

    def from_json(self, data: dict[str, Any], where: str = "genotype") -> NASNetGenotype:
        """Parse and validate the dict written by :meth:`to_json`."""
        if not isinstance(data, dict):
            raise SpaceError(f"{where}: expected a JSON object, got {type(data).__name__}")
        cells = {}
        for kind in CELL_TYPES:
            if kind not in data:
                raise SpaceError(f"{where}: missing field {kind!r}")
            c = data[kind]
            if not isinstance(c, dict) or not isinstance(c.get("blocks"), list):
                raise SpaceError(f"{where}: {kind}.blocks must be a list of blocks")
            blocks = []
            for b, raw in enumerate(c["blocks"]):
                field_ = f"{where}: {kind}.blocks[{b}]"
                if not isinstance(raw, dict):
                    raise SpaceError(f"{field_} must be an object with inputs, ops, combine")
                inputs, ops = raw.get("inputs"), raw.get("ops")
                if not (isinstance(inputs, list) and len(inputs) == 2) or not all(
                    isinstance(i, int) and not isinstance(i, bool) for i in inputs
                ):
                    raise SpaceError(f"{field_}.inputs must be two integers, got {inputs!r}")
                if not (isinstance(ops, list) and len(ops) == 2) or not all(
                    isinstance(o, str) for o in ops
                ):
                    raise SpaceError(f"{field_}.ops must be two op names, got {ops!r}")
                combine = raw.get("combine", "add")
                if not isinstance(combine, str):
                    raise SpaceError(f"{field_}.combine must be a string, got {combine!r}")
                unknown = sorted(set(raw) - {"inputs", "ops", "combine"})
                if unknown:
                    raise SpaceError(f"{field_} has unknown field(s) {', '.join(unknown)}")
                blocks.append(Block(inputs=tuple(inputs), ops=tuple(ops), combine=combine))
            concat = c.get("concat")
            if concat is not None and (
                not isinstance(concat, list)
                or not all(isinstance(i, int) and not isinstance(i, bool) for i in concat)
            ):
                raise SpaceError(f"{where}: {kind}.concat must be a list of integers")
            cells[kind] = Cell(blocks=tuple(blocks), concat=tuple(concat or ()))
        return self.validate(NASNetGenotype(**cells), where=where)

    def to_text(self, genotype: Genotype) -> str:
        """One line, e.g. ``N: 0:sep_conv_3x3+1:identity ... ; concat 2,3 | R: ...``."""
        g = genotype
        parts = []
        for kind, tag in (("normal", "N"), ("reduce", "R")):
            cell = g.cell(kind)
            blocks = " ".join(
                f"{b.inputs[0]}:{b.ops[0]}{'+' if b.combine == 'add' else '&'}"
                f"{b.inputs[1]}:{b.ops[1]}"
                for b in cell.blocks
            )
            parts.append(f"{tag}: {blocks} ; concat {','.join(map(str, cell.concat))}")
        return " | ".join(parts)

    def from_text(self, text: str, where: str = "genotype text") -> NASNetGenotype:
        """Parse the form written by :meth:`to_text`."""
        cells = {}
        try:
            for part in text.split("|"):
                tag, rest = part.split(":", 1)
                kind = {"N": "normal", "R": "reduce"}[tag.strip()]
                body, concat = rest.split("; concat")
                blocks = []
                for token in body.split():
                    combine = "add" if "+" in token else "concat"
                    left, right = token.split("+" if combine == "add" else "&")
                    i1, o1 = left.split(":")
                    i2, o2 = right.split(":")
                    blocks.append(Block(inputs=(int(i1), int(i2)), ops=(o1, o2), combine=combine))
                cells[kind] = Cell(
                    blocks=tuple(blocks),
                    concat=tuple(int(c) for c in concat.strip().split(",") if c),
                )
            genotype = NASNetGenotype(normal=cells["normal"], reduce=cells["reduce"])
        except (ValueError, KeyError) as exc:
            raise SpaceError(f"{where}: cannot parse {text!r} ({exc})") from None
        return self.validate(genotype, where=where)

    def describe_genotype(self, genotype: Genotype) -> str:
        """Multi-line, paper-like description of a genotype."""
        g = self.validate(genotype)
        names = {0: "h_i", 1: "h_{i-1}"}
        lines = []
        for kind in CELL_TYPES:
            cell = g.cell(kind)
            lines.append(f"{kind} cell:")
            for b, blk in enumerate(cell.blocks):
                a = names.get(blk.inputs[0], f"block{blk.inputs[0] - 2}")
                c = names.get(blk.inputs[1], f"block{blk.inputs[1] - 2}")
                lines.append(
                    f"  block{b} = {blk.combine}({blk.ops[0]}({a}), {blk.ops[1]}({c}))"
                )
            lines.append(
                "  output = concat("
                + ", ".join(names.get(s, f"block{s - 2}") for s in cell.concat)
                + ")"
            )
        return "\n".join(lines)

    def describe(self) -> str:
        """One line about the space."""
        return (
            f"nasnet: B={self.blocks}, {len(self.ops)} ops, combine={'/'.join(self.combine)}, "
            f"{len(self._decisions)} decisions, {self.size():.3g} encodings"
        )

    # -- networks ---------------------------------------------------------------------------
    def build_model(self, genotype: Genotype, **kwargs: Any):
        """The macro network for ``genotype``; keyword arguments go to ``build_network``."""
        from nascli.models import build_network  # models import spaces, not the reverse

        return build_network(self.validate(genotype), **kwargs)


class DARTSSpace(NASNetSpace):
    """The NASNet cell structure with the DARTS op set and B=4 (a space variant)."""

    name = "darts"

    def __init__(
        self, ops: Sequence[str] = DARTS_OPS, blocks: int = 4, combine: Sequence[str] = ("add",)
    ) -> None:
        super().__init__(ops=ops, blocks=blocks, combine=combine)
