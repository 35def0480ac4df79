"""Networks for genotypes: the op table, cells, the NASNet macro network, the builders by space
name and cost counters. ``nascli.spaces`` is not imported here (genotypes are only read)."""

from nascli.models.builders import BUILDERS, build_model, register_builder
from nascli.models.cells import Cell, drop_path
from nascli.models.cost import count_macs, count_parameters
from nascli.models.network import (
    STEMS,
    AuxiliaryHead,
    Network,
    build_network,
    channels_from_penultimate,
)
from nascli.models.ops import OPS, build_op, register_op

__all__ = [
    "BUILDERS",
    "OPS",
    "STEMS",
    "AuxiliaryHead",
    "Cell",
    "Network",
    "build_model",
    "build_network",
    "build_op",
    "channels_from_penultimate",
    "count_macs",
    "count_parameters",
    "drop_path",
    "register_builder",
    "register_op",
]
