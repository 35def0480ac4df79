"""Synflow against its closed form, BatchNorm removal, and the log scale on deep networks."""

from __future__ import annotations

import math

import pytest
import torch
from torch import nn

from nascli.proxies import compute
from nascli.proxies.synflow import _log_score


def test_two_layer_closed_form():
    """R = 1'|W2|(|W1|1 + |b1|) + 1'|b2|; the W1 term is 1'|W2||W1|1, the W2 term 1'|W2|h1."""
    torch.manual_seed(0)
    net = nn.Sequential(nn.Linear(4, 3), nn.ReLU(), nn.Linear(3, 2))
    w1, b1 = net[0].weight.double().abs(), net[0].bias.double().abs()
    w2 = net[2].weight.double().abs()
    ones = torch.ones(4, dtype=torch.float64)
    h1 = w1 @ ones + b1
    expected = (w2.sum(0) @ w1 @ ones + w2.sum(0) @ h1).item()
    inputs = torch.randn(7, 4)  # values and batch size are ignored: one all-ones sample
    assert compute("synflow", net, inputs) == pytest.approx(expected, rel=1e-14)
    assert compute("log_synflow", net, inputs) == pytest.approx(math.log(expected), rel=1e-14)


def test_chain_is_depth_times_output():
    """Bias-free chain: R is linear in each layer's weights, so each layer contributes R."""
    torch.manual_seed(1)
    layers = [nn.Linear(5, 5, bias=False) for _ in range(6)]
    net = nn.Sequential(*layers)
    v = torch.ones(5, dtype=torch.float64)
    for layer in layers:
        v = layer.weight.double().abs() @ v
    assert compute("synflow", net, torch.zeros(1, 5)) == pytest.approx(6 * v.sum().item())


def test_batchnorm_is_removed():
    """With BN the score equals the same network without BN, whatever BN's state."""
    torch.manual_seed(2)
    conv1, conv2 = nn.Conv2d(3, 4, 3, padding=1), nn.Conv2d(4, 5, 3)
    bn = nn.BatchNorm2d(4)
    with torch.no_grad():
        bn.weight.fill_(-3.0)
        bn.running_mean.fill_(5.0)
        bn.running_var.fill_(0.01)
    with_bn = nn.Sequential(conv1, bn, nn.ReLU(), conv2)
    without = nn.Sequential(conv1, nn.ReLU(), conv2)
    x = torch.randn(2, 3, 6, 6)
    for mode in ("train", "eval"):
        with_bn.train(mode == "train")
        assert compute("synflow", with_bn, x) == compute("synflow", without, x)


class _Residual(nn.Module):
    """Skips, concatenation, pooling and BN: the shape of a NASNet cell."""

    def __init__(self) -> None:
        super().__init__()
        self.a = nn.Sequential(nn.ReLU(), nn.Conv2d(4, 4, 3, padding=1), nn.BatchNorm2d(4))
        self.b = nn.Sequential(nn.Conv2d(4, 4, 1), nn.ReLU(), nn.Conv2d(4, 4, 3, padding=1))
        self.pool = nn.MaxPool2d(3, 1, 1)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return torch.cat([self.a(x) + self.pool(x), self.b(x) + x], 1)[:, ::2]


def _residual_net(depth: int) -> nn.Module:
    torch.manual_seed(3)
    return nn.Sequential(
        nn.Conv2d(1, 4, 3, padding=1),
        *[_Residual() for _ in range(depth)],
        nn.AdaptiveAvgPool2d(1),
        nn.Flatten(),
        nn.Linear(4, 3),
    )


def test_rescaled_pass_is_exact_with_skips():
    """The overflow fallback (input and biases times alpha, backward seed beta) is exact."""
    net = _residual_net(5)
    plain, s = _log_score(net, torch.Size([1, 8, 8]))
    rescaled, none = _log_score(net, torch.Size([1, 8, 8]), force_rescale=True)
    assert s is not None and none is None
    assert rescaled == pytest.approx(plain, rel=1e-12)


def _deep_chain(depth: int, width: int, scale: float) -> nn.Module:
    torch.manual_seed(4)
    layers: list[nn.Module] = []
    for _ in range(depth):
        layer = nn.Linear(width, width, bias=False)
        with torch.no_grad():
            layer.weight.uniform_(-scale, scale)
        layers += [layer, nn.ReLU()]
    return nn.Sequential(*layers)


def test_log_synflow_finite_where_float64_overflows():
    """100 layers, gain ~8000 per layer: S ~ 1e390. Closed form in log space: log(L) + log R."""
    net = _deep_chain(100, 16, 1000.0)
    log_r, v = 0.0, torch.ones(16, dtype=torch.float64)
    for layer in net[::2]:
        v = layer.weight.double().abs() @ v
        total = v.sum()
        log_r += math.log(total.item())
        v = v / total
    expected = math.log(100) + log_r
    assert expected > math.log(torch.finfo(torch.float64).max)  # really past float64
    x = torch.zeros(3, 16)
    assert compute("synflow", net, x) == math.inf
    assert compute("log_synflow", net, x) == pytest.approx(expected, rel=1e-12)


def test_log_synflow_deep_conv_stack():
    """A 100-layer conv/BN/ReLU stack with default init stays finite on the log scale."""
    torch.manual_seed(5)
    layers: list[nn.Module] = [nn.Conv2d(1, 32, 3, padding=1)]
    for _ in range(99):
        layers += [nn.BatchNorm2d(32), nn.ReLU(), nn.Conv2d(32, 32, 3, padding=1)]
    net = nn.Sequential(*layers, nn.AdaptiveAvgPool2d(1), nn.Flatten())
    with torch.no_grad():
        for m in net.modules():
            if isinstance(m, nn.Conv2d):
                m.weight.mul_(200.0)  # gain ~1700 per layer: past float64 in 100 layers
    x = torch.zeros(1, 1, 4, 4)
    score = compute("log_synflow", net, x)
    assert math.isfinite(score) and score > math.log(torch.finfo(torch.float64).max)
