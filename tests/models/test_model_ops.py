"""The op table: every registered op keeps the shape contract; spaces take their ops from it."""

from __future__ import annotations

import pytest
import torch

from nascli.models import OPS, build_op, register_op
from nascli.models.ops import FactorizedReduce, PreAct
from nascli.registry import UnknownNameError
from nascli.spaces import DARTS_OPS, NASNET_OPS, known_ops

BUILT_IN = list(OPS)


def test_table_covers_the_spaces_ops_and_is_what_spaces_check_against():
    assert set(NASNET_OPS) | set(DARTS_OPS) <= set(OPS)
    assert known_ops() == OPS.names()


@pytest.mark.parametrize("name", BUILT_IN)
@pytest.mark.parametrize("size", [7, 8])
@pytest.mark.parametrize(
    ("c_in", "c_out", "stride"), [(6, 6, 1), (12, 6, 1), (6, 6, 2), (12, 6, 2)]
)
def test_op_shape_contract(name, size, c_in, c_out, stride):
    op = build_op(name, c_in, c_out, stride)
    x = torch.randn(2, c_in, size, size, requires_grad=True)
    y = op(x)
    out = -(-size // stride)
    assert y.shape == (2, c_out, out, out)
    y.square().mean().backward()
    assert torch.isfinite(x.grad).all()


@pytest.mark.parametrize("name", [n for n in BUILT_IN if isinstance(build_op(n, 4, 4, 2), PreAct)])
def test_body_skips_only_the_leading_relu(name):
    torch.manual_seed(0)
    op = build_op(name, 4, 4, 2).eval()
    x = torch.randn(2, 4, 9, 9)
    torch.testing.assert_close(op.body(torch.relu(x)), op(x))


def test_identity_variants():
    assert isinstance(build_op("identity", 5, 5, 1), torch.nn.Identity)
    x = torch.randn(1, 5, 6, 6)
    assert build_op("identity", 5, 8, 1)(x).shape == (1, 8, 6, 6)
    assert build_op("identity", 5, 5, 2)(x).shape == (1, 5, 3, 3)


@pytest.mark.parametrize(("c_out", "size"), [(1, 5), (3, 5), (4, 6)])
def test_factorized_reduce_odd_channels_and_sizes(c_out, size):
    fr = FactorizedReduce(3, c_out)
    assert fr(torch.randn(2, 3, size, size)).shape == (2, c_out, -(-size // 2), -(-size // 2))


def test_unknown_op_lists_valid_names():
    with pytest.raises(KeyError, match="sep_conv_3x3") as info:
        build_op("conv_9x9", 4, 4)
    assert isinstance(info.value, UnknownNameError) and "conv_9x9" in str(info.value)


def test_register_op_adds_to_table():
    register_op("test_zero", lambda ci, co, s: torch.nn.Conv2d(ci, co, 1, s))
    try:
        assert build_op("test_zero", 2, 3, 2)(torch.randn(1, 2, 4, 4)).shape == (1, 3, 2, 2)
    finally:
        OPS.unregister("test_zero")
    assert "test_zero" not in OPS
