"""Networks for genotypes: the op table, cells, the NASNet macro network and cost counters."""

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
    "OPS",
    "STEMS",
    "AuxiliaryHead",
    "Cell",
    "Network",
    "build_network",
    "build_op",
    "channels_from_penultimate",
    "count_macs",
    "count_parameters",
    "drop_path",
    "register_op",
]
