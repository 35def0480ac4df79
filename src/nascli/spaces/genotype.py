"""NASNet-style genotypes as plain data: blocks, cells, a genotype, and their JSON and text forms.

A genotype has a normal and a reduction cell. Hidden states of a cell are numbered: 0 is the
cell input h_i (the previous cell's output), 1 is h_{i-1} (the one before), and block ``b``
writes state ``b + 2``. Each block reads two states, applies one op to each and combines the
results (``add`` or ``concat``). The cell output concatenates the states in ``concat``: by
default every block output that no other block reads (published cells list theirs explicitly).

This module imports only the standard library and :mod:`nascli.spaces.base`, so genotypes can be
read, checked, hashed and printed without torch. Genotype files and checkpoint genotypes are
untrusted input: the caps below bound what is allocated before a claimed size has been checked,
and they sit far above any real cell.
"""

from __future__ import annotations

import hashlib
import numbers
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any

from nascli.spaces.base import SpaceError

#: Blocks per cell accepted from any source (the papers use 4 or 5).
MAX_BLOCKS = 64
#: Nesting of lists and objects in a genotype document (a genotype file needs 5 levels).
MAX_JSON_DEPTH = 32
#: Size of a genotype file, checked before it is read (a 64-block genotype takes ~20 KB).
MAX_GENOTYPE_BYTES = 1 << 20
#: Characters of exact structural signatures per cell; cells above use fixed-size digests.
#: Exact strings keep every hash computed before digests existed; at this size they still cover
#: any cell of up to 13 blocks with the built-in op names, whatever its wiring.
SIGNATURE_BUDGET = 1 << 20

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
#: Fields of a block and of a cell in the JSON form.
BLOCK_FIELDS: tuple[str, ...] = ("inputs", "ops", "combine")
CELL_FIELDS: tuple[str, ...] = ("blocks", "concat")


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
class CellGenotype:
    """A cell of a genotype: its blocks in order and the states concatenated into its output.

    An empty ``concat`` means the NASNet rule (:func:`default_concat`). Not to be confused with
    ``nascli.models.Cell``, the module built from it.
    """

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

    normal: CellGenotype
    reduce: CellGenotype

    def cell(self, kind: str) -> CellGenotype:
        """The cell of type ``normal`` or ``reduce``."""
        return self.normal if kind == "normal" else self.reduce


# -- canonical form ----------------------------------------------------------------------------
def _signature_lengths(cell: CellGenotype) -> list[int]:
    """Length of every exact signature of :func:`_cell_signatures`, without building them."""
    lengths = [2, 2]
    for b in cell.blocks:
        operands = sum(len(op) + 2 + lengths[i] for i, op in zip(b.inputs, b.ops, strict=True))
        lengths.append(len(b.combine) + 2 + operands + len(b.ops) - 1)
    return lengths


def _cell_signatures(cell: CellGenotype) -> list[str]:
    """A structural signature per hidden state; equal signatures mean equal computations.

    Operands of a block are sorted, since both combine ops are symmetric (for ``concat`` up to
    a permutation of channels, which the following 1x1 convolutions absorb). Exact signatures
    spell out the whole computation and can double in length per block (a chain of blocks that
    each read the previous one twice), so above :data:`SIGNATURE_BUDGET` characters a block's
    signature is the sha256 of its exact form over its inputs' digests: fixed size, same
    equalities, another (still deterministic) order.
    """
    exact = sum(_signature_lengths(cell)) <= SIGNATURE_BUDGET
    sigs = ["h0", "h1"]
    for b in cell.blocks:
        operands = sorted(f"{op}({sigs[i]})" for i, op in zip(b.inputs, b.ops, strict=True))
        sig = f"{b.combine}[{','.join(operands)}]"
        sigs.append(sig if exact else "#" + hashlib.sha256(sig.encode()).hexdigest())
    return sigs


def canonical_cell(cell: CellGenotype) -> CellGenotype:
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
    return CellGenotype(blocks=tuple(blocks), concat=concat)


