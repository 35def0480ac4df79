"""Loss-gradient proxies against hand-computed values, and the out-of-memory split."""

from __future__ import annotations

import numpy as np
import pytest
import torch
import torch.nn.functional as F
from torch import nn

from nascli.proxies import PROXIES, compute


def _linear_problem(n: int = 6, d: int = 4, k: int = 3):
    torch.manual_seed(0)
    model = nn.Linear(d, k)
    x, y = torch.randn(n, d), torch.randint(0, k, (n,))
    return model, x, y


def _analytic_grad(model: nn.Linear, x: torch.Tensor, y: torch.Tensor) -> np.ndarray:
    """dL/dW of the mean cross-entropy: (softmax(z) - onehot)' x / N."""
    w, b = model.weight.detach().double().numpy(), model.bias.detach().double().numpy()
    xs = x.double().numpy()
    z = xs @ w.T + b
    p = np.exp(z - z.max(1, keepdims=True))
    p /= p.sum(1, keepdims=True)
    p[np.arange(len(y)), y.numpy()] -= 1.0
    return p.T @ xs / len(y)


def test_grad_norm_one_layer_analytic():
    model, x, y = _linear_problem()
    expected = np.linalg.norm(_analytic_grad(model, x, y))
    assert compute("grad_norm", model, x, y) == pytest.approx(expected, rel=1e-5)


def test_snip_one_layer_analytic():
    model, x, y = _linear_problem()
    w = model.weight.detach().double().numpy()
    expected = np.abs(w * _analytic_grad(model, x, y)).sum()
    assert compute("snip", model, x, y) == pytest.approx(expected, rel=1e-5)


def test_grasp_matches_hessian_gradient_product():
    """-sum(theta * H g) with H g from torch.autograd.functional.hvp on the flat weights."""
    torch.manual_seed(1)
    model = nn.Sequential(nn.Linear(4, 5), nn.Tanh(), nn.Linear(5, 3))
    x, y = torch.randn(8, 4), torch.randint(0, 3, (8,))
    w1, w2 = model[0].weight.detach(), model[2].weight.detach()
    b1, b2 = model[0].bias.detach(), model[2].bias.detach()

    def loss(a: torch.Tensor, c: torch.Tensor) -> torch.Tensor:
        return F.cross_entropy(torch.tanh(x @ a.T + b1) @ c.T + b2, y)

    g = torch.autograd.grad(loss(w1.requires_grad_(), w2.requires_grad_()), (w1, w2))
    _, hg = torch.autograd.functional.hvp(loss, (w1.detach(), w2.detach()), g)
    expected = -sum((w * h).sum() for w, h in zip((w1, w2), hg, strict=True)).item()
    assert compute("grasp", model, x, y) == pytest.approx(expected, rel=1e-4)


def test_fisher_one_layer_by_hand():
    """Linear layer: g_nk = a_nk * dL/da_nk; score = sum_k 0.5 mean_n g_nk^2 * in_features."""
    model, x, y = _linear_problem()
    a = model(x).detach().double()
    p = torch.softmax(a, 1)
    p[torch.arange(len(y)), y] -= 1.0
    grad = p / len(y)  # dL/da of the mean loss
    expected = (0.5 * (a * grad).pow(2).mean(0) * 4).sum().item()
    assert compute("fisher", model, x, y) == pytest.approx(expected, rel=1e-5)


def test_targets_required():
    model, x, _ = _linear_problem()
    with pytest.raises(ValueError, match="targets"):
        compute("snip", model, x)


class _OOMAbove(nn.Module):
    """Raises the accelerator's out-of-memory error for batches larger than ``limit``."""

    def __init__(self, inner: nn.Module, limit: int) -> None:
        super().__init__()
        self.inner, self.limit, self.sizes = inner, limit, []

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        self.sizes.append(x.shape[0])
        if x.shape[0] > self.limit:
            raise torch.cuda.OutOfMemoryError("CUDA out of memory (simulated)")
        return self.inner(x)


def _no_bn_net() -> nn.Module:
    torch.manual_seed(2)
    return nn.Sequential(nn.Conv2d(3, 4, 3), nn.ReLU(), nn.Flatten(), nn.Linear(4 * 6 * 6, 5))


SPLITTABLE = sorted(n for n, f in PROXIES.items() if f.splittable)


def test_splittable_set():
    assert SPLITTABLE == ["fisher", "grad_norm", "grasp", "jacob_cov", "naswot", "snip"]


@pytest.mark.parametrize("name", SPLITTABLE)
def test_out_of_memory_retries_with_split_batch(name, check_unchanged):
    """Without BatchNorm a chunked score equals the full-batch one."""
    x, y = torch.randn(16, 3, 8, 8), torch.randint(0, 5, (16,))
    full = compute(name, _no_bn_net(), x, y)
    model = _OOMAbove(_no_bn_net(), limit=4)
    done = check_unchanged(model)
    assert compute(name, model, x, y) == pytest.approx(full, rel=1e-5, abs=1e-8)
    done()
    assert max(model.sizes[-4:]) <= 4  # the last attempt ran in quarters


def test_out_of_memory_unsplittable_reraises():
    model = _OOMAbove(_no_bn_net(), limit=0)
    with pytest.raises(torch.cuda.OutOfMemoryError):
        compute("synflow", model, torch.randn(4, 3, 8, 8))


def test_tuple_output_uses_logits():
    class WithAux(nn.Module):
        def __init__(self) -> None:
            super().__init__()
            self.net = _no_bn_net()

        def forward(self, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
            out = self.net(x)
            return out, out * 100.0

    x, y = torch.randn(8, 3, 8, 8), torch.randint(0, 5, (8,))
    aux = WithAux()
    for name in PROXIES:
        assert compute(name, aux, x, y) == pytest.approx(compute(name, aux.net, x, y))
