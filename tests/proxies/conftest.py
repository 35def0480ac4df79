"""Small networks and a full-state snapshot for the proxy tests."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import pytest
import torch
from torch import nn


class SmallConvNet(nn.Module):
    """Conv-BN-ReLU, dropout, a frozen conv, pooling, linear: every state a proxy could touch."""

    def __init__(self, classes: int = 5) -> None:
        super().__init__()
        self.stem = nn.Sequential(nn.Conv2d(3, 6, 3, padding=1), nn.BatchNorm2d(6), nn.ReLU())
        self.drop = nn.Dropout(0.3)
        self.frozen = nn.Sequential(
            nn.Conv2d(6, 8, 3, padding=1, bias=False), nn.BatchNorm2d(8), nn.ReLU()
        )
        self.frozen[0].weight.requires_grad_(False)
        self.pool = nn.AdaptiveAvgPool2d(1)
        self.head = nn.Linear(8, classes)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = self.frozen(self.drop(self.stem(x)))
        return self.head(self.pool(x).flatten(1))


def make_small_net(seed: int = 0) -> SmallConvNet:
    torch.manual_seed(seed)
    return SmallConvNet()


def make_batch(n: int = 12, seed: int = 1) -> tuple[torch.Tensor, torch.Tensor]:
    g = torch.Generator().manual_seed(seed)
    return torch.randn(n, 3, 8, 8, generator=g), torch.randint(0, 5, (n,), generator=g)


def snapshot(model: nn.Module) -> dict[str, Any]:
    """Everything that must survive a proxy, with tensor identities and values."""
    return {
        "params": [
            (n, p, p.data_ptr(), p.detach().clone(), p.dtype, p.device, p.requires_grad)
            for n, p in model.named_parameters()
        ],
        "grads": [
            (n, p.grad, None if p.grad is None else p.grad.clone())
            for n, p in model.named_parameters()
        ],
        "buffers": [(n, b, b.clone(), b.dtype) for n, b in model.named_buffers()],
        "modes": [(n, m.training) for n, m in model.named_modules()],
        "forward": [n for n, m in model.named_modules() if "forward" in m.__dict__],
        "rng": torch.get_rng_state(),
    }


def assert_unchanged(before: dict[str, Any], model: nn.Module) -> None:
    after = snapshot(model)
    for (n, p, ptr, v, dtype, dev, rg), (_, p2, ptr2, v2, dtype2, dev2, rg2) in zip(
        before["params"], after["params"], strict=True
    ):
        assert p is p2 and ptr == ptr2, f"{n}: parameter object or storage replaced"
        assert (dtype, dev, rg) == (dtype2, dev2, rg2), f"{n}: dtype/device/requires_grad"
        assert torch.equal(v, v2), f"{n}: values changed"
    for (n, g, gv), (_, g2, gv2) in zip(before["grads"], after["grads"], strict=True):
        assert g is g2, f"{n}: .grad object changed"
        assert (gv is None) == (gv2 is None)
        assert gv is None or torch.equal(gv, gv2), f"{n}: .grad values changed"
    for (n, b, bv, dt), (_, b2, bv2, dt2) in zip(before["buffers"], after["buffers"], strict=True):
        assert b is b2 and dt == dt2, f"{n}: buffer replaced"
        assert torch.equal(bv, bv2), f"{n}: buffer values changed"
    assert before["modes"] == after["modes"]
    assert before["forward"] == after["forward"], "a forward patch was left behind"
    assert torch.equal(before["rng"], after["rng"]), "global random state changed"


@pytest.fixture(autouse=True)
def one_thread():
    """Tiny tensors: one thread is faster, and far faster on a busy machine (no spin-waits)."""
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(threads)


@pytest.fixture
def small_net() -> SmallConvNet:
    return make_small_net()


@pytest.fixture
def batch() -> tuple[torch.Tensor, torch.Tensor]:
    return make_batch()


@pytest.fixture
def check_unchanged() -> Callable[[nn.Module], Callable[[], None]]:
    """``done = check_unchanged(model); ...; done()`` asserts the model is as it was."""

    def start(model: nn.Module) -> Callable[[], None]:
        before = snapshot(model)
        return lambda: assert_unchanged(before, model)

    return start
