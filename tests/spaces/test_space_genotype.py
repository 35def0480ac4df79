"""Genotype data (``nascli.spaces.genotype``): pinned hashes, bounded signatures, forms, no
torch."""

from __future__ import annotations

import subprocess
import sys
import time
import tracemalloc

import numpy as np
import pytest

from nascli.genotypes import AMOEBANET_A, DARTS_V2, NASNET_A, published_space
from nascli.spaces import (
    Block,
    CellGenotype,
    DARTSSpace,
    NASNetGenotype,
    NASNetSpace,
    SpaceError,
    canonical_cell,
    genotype_from_json,
    genotype_from_text,
    genotype_to_json,
    genotype_to_text,
)
from nascli.spaces.genotype import SIGNATURE_BUDGET, _cell_signatures, _signature_lengths

# Computed before signatures were bounded: run directories and deduplication rely on them.
PUBLISHED_HASHES = {
    "nasnet-a": ("ea0fa16c96ec1003", NASNET_A),
    "amoebanet-a": ("74054cf1b8342d78", AMOEBANET_A),
    "darts-v2": ("cdba6b4708130945", DARTS_V2),
}
SAMPLED_HASHES = [
    (NASNetSpace, {}, 0, "2b0259561f683a55"),
    (NASNetSpace, {}, 1, "482739a42272eb2c"),
    (NASNetSpace, {}, 12345, "b3c480d9a3b9fe12"),
    (NASNetSpace, {"blocks": 3, "combine": ("add", "concat")}, 7, "045703cdc044b03e"),
    (NASNetSpace, {"blocks": 8, "combine": ("add", "concat")}, 99, "f52b9c07ed083474"),
    (DARTSSpace, {}, 3, "9fe34377c4556c7f"),
    (DARTSSpace, {}, 2024, "d39da9ef229e5ea5"),
]


@pytest.mark.parametrize("name", sorted(PUBLISHED_HASHES))
def test_published_hashes_are_unchanged(name):
    expected, genotype = PUBLISHED_HASHES[name]
    assert published_space(name).hash(genotype) == expected


@pytest.mark.parametrize(("cls", "options", "seed", "expected"), SAMPLED_HASHES)
def test_sampled_hashes_are_unchanged(cls, options, seed, expected):
    space = cls(**options)
    assert space.hash(space.sample(seed)) == expected


def test_mutated_hash_is_unchanged():
    space, rng = NASNetSpace(), np.random.default_rng(5)
    g = space.sample(rng)
    for _ in range(20):
        g = space.mutate(g, rng)
    assert space.hash(g) == "edce4621e14bf6fc"


def test_hash_ignores_search_time_network_settings():
    big = NASNetSpace(cells_per_stage=3, channels=32, stem="imagenet")
    assert big.hash(NASNET_A) == NASNetSpace().hash(NASNET_A) == "ea0fa16c96ec1003"


def test_importing_spaces_and_genotypes_does_not_import_torch():
    code = "import nascli.spaces, nascli.genotypes, sys; assert 'torch' not in sys.modules"
    subprocess.run([sys.executable, "-c", code], check=True, timeout=120)


def _chain(n: int) -> CellGenotype:
    """Each block reads the previous block's output twice: exact signatures double per block."""
    return CellGenotype(
        blocks=tuple(Block((b + 1, b + 1), ("identity", "conv_3x3")) for b in range(n)),
    )


@pytest.mark.parametrize("n", [1, 5, 12])
def test_signature_lengths_match_the_exact_signatures(n):
    rng = np.random.default_rng(n)
    cells = [_chain(n), NASNetSpace(blocks=n, combine=("add", "concat")).sample(rng).normal]
    for cell in cells:
        assert [len(s) for s in _cell_signatures(cell)] == _signature_lengths(cell)


def test_small_cells_keep_exact_signatures():
    sigs = _cell_signatures(NASNET_A.normal)
    assert sigs[2] == "add[sep_conv_3x3(h1),sep_conv_5x5(h0)]"


