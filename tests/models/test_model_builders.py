"""The genotype-to-network seam: builders by space name, search-time settings, user ops."""

from __future__ import annotations

import subprocess
import sys
from typing import ClassVar

import pytest
import torch
from torch import nn

from nascli.genotypes import DARTS_V2, NASNET_A
from nascli.models import (
    BUILDERS,
    OPS,
    STEMS,
    build_model,
    build_network,
    count_parameters,
    register_builder,
    register_op,
)
from nascli.registry import UnknownNameError
from nascli.spaces import DARTSSpace, Decision, NASNetSpace, SearchSpace, SpaceError
from nascli.spaces import nasnet as nasnet_space


def test_models_do_not_import_spaces():
    code = "import nascli.models, sys; assert 'nascli.spaces' not in sys.modules"
    subprocess.run([sys.executable, "-c", code], check=True, timeout=120)


def test_spaces_and_models_name_the_same_stems():
    assert nasnet_space.STEMS == STEMS


def test_built_in_spaces_have_builders():
    assert BUILDERS.get("nasnet") is build_network and BUILDERS.get("darts") is build_network


def _stem_channels(model: nn.Module) -> int:
    return model.stem[0].out_channels


def test_build_model_uses_the_spaces_search_time_settings():
    space = NASNetSpace(cells_per_stage=2, channels=4)
    model = build_model(space, NASNET_A, num_classes=3, in_channels=1)
    assert len(model.cells) == 3 * 2 + 2 and _stem_channels(model) == 3 * 4
    assert model(torch.randn(2, 1, 16, 16)).shape == (2, 3)
    reference = build_network(NASNET_A, 3, 1, cells_per_stage=2, channels=4)
    assert count_parameters(model) == count_parameters(reference)
    imagenet = build_model(NASNetSpace(stem="imagenet"), NASNET_A, num_classes=3, in_channels=3)
    assert len(imagenet.cells) == 3 * 1 + 2 + 2


def test_overrides_replace_the_spaces_settings():
    space = DARTSSpace()
    model = build_model(space, DARTS_V2, num_classes=10, in_channels=3, cells_per_stage=2,
                        channels=6, auxiliary=True, drop_path=0.2)
    assert len(model.cells) == 8 and _stem_channels(model) == 18
    assert model.aux_head is not None and model.drop_path_prob == 0.2
    assert space.network == {"cells_per_stage": 1, "channels": 8, "stem": "cifar"}  # unchanged


def test_build_model_validates_the_genotype():
    with pytest.raises(SpaceError, match=r"normal\.blocks has 5 blocks, the space has 4"):
        build_model(DARTSSpace(), NASNET_A, num_classes=10, in_channels=3)


class LookupSpace(SearchSpace):
    """A user space with its own networks: width and depth of an MLP."""

    name = "test_mlp"
    decisions: ClassVar[list[Decision]] = [Decision("width", (4, 8)), Decision("depth", (1, 2))]
    network: ClassVar[dict[str, int]] = {"hidden_scale": 2}


def _mlp(genotype, *, num_classes, in_channels, hidden_scale):
    width, depth = genotype
    layers: list[nn.Module] = [nn.Flatten(), nn.LazyLinear(width * hidden_scale)]
    layers += [nn.Linear(width * hidden_scale, width * hidden_scale) for _ in range(depth - 1)]
    return nn.Sequential(*layers, nn.Linear(width * hidden_scale, num_classes))


def test_a_user_space_registers_its_builder():
    space = LookupSpace()
    with pytest.raises(UnknownNameError, match=r"no network builder for space 'test_mlp'.*"
                                               r"register_builder"):
        build_model(space, (4, 1), num_classes=2, in_channels=1)
    register_builder("test_mlp", _mlp)
    try:
        model = build_model(space, (8, 2), num_classes=5, in_channels=1)
        assert model(torch.randn(3, 1, 2, 2)).shape == (3, 5)
        assert model[-1].in_features == 16
        assert build_model(space, (8, 1), num_classes=5, in_channels=1,
                           hidden_scale=1)[-1].in_features == 8
        with pytest.raises(SpaceError, match="width: 5 is not a valid choice"):
            build_model(space, (5, 1), num_classes=2, in_channels=1)
    finally:
        BUILDERS.unregister("test_mlp")


class MyOp(nn.Sequential):
    """ReLU - Conv(3 x 3, stride) - BN: a user's op with the table's shape contract."""

    def __init__(self, c_in: int, c_out: int, stride: int) -> None:
        super().__init__(nn.ReLU(), nn.Conv2d(c_in, c_out, 3, stride, 1, bias=False),
                         nn.BatchNorm2d(c_out))


@pytest.fixture
def my_op():
    register_op("my_op", MyOp)
    yield "my_op"
    OPS.unregister("my_op")


def test_a_registered_op_is_usable_in_a_space_end_to_end(my_op):
    space = NASNetSpace(ops=["identity", "sep_conv_3x3", my_op], blocks=3)
    genotype = next(g for g in map(space.sample, range(100))
                    if any(my_op in b.ops for b in g.normal.blocks + g.reduce.blocks))
    assert space.from_json(space.to_json(genotype)) == genotype
    model = build_network(genotype, num_classes=4, in_channels=3, cells_per_stage=1, channels=4)
    assert any(isinstance(m, MyOp) for m in model.modules())
    out = model(torch.randn(2, 3, 16, 16))
    assert out.shape == (2, 4) and torch.isfinite(out).all()
    assert build_model(space, genotype, num_classes=4, in_channels=3)(
        torch.randn(2, 3, 8, 8)).shape == (2, 4)


def test_an_op_outside_the_table_is_one_line_listing_the_valid_ops():
    with pytest.raises(SpaceError) as info:
        NASNetSpace(ops=["identity", "sep_conv_3x3", "nope"])
    msg = str(info.value)
    assert msg.startswith("ops: unknown op(s) 'nope'; valid ops: ") and "\n" not in msg
    assert all(name in msg for name in OPS)
    assert NASNetSpace(ops=["skip_connect", "sep_conv_3x3"]).ops == ("identity", "sep_conv_3x3")