# -- untrusted documents -----------------------------------------------------------------------
def check_json_depth(data: Any, where: str = "genotype", limit: int = MAX_JSON_DEPTH) -> None:
    """Raise :class:`SpaceError` if lists and objects in ``data`` nest deeper than ``limit``.

    Iterative, so a hostile document cannot exhaust the stack, and it ends on cycles too.
    """
    stack: list[tuple[Any, int]] = [(data, 1)]
    while stack:
        obj, depth = stack.pop()
        if isinstance(obj, dict):
            children: Any = obj.values()
        elif isinstance(obj, list | tuple):
            children = obj
        else:
            continue
        if depth > limit:
            raise SpaceError(f"{where}: nesting exceeds the limit of {limit} levels")
        stack.extend((c, depth + 1) for c in children)


def short_repr(value: Any, limit: int = 60) -> str:
    """``repr`` cut to ``limit`` characters, for error messages that quote untrusted values."""
    try:
        text = repr(value)
    except (ValueError, RecursionError):  # an int past sys.get_int_max_str_digits, deep nesting
        return f"<{type(value).__name__} too large to print>"
    return text if len(text) <= limit else text[: limit - 3] + "..."


def is_integer(value: Any) -> bool:
    """An integer that is not a ``bool`` (``True == 1`` must not pass as a count); floats such
    as ``5.0`` or ``1e309`` and strings such as ``"5"`` are not integers."""
    return isinstance(value, numbers.Integral) and not isinstance(value, bool)


# -- JSON form ---------------------------------------------------------------------------------
def genotype_to_json(genotype: NASNetGenotype) -> dict[str, Any]:
    """``{"normal": {"blocks": [...], "concat": [...]}, "reduce": {...}}``."""
    return {
        kind: {
            "blocks": [
                {"inputs": list(b.inputs), "ops": list(b.ops), "combine": b.combine}
                for b in genotype.cell(kind).blocks
            ],
            "concat": list(genotype.cell(kind).concat),
        }
        for kind in CELL_TYPES
    }


def _block_from_json(raw: Any, field_: str) -> Block:
    if not isinstance(raw, dict):
        raise SpaceError(f"{field_} must be an object with inputs, ops, combine")
    unknown = sorted(map(short_repr, set(raw) - set(BLOCK_FIELDS)))
    if unknown:
        raise SpaceError(
            f"{field_} has unknown field(s) {', '.join(unknown)}; "
            f"valid: {', '.join(BLOCK_FIELDS)}"
        )
    inputs, ops = raw.get("inputs"), raw.get("ops")
    if not (isinstance(inputs, list) and len(inputs) == 2 and all(map(is_integer, inputs))):
        raise SpaceError(f"{field_}.inputs must be two integers, got {short_repr(inputs)}")
    if not (isinstance(ops, list) and len(ops) == 2 and all(isinstance(o, str) for o in ops)):
        raise SpaceError(f"{field_}.ops must be two op names, got {short_repr(ops)}")
    combine = raw.get("combine", "add")
    if not isinstance(combine, str):
        raise SpaceError(f"{field_}.combine must be a string, got {short_repr(combine)}")
    return Block(inputs=(inputs[0], inputs[1]), ops=(ops[0], ops[1]), combine=combine)


def _cell_from_json(c: Any, where: str, kind: str) -> CellGenotype:
    if not isinstance(c, dict):
        raise SpaceError(f"{where}: {kind} must be an object with blocks and concat")
    unknown = sorted(map(short_repr, set(c) - set(CELL_FIELDS)))
    if unknown:
        raise SpaceError(
            f"{where}: {kind} has unknown field(s) {', '.join(unknown)}; "
            f"valid: {', '.join(CELL_FIELDS)}"
        )
    raw_blocks = c.get("blocks")
    if not isinstance(raw_blocks, list):
        raise SpaceError(f"{where}: {kind}.blocks must be a list of blocks")
    if len(raw_blocks) > MAX_BLOCKS:
        raise SpaceError(
            f"{where}: {kind}.blocks has {len(raw_blocks)} blocks, exceeding the limit of "
            f"{MAX_BLOCKS} blocks per cell"
        )
    blocks = tuple(
        _block_from_json(raw, f"{where}: {kind}.blocks[{b}]") for b, raw in enumerate(raw_blocks)
    )
    concat = c.get("concat")
    if concat is None:  # absent: the NASNet rule
        return CellGenotype(blocks=blocks)
    if not isinstance(concat, list) or not all(map(is_integer, concat)):
        raise SpaceError(f"{where}: {kind}.concat must be a list of integers")
    if not concat:
        raise SpaceError(f"{where}: {kind}.concat is empty")
    return CellGenotype(blocks=blocks, concat=tuple(concat))


