"""naswot on known ReLU codes, jacob_cov against its definition, params and flops exactly."""

from __future__ import annotations

import math

import numpy as np
import pytest
import torch
from torch import nn

from nascli.proxies import compute, count_macs


def _codes_net() -> nn.Module:
    """ReLU straight on the input (codes = signs of the input), then ReLU after a +1 shift."""

    class Shift(nn.Module):
        def forward(self, x: torch.Tensor) -> torch.Tensor:
            return x + 1.0

    return nn.Sequential(nn.ReLU(), Shift(), nn.ReLU(), nn.Linear(4, 2))


def test_naswot_known_codes():
    """Codes 1100, 1010, 0001: Hamming distances 2, 3, 3 over 4 units.

    First ReLU: K = 4 - H = [[4,2,1],[2,4,1],[1,1,4]]. The second ReLU sees x + 1 >= 0.5 > 0,
    so all codes are 1111 and it adds 4 everywhere: det([[8,6,5],[6,8,5],[5,5,8]]) = 124.
    """
    x = torch.tensor([[1.0, 2.0, -0.5, -1.0], [3.0, -0.5, 1.0, -0.5], [-0.5, -0.5, -0.5, 2.0]])
    assert compute("naswot", _codes_net(), x) == pytest.approx(math.log(124.0), rel=1e-12)
    single = nn.Sequential(nn.ReLU(), nn.Linear(4, 2))
    assert compute("naswot", single, x) == pytest.approx(math.log(44.0), rel=1e-12)


def test_naswot_sees_functional_relus():
    """Cells that rectify a shared state with F.relu or Tensor.relu_ count like nn.ReLU."""

    class Functional(nn.Module):
        def __init__(self) -> None:
            super().__init__()
            self.head = nn.Linear(10, 2)

        def forward(self, x: torch.Tensor) -> torch.Tensor:
            return self.head((torch.nn.functional.relu(x) - x).relu_() + 1.0)

    class Modules(nn.Module):
        def __init__(self) -> None:
            super().__init__()
            self.a, self.b, self.head = nn.ReLU(), nn.ReLU(inplace=True), nn.Linear(10, 2)

        def forward(self, x: torch.Tensor) -> torch.Tensor:
            return self.head(self.b(self.a(x) - x) + 1.0)

    x = torch.randn(5, 10, generator=torch.Generator().manual_seed(0))
    score = compute("naswot", Modules(), x)
    assert compute("naswot", Functional(), x) == pytest.approx(score, rel=1e-12)
    assert score != compute("naswot", nn.Sequential(nn.ReLU(), nn.Linear(10, 2)), x)


def test_naswot_duplicate_inputs_is_minus_infinity():
    x = torch.tensor([[1.0, -1.0, 1.0, 1.0]] * 2)
    assert compute("naswot", nn.Sequential(nn.ReLU(), nn.Linear(4, 2)), x) == -math.inf


def test_naswot_needs_relu_modules():
    with pytest.raises(ValueError, match="ReLU"):
        compute("naswot", nn.Sequential(nn.Tanh(), nn.Linear(4, 2)), torch.randn(3, 4))


def test_jacob_cov_definition():
    """Rows dsum(f(x_n))/dx_n; v = eig(corrcoef); score = -sum(log(v+k) + 1/(v+k))."""
    torch.manual_seed(0)
    model = nn.Sequential(nn.Linear(6, 8), nn.Tanh(), nn.Linear(8, 3))
    x = torch.randn(5, 6)
    rows = torch.stack(
        [torch.autograd.functional.jacobian(lambda v: model(v).sum(), xi) for xi in x]
    )
    v = np.linalg.eigvalsh(np.corrcoef(rows.double().numpy()))
    expected = -np.sum(np.log(v + 1e-5) + 1.0 / (v + 1e-5))
    assert compute("jacob_cov", model, x) == pytest.approx(expected, rel=1e-4)


def test_zen_ignores_the_model_weights_and_uses_features():
    """Zen redraws the weights from N(0, 1): two initialisations of one architecture agree.

    With ``forward_features`` the pre-pooling map is scored, not the logits.
    """

    class Net(nn.Module):
        def __init__(self) -> None:
            super().__init__()
            self.body = nn.Sequential(nn.Conv2d(3, 4, 3), nn.BatchNorm2d(4), nn.ReLU())
            self.head = nn.Linear(4, 2)

        def forward_features(self, x: torch.Tensor) -> torch.Tensor:
            return self.body(x)

        def forward(self, x: torch.Tensor) -> torch.Tensor:
            return self.head(self.forward_features(x).mean((2, 3)))

    x = torch.randn(6, 3, 8, 8)
    torch.manual_seed(0)
    a = Net()
    torch.manual_seed(1)
    b = Net()
    assert compute("zen", a, x) == compute("zen", b, x)
    assert math.isfinite(compute("zen", a, x))
    with_head = compute("zen", nn.Sequential(a.body, nn.AdaptiveAvgPool2d(1), nn.Flatten()), x)
    assert compute("zen", a, x) != with_head


def test_params_exact():
    """Trainable only; a shared layer once; BatchNorm affine counts, running stats do not."""
    shared = nn.Linear(8, 8)
    frozen = nn.Conv2d(8, 8, 1)
    frozen.requires_grad_(False)
    net = nn.Sequential(
        nn.Conv2d(3, 8, 3),  # 8*3*9 + 8 = 224
        nn.BatchNorm2d(8),  # 16
        frozen,  # 0
        nn.AdaptiveAvgPool2d(1),
        nn.Flatten(),
        shared,  # 72
        shared,
        nn.Linear(8, 10),  # 90
    )
    assert compute("params", net, torch.randn(2, 3, 8, 8)) == 224 + 16 + 72 + 90


def test_flops_exact():
    """Multiply-adds per sample: conv out_elems * in/groups * k*k, linear in*out, per call."""
    net = nn.Sequential(
        nn.Conv2d(3, 8, 3, padding=1),  # 8*8*8 outputs * 27 = 13824
        nn.Conv2d(8, 8, 3, padding=1, groups=8),  # 512 * 9 = 4608
        nn.Conv2d(8, 16, 1, stride=2),  # 16*4*4 * 8 = 2048
        nn.AdaptiveAvgPool2d(1),
        nn.Flatten(),
        nn.Linear(16, 10),  # 160
    )
    expected = 13824 + 4608 + 2048 + 160
    assert compute("flops", net, torch.randn(5, 3, 8, 8)) == expected
    assert count_macs(net, (3, 8, 8)) == expected
