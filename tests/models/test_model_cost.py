"""Parameter and multiply-add counts of published networks against the papers."""

from __future__ import annotations

import pytest
import torch
from torch import nn

from nascli.genotypes import AMOEBANET_A, DARTS_V2, NASNET_A
from nascli.models import build_network, count_macs, count_parameters

TIMM_NASNETALARGE_PARAMS = 88_753_150  # timm's independent NASNet-A 6@4032


def _meta(genotype, **kwargs):
    # building on the meta device allocates nothing: big models count in a fraction of a second
    with torch.device("meta"):
        return build_network(genotype, **kwargs)


def test_nasnet_a_cifar_6_at_768():
    model = _meta(NASNET_A, num_classes=10, cells_per_stage=6, channels=32)
    assert count_parameters(model) == pytest.approx(3.3e6, rel=0.03)


def test_nasnet_a_mobile_4_at_1056():
    # on CPU: a real forward pass at 224x224 is faster than shape inference on meta tensors
    model = build_network(
        NASNET_A,
        num_classes=1000,
        cells_per_stage=4,
        channels=44,
        stem="imagenet",
        stem_multiplier=1,
    )
    assert count_parameters(model) == pytest.approx(5.3e6, rel=0.05)
    assert count_macs(model, (3, 224, 224)) == pytest.approx(564e6, rel=0.05)


def test_nasnet_a_large_6_at_4032():
    model = _meta(NASNET_A, num_classes=1000, cells_per_stage=6, channels=168, stem="imagenet")
    params = count_parameters(model)
    assert params == pytest.approx(88.9e6, rel=0.01)
    assert params == pytest.approx(TIMM_NASNETALARGE_PARAMS, rel=0.001)


def test_amoebanet_a_cifar_n6_f36():
    model = _meta(AMOEBANET_A, num_classes=10, cells_per_stage=6, channels=36)
    assert count_parameters(model) == pytest.approx(3.2e6, rel=0.05)


def test_darts_v2_cifar_20_cells_36_channels():
    model = _meta(DARTS_V2, num_classes=10, cells_per_stage=6, channels=36)
    assert len(model.cells) == 20
    assert count_parameters(model) == pytest.approx(3.3e6, rel=0.03)
    assert count_parameters(model) == pytest.approx(3.35e6, rel=0.01)  # the DARTS code's count


def test_auxiliary_head_is_excluded_by_default():
    plain = _meta(DARTS_V2, cells_per_stage=6, channels=36)
    aux = _meta(DARTS_V2, cells_per_stage=6, channels=36, auxiliary=True)
    assert count_parameters(aux) == count_parameters(plain)
    assert count_parameters(aux, exclude_auxiliary=False) > count_parameters(plain) + 400_000


def test_count_macs_by_hand():
    model = nn.Sequential(
        nn.Conv2d(3, 8, 3, padding=1),  # 10*10*8 outputs x 3*9
        nn.Conv2d(8, 8, 3, stride=2, padding=1, groups=8),  # 5*5*8 x 9
        nn.AdaptiveAvgPool2d(1),
        nn.Flatten(),
        nn.Linear(8, 2),  # 2 x 8
    )
    assert count_macs(model, (3, 10, 10)) == 10 * 10 * 8 * 27 + 5 * 5 * 8 * 9 + 16


def test_count_macs_same_on_meta_and_cpu_and_keeps_mode():
    torch.manual_seed(0)
    cpu = build_network(NASNET_A, cells_per_stage=1, channels=4, auxiliary=True).train()
    meta = _meta(NASNET_A, cells_per_stage=1, channels=4, auxiliary=True)
    assert count_macs(cpu, (3, 32, 32)) == count_macs(meta, (3, 32, 32)) > 0
    assert cpu.training