def genotype_from_json(data: Any, where: str = "genotype") -> NASNetGenotype:
    """Parse the dict written by :func:`genotype_to_json` (types and shape only: a space's
    ``validate`` checks ops, input ranges and block counts). Errors are one line naming
    ``where`` and the field."""
    if not isinstance(data, dict):
        raise SpaceError(f"{where}: expected a JSON object, got {type(data).__name__}")
    check_json_depth(data, where)
    unknown = sorted(map(short_repr, set(data) - set(CELL_TYPES)))
    if unknown:
        raise SpaceError(
            f"{where}: unknown field(s) {', '.join(unknown)}; "
            f"valid: {', '.join(CELL_TYPES)}"
        )
    cells = {}
    for kind in CELL_TYPES:
        if kind not in data:
            raise SpaceError(f"{where}: missing field {kind!r}")
        cells[kind] = _cell_from_json(data[kind], where, kind)
    return NASNetGenotype(**cells)


# -- text forms --------------------------------------------------------------------------------
def genotype_to_text(genotype: NASNetGenotype) -> str:
    """One line, e.g. ``N: 0:sep_conv_3x3+1:identity ... ; concat 2,3 | R: ...``
    (``+`` joins the operands of an ``add`` block, ``&`` those of a ``concat`` block)."""
    parts = []
    for kind, tag in (("normal", "N"), ("reduce", "R")):
        cell = genotype.cell(kind)
        blocks = " ".join(
            f"{b.inputs[0]}:{b.ops[0]}{'+' if b.combine == 'add' else '&'}"
            f"{b.inputs[1]}:{b.ops[1]}"
            for b in cell.blocks
        )
        parts.append(f"{tag}: {blocks} ; concat {','.join(map(str, cell.concat))}")
    return " | ".join(parts)


def genotype_from_text(text: str, where: str = "genotype text") -> NASNetGenotype:
    """Parse the form written by :func:`genotype_to_text` (shape only, like
    :func:`genotype_from_json`)."""
    cells = {}
    try:
        parts = text.split("|")
        if len(parts) != len(CELL_TYPES):
            raise ValueError(f"expected {len(CELL_TYPES)} cells separated by '|'")
        for part in parts:
            tag, rest = part.split(":", 1)
            kind = {"N": "normal", "R": "reduce"}[tag.strip()]
            body, concat = rest.split("; concat")
            tokens = body.split()
            if len(tokens) > MAX_BLOCKS:
                raise ValueError(f"{len(tokens)} blocks exceed the limit of {MAX_BLOCKS}")
            blocks = []
            for token in tokens:
                combine = "add" if "+" in token else "concat"
                left, right = token.split("+" if combine == "add" else "&")
                i1, o1 = left.split(":")
                i2, o2 = right.split(":")
                blocks.append(Block(inputs=(int(i1), int(i2)), ops=(o1, o2), combine=combine))
            states = tuple(int(c) for c in concat.strip().split(",") if c)
            if not states:
                raise ValueError(f"{kind} concat is empty")
            cells[kind] = CellGenotype(blocks=tuple(blocks), concat=states)
        return NASNetGenotype(normal=cells["normal"], reduce=cells["reduce"])
    except (ValueError, KeyError) as exc:
        raise SpaceError(f"{where}: cannot parse {short_repr(text)} ({exc})") from None


def describe_genotype(genotype: NASNetGenotype) -> str:
    """Multi-line, paper-like description of a genotype."""
    names = {0: "h_i", 1: "h_{i-1}"}
    lines = []
    for kind in CELL_TYPES:
        cell = genotype.cell(kind)
        lines.append(f"{kind} cell:")
        for b, blk in enumerate(cell.blocks):
            a = names.get(blk.inputs[0], f"block{blk.inputs[0] - 2}")
            c = names.get(blk.inputs[1], f"block{blk.inputs[1] - 2}")
            lines.append(f"  block{b} = {blk.combine}({blk.ops[0]}({a}), {blk.ops[1]}({c}))")
        lines.append(
            "  output = concat(" + ", ".join(names.get(s, f"block{s - 2}") for s in cell.concat)
            + ")"
        )
    return "\n".join(lines)
