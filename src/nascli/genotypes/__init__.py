"""Published cells by name, and versioned genotype files.

NASNet-A follows the TensorFlow reference (``nasnet_utils.py`` of tensorflow/models): its
normal cell also concatenates h_{i-1}, and its reduction cell concatenates blocks 1 to 4.
AmoebaNet-A follows the TensorFlow TPU reference (``amoeba_net``); DARTS-V2 the DARTS code.
Hidden states: 0 = h_i (previous cell's output), 1 = h_{i-1}, block b writes state b + 2.
"""

from __future__ import annotations

from nascli.genotypes.io import (
    FORMAT_VERSION,
    GenotypeFileError,
    genotype_from_dict,
    genotype_to_dict,
    load_genotype,
    save_genotype,
)
from nascli.spaces import Block, CellGenotype, NASNetGenotype, NASNetSpace, SpaceError
from nascli.spaces.nasnet import DARTSSpace


def _cell(ops: list[str], inputs: list[int], concat: list[int]) -> CellGenotype:
    """A cell from the TF reference's flat lists (two entries per block)."""
    blocks = tuple(
        Block(inputs=(inputs[2 * b], inputs[2 * b + 1]), ops=(ops[2 * b], ops[2 * b + 1]))
        for b in range(len(ops) // 2)
    )
    return CellGenotype(blocks=blocks, concat=tuple(concat))


NASNET_A = NASNetGenotype(
    normal=_cell(
        ops=["sep_conv_5x5", "sep_conv_3x3", "sep_conv_5x5", "sep_conv_3x3", "avg_pool_3x3",
             "identity", "avg_pool_3x3", "avg_pool_3x3", "sep_conv_3x3", "identity"],
        inputs=[0, 1, 1, 1, 0, 1, 1, 1, 0, 0],
        concat=[1, 2, 3, 4, 5, 6],
    ),
    reduce=_cell(
        ops=["sep_conv_5x5", "sep_conv_7x7", "max_pool_3x3", "sep_conv_7x7", "avg_pool_3x3",
             "sep_conv_5x5", "identity", "avg_pool_3x3", "sep_conv_3x3", "max_pool_3x3"],
        inputs=[0, 1, 0, 1, 0, 1, 3, 2, 2, 0],
        concat=[3, 4, 5, 6],
    ),
)

AMOEBANET_A = NASNetGenotype(
    normal=_cell(
        ops=["avg_pool_3x3", "max_pool_3x3", "sep_conv_3x3", "identity", "identity",
             "avg_pool_3x3", "sep_conv_3x3", "sep_conv_5x5", "avg_pool_3x3", "sep_conv_3x3"],
        inputs=[0, 0, 1, 1, 0, 1, 0, 2, 5, 0],
        concat=[1, 3, 4, 6],
    ),
    reduce=_cell(
        ops=["sep_conv_3x3", "avg_pool_3x3", "max_pool_3x3", "sep_conv_7x7", "max_pool_3x3",
             "max_pool_3x3", "sep_conv_3x3", "conv_1x7_7x1", "avg_pool_3x3", "sep_conv_7x7"],
        inputs=[1, 0, 0, 2, 1, 0, 4, 0, 1, 0],
        # the reference's used_hiddenstates [1, 1, 0, 0, 0, 0, 0]: every block output, including
        # blocks 0 and 2 that later blocks also read (this gives the paper's 3.2M at N=6, F=36)
        concat=[2, 3, 4, 5, 6],
    ),
)

# DARTS numbers states 0 = s0 = h_{i-1} and 1 = s1 = h_i: swap them into our convention.
DARTS_V2 = NASNetGenotype(
    normal=_cell(
        ops=["sep_conv_3x3", "sep_conv_3x3", "sep_conv_3x3", "sep_conv_3x3", "sep_conv_3x3",
             "identity", "identity", "dil_conv_3x3"],
        inputs=[1, 0, 1, 0, 0, 1, 1, 2],
        concat=[2, 3, 4, 5],
    ),
    reduce=_cell(
        ops=["max_pool_3x3", "max_pool_3x3", "identity", "max_pool_3x3", "max_pool_3x3",
             "identity", "identity", "max_pool_3x3"],
        inputs=[1, 0, 2, 0, 1, 2, 2, 0],
        concat=[2, 3, 4, 5],
    ),
)

#: name -> (genotype, the space it belongs to)
PUBLISHED: dict[str, tuple[NASNetGenotype, str]] = {
    "nasnet-a": (NASNET_A, "nasnet"),
    "amoebanet-a": (AMOEBANET_A, "nasnet"),
    "darts-v2": (DARTS_V2, "darts"),
}


def get_genotype(name: str) -> NASNetGenotype:
    """A published genotype by name (``nasnet-a``, ``amoebanet-a``, ``darts-v2``)."""
    key = name.lower().replace("_", "-")
    if key not in PUBLISHED:
        raise SpaceError(f"unknown published cell {name!r}; valid: {', '.join(PUBLISHED)}")
    return PUBLISHED[key][0]


def published_space(name: str) -> NASNetSpace:
    """The space a published genotype belongs to."""
    space = PUBLISHED[name.lower().replace("_", "-")][1]
    return DARTSSpace() if space == "darts" else NASNetSpace()


__all__ = [
    "AMOEBANET_A",
    "DARTS_V2",
    "FORMAT_VERSION",
    "NASNET_A",
    "PUBLISHED",
    "GenotypeFileError",
    "genotype_from_dict",
    "genotype_to_dict",
    "get_genotype",
    "load_genotype",
    "published_space",
    "save_genotype",
]
