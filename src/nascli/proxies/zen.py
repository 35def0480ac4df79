"""Zen-score (Lin et al. 2021, Zen-NAS): expressivity of the network with Gaussian weights.

Data-free: only the inputs' shape and batch size are used. Follows the authors' code
(``compute_zen_score.py``): conv and linear weights drawn from N(0, 1) (biases 0, BatchNorm
affine 1 and 0), BatchNorm on batch statistics, x and e from N(0, 1), and

    score = log(mean_n sum |f(x) - f(x + gamma e)|) + sum over BN layers of log sqrt(mean var)

with f the feature map before global pooling and var the per-channel batch variance each BN
layer sees on x. The model's own weights are restored afterwards, like everything else.
"""

from __future__ import annotations

import math

import torch
from torch import nn
from torch.nn.modules.batchnorm import _BatchNorm
from torch.nn.modules.conv import _ConvNd

from nascli.proxies._common import logits
from nascli.proxies._state import set_data_mode


def _cpu_normal(like: torch.Tensor) -> torch.Tensor:
    """Standard normal noise shaped like ``like``, drawn on the CPU (torch's seeded CPU
    generator) and moved to its device: the same draws, so the same score, on every device."""
    return torch.randn(like.shape, dtype=like.dtype).to(like.device)


def _gaussian_init(model: nn.Module) -> None:
    with torch.no_grad():
        for m in model.modules():
            if isinstance(m, _ConvNd | nn.Linear):
                m.weight.copy_(_cpu_normal(m.weight))
                if m.bias is not None:
                    nn.init.zeros_(m.bias)
            elif isinstance(m, _BatchNorm | nn.GroupNorm) and m.weight is not None:
                nn.init.ones_(m.weight)
                nn.init.zeros_(m.bias)


def _features(model: nn.Module, x: torch.Tensor) -> torch.Tensor:
    """The pre-pooling feature map (``forward_features``, as nascli and timm models have), or
    the logits for a model without one."""
    forward_features = getattr(model, "forward_features", None)
    if callable(forward_features):
        return logits(forward_features(x))
    return logits(model(x))


def zen(
    model: nn.Module,
    inputs: torch.Tensor,
    targets: torch.Tensor | None = None,
    *,
    mixup_gamma: float = 0.01,
) -> float:
    """Zen-score: log of the feature change under a small input perturbation plus BN scales.

    Higher is better. Models without ``forward_features`` are scored on their logits, which
    differs from the paper's pre-pooling features by the pooling and the classifier.
    """
    set_data_mode(model)
    _gaussian_init(model)
    x = _cpu_normal(inputs)
    mixed = x + mixup_gamma * _cpu_normal(inputs)
    log_scales: list[float] = []

    def on_input(_module: nn.Module, args: tuple[torch.Tensor, ...]) -> None:
        v = args[0]
        dims = [d for d in range(v.dim()) if d != 1]
        log_scales.append(0.5 * torch.log(v.double().var(dim=dims).mean()).item())

    with torch.no_grad():
        handles = [
            m.register_forward_pre_hook(on_input)
            for m in model.modules()
            if isinstance(m, _BatchNorm)
        ]
        try:
            out = _features(model, x)
        finally:
            for h in handles:
                h.remove()
        delta = (out - _features(model, mixed)).abs().double()
    change = delta.reshape(delta.shape[0], -1).sum(1).mean()
    return torch.log(change).item() + math.fsum(log_scales)
