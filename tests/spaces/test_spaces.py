"""Search-space abstraction, NASNet space, canonical hash, published cells, genotype files."""

from __future__ import annotations

import json
from typing import ClassVar

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from nascli.genotypes import (
    AMOEBANET_A,
    DARTS_V2,
    NASNET_A,
    GenotypeFileError,
    genotype_to_dict,
    get_genotype,
    load_genotype,
    published_space,
    save_genotype,
)
from nascli.spaces import (
    NASNET_OPS,
    Block,
    CellGenotype,
    Decision,
    NASNetGenotype,
    NASNetSpace,
    SearchSpace,
    SpaceError,
    get_space,
)

SPACE = NASNetSpace()
SPACE_CONCAT = NASNetSpace(blocks=3, combine=("add", "concat"))
seeds = st.integers(min_value=0, max_value=2**32 - 1)


class TableSpace(SearchSpace):
    """A user space that only lists its decisions."""

    name = "table"
    decisions: ClassVar[list[Decision]] = [
        Decision("lr", (0.1, 0.01, 0.001)),
        Decision("depth", (1, 2, 3, 4)),
    ]


def test_nasnet_space_has_the_papers_decisions():
    assert len(NASNET_OPS) == 13
    assert len(SPACE.decisions) == 2 * 5 * 5
    d = {x.name: x for x in SPACE.decisions}
    assert d["normal.b0.input1"].choices == (0, 1)
    assert d["reduce.b4.input2"].choices == (0, 1, 2, 3, 4, 5)
    assert d["normal.b3.op1"].choices == NASNET_OPS
    assert d["normal.b0.combine"].choices == ("add",)


def test_user_space_gets_sampling_mutation_encoding_and_json():
    space = TableSpace()
    rng = np.random.default_rng(0)
    seen = {space.sample(rng) for _ in range(200)}
    assert len(seen) == 12 and all(isinstance(g, tuple) for g in seen)
    g = (0.01, 3)
    assert space.encode(g) == [1, 2]
    assert space.decode([1, 2]) == g
    assert space.from_json(json.loads(json.dumps(space.to_json(g)))) == g
    for _ in range(50):
        m = space.mutate(g, rng)
        assert sum(a != b for a, b in zip(m, g, strict=True)) == 1
    assert space.hash(g) != space.hash((0.1, 3))
    with pytest.raises(SpaceError, match="depth: 7 is not a valid choice"):
        space.encode((0.01, 7))
    with pytest.raises(SpaceError, match="missing decision"):
        space.from_json({"lr": 0.1})


@settings(max_examples=60, deadline=None)
@given(seeds)
def test_sample_is_valid_and_encoding_round_trips(seed):
    for space in (SPACE, SPACE_CONCAT):
        g = space.sample(seed)
        space.validate(g)
        assert space.decode(space.encode(g)) == g
        assert space.from_json(json.loads(json.dumps(space.to_json(g)))) == g
        assert space.from_text(space.to_text(g)) == g
        assert space.sample(seed) == g  # seeded


@settings(max_examples=100, deadline=None)
@given(seeds)
def test_every_mutation_is_valid_and_different(seed):
    rng = np.random.default_rng(seed)
    for space in (SPACE, SPACE_CONCAT):
        g = space.sample(rng)
        m = space.mutate(g, rng)
        space.validate(m)
        assert space.hash(m) != space.hash(g)
        changed = [
            (kind, b)
            for kind in ("normal", "reduce")
            for b, (x, y) in enumerate(
                zip(g.cell(kind).blocks, m.cell(kind).blocks, strict=True)
            )
            if x != y
        ]
        assert len(changed) == 1  # one block of one cell