def test_a_64_block_chain_hashes_quickly_in_little_memory():
    cell = _chain(64)
    assert sum(_signature_lengths(cell)) > 2**64  # what exact signatures would need
    space = NASNetSpace(ops=("identity", "conv_3x3"), blocks=64)
    genotype = NASNetGenotype(normal=cell, reduce=cell)
    tracemalloc.start()
    start = time.perf_counter()
    try:
        h = space.hash(genotype)
        peak = tracemalloc.get_traced_memory()[1]
    finally:
        tracemalloc.stop()
    assert time.perf_counter() - start < 2.0
    assert peak < 4 * 2**20
    assert max(len(s) for s in _cell_signatures(cell)) == 65  # "#" + a sha256 hex digest
    # digests keep the canonical form: swapped operands are the same architecture
    swapped = CellGenotype(blocks=tuple(Block(b.inputs[::-1], b.ops[::-1]) for b in cell.blocks))
    assert space.hash(NASNetGenotype(normal=swapped, reduce=cell)) == h
    assert canonical_cell(swapped) == canonical_cell(cell)


def _two_then_chain(first: Block, second: Block, chain_from: int) -> CellGenotype:
    """Two independent blocks, then a 14-block chain starting at state ``chain_from``."""
    chain = [Block((chain_from,) * 2, ("identity", "conv_3x3"))]
    chain += [Block((k + 4,) * 2, ("identity", "conv_3x3")) for k in range(13)]
    return CellGenotype(blocks=(first, second, *chain))


def test_cells_over_the_budget_still_collapse_equivalent_encodings():
    conv = Block((0, 0), ("conv_3x3", "conv_3x3"))
    pool = Block((1, 1), ("identity", "max_pool_3x3"))
    a = _two_then_chain(conv, pool, chain_from=3)  # the chain reads the pool block
    b = _two_then_chain(pool, conv, chain_from=2)  # the same cell, blocks listed the other way
    other = _two_then_chain(conv, pool, chain_from=2)  # the chain reads the conv block
    assert sum(_signature_lengths(a)) > SIGNATURE_BUDGET
    space = NASNetSpace(ops=("identity", "conv_3x3", "max_pool_3x3"), blocks=16)
    assert space.encode(NASNetGenotype(a, a)) != space.encode(NASNetGenotype(b, a))
    assert space.hash(NASNetGenotype(a, a)) == space.hash(NASNetGenotype(b, a))
    assert space.hash(NASNetGenotype(other, a)) != space.hash(NASNetGenotype(a, a))
    assert canonical_cell(canonical_cell(a)) == canonical_cell(a) == canonical_cell(b)


def test_json_and_text_forms_round_trip():
    assert genotype_from_json(genotype_to_json(NASNET_A)) == NASNET_A
    assert genotype_from_text(genotype_to_text(DARTS_V2)) == DARTS_V2


@pytest.mark.parametrize(
    ("data", "message"),
    [
        ({"normal": {"blocks": []}}, "missing field 'reduce'"),
        ({"normal": {"blocks": [], "concat": []}, "reduce": {"blocks": []}},
         "normal.concat is empty"),
        ({"normal": {"blocks": [], "extra": 1}, "reduce": {"blocks": []}},
         "normal has unknown field.*'extra'.*valid: blocks, concat"),
        ({"normal": {"blocks": [{"inputs": [0, 1], "ops": ["identity"] * 2, "x": 0}]},
          "reduce": {"blocks": []}}, r"normal.blocks\[0\] has unknown field.*'x'"),
        ({"normal": {"blocks": [{"inputs": [0, True], "ops": ["identity"] * 2}]},
          "reduce": {"blocks": []}}, r"inputs must be two integers"),
        ({"normal": {"blocks": [{}] * 65}, "reduce": {"blocks": []}},
         "65 blocks, exceeding the limit of 64 blocks per cell"),
        ({"normal": {"blocks": []}, "reduce": {"blocks": []}, "cells": 2}, "unknown field"),
    ],
)
def test_json_form_errors_are_one_line(data, message):
    with pytest.raises(SpaceError, match=message) as info:
        genotype_from_json(data, where="g")
    assert str(info.value).startswith("g: ") and "\n" not in str(info.value)


def test_text_form_refuses_an_empty_concat_and_quotes_briefly():
    text = genotype_to_text(NASNET_A).replace("concat 1,2,3,4,5,6", "concat ")
    with pytest.raises(SpaceError, match="concat is empty"):
        genotype_from_text(text)
    with pytest.raises(SpaceError, match=r"cannot parse 'x{20}") as info:
        genotype_from_text("x" * 10_000 + "\n")
    assert len(str(info.value)) < 200 and "\n" not in str(info.value)
