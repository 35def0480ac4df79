"""Proxies on the NASNet networks of nascli.models."""

from __future__ import annotations

import math

import pytest
import torch

from nascli import genotypes, models
from nascli.proxies import PROXIES, compute


@pytest.fixture(scope="module")
def small_nasnet() -> torch.nn.Module:
    """The search-time network: NASNet-A cells, N = 1, 8 channels, 28x28x1 inputs."""
    torch.manual_seed(0)
    return models.build_network(
        genotypes.NASNET_A, num_classes=10, in_channels=1, cells_per_stage=1, channels=8
    )


@pytest.mark.parametrize("name", sorted(PROXIES))
def test_every_proxy_on_small_nasnet(name, small_nasnet, check_unchanged):
    g = torch.Generator().manual_seed(0)
    x, y = torch.randn(8, 1, 28, 28, generator=g), torch.randint(0, 10, (8,), generator=g)
    small_nasnet.train()
    done = check_unchanged(small_nasnet)
    score = compute(name, small_nasnet, x, y)
    done()
    assert math.isfinite(score)


def test_flops_match_models_cost(small_nasnet):
    """One multiply-add convention across the code base."""
    x = torch.zeros(1, 1, 28, 28)
    assert compute("flops", small_nasnet, x) == models.count_macs(small_nasnet, (1, 28, 28))


def test_log_synflow_finite_on_nasnet_a_6_at_768():
    """The full CIFAR network (20 cells, 3.3M parameters) in float64 at 32x32 (about 3 s)."""
    torch.manual_seed(0)
    net = models.build_network(
        genotypes.NASNET_A,
        num_classes=10,
        in_channels=3,
        cells_per_stage=6,
        channels=32,
        stem="cifar",
    )
    score = compute("log_synflow", net, torch.zeros(1, 3, 32, 32))
    assert math.isfinite(score) and score > 0