@settings(max_examples=60, deadline=None)
@given(seeds)
def test_hash_is_invariant_to_operand_order_and_block_order(seed):
    rng = np.random.default_rng(seed)
    g = SPACE.sample(rng)
    # swap the operands of every block (add is commutative)
    swapped = NASNetGenotype(
        *(
            CellGenotype(
                blocks=tuple(
                    Block(inputs=b.inputs[::-1], ops=b.ops[::-1], combine=b.combine)
                    for b in g.cell(k).blocks
                ),
                concat=g.cell(k).concat,
            )
            for k in ("normal", "reduce")
        )
    )
    assert swapped != g or all(
        b.inputs[0] == b.inputs[1] and b.ops[0] == b.ops[1] for b in g.normal.blocks
    )
    assert SPACE.hash(swapped) == SPACE.hash(g)
    assert SPACE.canonical(swapped) == SPACE.canonical(g)
    assert SPACE.canonical(SPACE.canonical(g)) == SPACE.canonical(g)


def test_two_encodings_collapse_to_one_hash():
    # 1) operands of `add` swapped
    a = CellGenotype(blocks=(Block((0, 1), ("sep_conv_3x3", "identity")),
                     Block((2, 0), ("max_pool_3x3", "conv_1x1"))))
    b = CellGenotype(blocks=(Block((1, 0), ("identity", "sep_conv_3x3")),
                     Block((0, 2), ("conv_1x1", "max_pool_3x3"))))
    # 2) two independent blocks listed in the other order (states renumbered)
    c = CellGenotype(blocks=(Block((0, 0), ("conv_3x3", "conv_3x3")),
                     Block((1, 1), ("avg_pool_3x3", "identity"))))
    d = CellGenotype(blocks=(Block((1, 1), ("identity", "avg_pool_3x3")),
                     Block((0, 0), ("conv_3x3", "conv_3x3"))))
    space = NASNetSpace(blocks=2)
    g1, g2 = NASNetGenotype(a, c), NASNetGenotype(b, d)
    assert space.encode(g1) != space.encode(g2)
    assert space.hash(g1) == space.hash(g2)
    # a real change is a different architecture
    e = CellGenotype(blocks=(Block((0, 0), ("conv_3x3", "conv_1x1")), c.blocks[1]))
    assert space.hash(NASNetGenotype(a, e)) != space.hash(g1)


def test_default_concat_is_the_unused_block_outputs():
    cell = CellGenotype(blocks=(Block((0, 1), ("identity", "identity")),
                        Block((2, 0), ("identity", "identity")),
                        Block((1, 1), ("identity", "identity"))))
    assert cell.concat == (3, 4)


def test_published_cells_are_the_reference_cells():
    assert get_genotype("NASNet-A") is NASNET_A
    assert NASNET_A.normal.concat == (1, 2, 3, 4, 5, 6)  # keeps h_{i-1}, as the TF code
    assert NASNET_A.reduce.concat == (3, 4, 5, 6)
    assert NASNET_A.normal.blocks[0] == Block((0, 1), ("sep_conv_5x5", "sep_conv_3x3"))
    assert NASNET_A.reduce.blocks[3] == Block((3, 2), ("identity", "avg_pool_3x3"))
    assert DARTS_V2.normal.blocks[3] == Block((1, 2), ("identity", "dil_conv_3x3"))
    for name in ("nasnet-a", "amoebanet-a", "darts-v2"):
        published_space(name).validate(get_genotype(name))
    assert AMOEBANET_A.reduce.blocks[3].ops == ("sep_conv_3x3", "conv_1x7_7x1")
    with pytest.raises(SpaceError, match="valid: nasnet-a"):
        get_genotype("nasnet-z")


def test_genotype_file_round_trip(tmp_path):
    path = save_genotype(tmp_path / "g.json", NASNET_A, SPACE, name="nasnet-a")
    data = json.loads(path.read_text())
    assert data["format"] == 1 and data["space"] == "nasnet" and data["name"] == "nasnet-a"
    g, space = load_genotype(path)
    assert g == NASNET_A and isinstance(space, NASNetSpace)
    g2, space2 = load_genotype(save_genotype(tmp_path / "d.json", DARTS_V2,
                                             published_space("darts-v2")))
    assert g2 == DARTS_V2 and space2.name == "darts" and space2.blocks == 4


@pytest.mark.parametrize(
    ("mutate", "message"),
    [
        (lambda d: d["normal"]["blocks"][2]["ops"].__setitem__(0, "conv_9x9"),
         r"normal.blocks\[2\].ops\[0\] = 'conv_9x9'"),
        (lambda d: d["reduce"]["blocks"][1]["inputs"].__setitem__(1, 7),
         r"reduce.blocks\[1\].inputs\[1\] = 7 is out of range"),
        (lambda d: d["normal"]["blocks"].pop(), r"normal.blocks has 4 blocks"),
        (lambda d: d.__setitem__("format", 99), r"field 'format' is 99"),
        (lambda d: d["reduce"].__setitem__("concat", [9]), r"reduce.concat has state 9"),
        (lambda d: d.__setitem__("space", "nope"), r"unknown search space 'nope'"),
    ],
)
def test_bad_genotype_files_name_the_file_and_field(tmp_path, mutate, message):
    data = genotype_to_dict(NASNET_A, SPACE)
    mutate(data)
    path = tmp_path / "bad.json"
    path.write_text(json.dumps(data))
    with pytest.raises(GenotypeFileError, match=message) as info:
        load_genotype(path)
    assert str(path) in str(info.value) and "\n" not in str(info.value)


def test_missing_and_malformed_files(tmp_path):
    with pytest.raises(GenotypeFileError, match="no such genotype file"):
        load_genotype(tmp_path / "nope.json")
    (tmp_path / "x.json").write_text("{not json")
    with pytest.raises(GenotypeFileError, match="not valid JSON"):
        load_genotype(tmp_path / "x.json")


def test_space_options_are_validated():
    with pytest.raises(SpaceError, match="unknown op"):
        NASNetSpace(ops=("conv_3x3", "warp_drive"))
    with pytest.raises(SpaceError, match="unknown combine"):
        NASNetSpace(combine=("mul",))
    with pytest.raises(SpaceError, match="unknown search space 'foo'; valid: darts, nasnet"):
        get_space("foo")
    assert NASNetSpace(ops=("skip_connect", "conv_3x3")).ops == ("identity", "conv_3x3")


def test_search_time_network_settings_live_with_the_space():
    space = NASNetSpace()
    assert space.network == {"cells_per_stage": 1, "channels": 8, "stem": "cifar"}
    assert space.config() == {"ops": list(NASNET_OPS), "blocks": 5, "combine": ["add"],
                              "cells_per_stage": 1, "channels": 8, "stem": "cifar"}
    darts = get_space("darts", cells_per_stage=2, channels=16, stem="imagenet")
    assert darts.blocks == 4
    assert darts.network == {"cells_per_stage": 2, "channels": 16, "stem": "imagenet"}
    assert type(darts)(**darts.config()).config() == darts.config()


@pytest.mark.parametrize(
    ("options", "message"),
    [
        ({"cells_per_stage": 0}, "cells_per_stage=0 is invalid; expected an integer in 1..64"),
        ({"channels": 1.5}, r"channels=1\.5 is invalid; expected an integer in 1\.\.4096"),
        ({"channels": 10**6}, "channels=1000000 exceeds the limit of 4096 channels"),
        ({"stem": "mnist"}, "stem='mnist' is invalid; valid: cifar, imagenet"),
        ({"blocks": True}, "blocks=True is invalid; expected an integer in 1..64"),
        ({"blocks": "5"}, "blocks='5' is invalid"),
        ({"blocks": 65}, "blocks=65 exceeds the limit of 64 blocks per cell"),
        ({"ops": "identity"}, "ops must be a list of names, got str"),
        ({"ops": ["identity"] * 257}, "ops has 257 entries, exceeding the limit of 256"),
        ({"ops": ["identity", "skip_connect"]}, "ops repeats 'identity'"),
        ({"ops": []}, "ops must be a non-empty list"),
        ({"combine": ["add", 3]}, "combine must be a non-empty list of names"),
    ],
)
def test_space_options_are_bounded_and_typed(options, message):
    with pytest.raises(SpaceError, match=message) as info:
        NASNetSpace(**options)
    assert "\n" not in str(info.value)


def test_the_largest_accepted_space_describes_itself():
    space = NASNetSpace(blocks=64, combine=("add", "concat"))
    assert "640 decisions" in space.describe() and "e+" in space.describe()
    assert NASNetSpace().describe().endswith("50 decisions, 5.11e+33 encodings")
