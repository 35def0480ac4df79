"""Cost baselines: trainable parameters and multiply-adds (report them beside every proxy)."""

from __future__ import annotations

from collections.abc import Sequence

import torch
from torch import nn
from torch.nn.modules.conv import _ConvNd, _ConvTransposeNd

from nascli.proxies._state import model_device, model_dtype


def count_params(model: nn.Module) -> int:
    """Number of trainable parameters (shared parameters once)."""
    return sum(p.numel() for p in model.parameters() if p.requires_grad)


def _layer_macs(module: nn.Module, args: tuple[torch.Tensor, ...], out: torch.Tensor) -> int:
    """Multiply-adds of one call of a conv or linear layer, per sample."""
    batch = out.shape[0] if out.dim() > 1 else 1
    if isinstance(module, _ConvTransposeNd):
        # Each input element meets out_channels / groups filters of prod(kernel) taps.
        per_input = module.out_channels // module.groups * _prod(module.kernel_size)
        return args[0].numel() // batch * per_input
    if isinstance(module, _ConvNd):
        per_output = module.in_channels // module.groups * _prod(module.kernel_size)
        return out.numel() // batch * per_output
    return out.numel() // batch * module.in_features  # nn.Linear


def _prod(values: Sequence[int]) -> int:
    total = 1
    for v in values:
        total *= v
    return total


def count_macs(model: nn.Module, input_shape: Sequence[int]) -> int:
    """Multiply-adds of the conv and linear layers for one sample of shape ``input_shape``.

    Counted with forward hooks on a single zero input in eval mode, so a layer called twice
    counts twice and layers the forward pass skips count nothing. Pooling, BatchNorm, additions
    and activations are not counted (the convention of the NASNet paper's multiply-adds). The
    caller restores the model's modes (:func:`~nascli.proxies._state.preserved`).
    """
    total = 0

    def hook(module: nn.Module, args: tuple[torch.Tensor, ...], out: torch.Tensor) -> None:
        nonlocal total
        total += _layer_macs(module, args, out)

    model.eval()
    handles = [
        m.register_forward_hook(hook) for m in model.modules() if isinstance(m, _ConvNd | nn.Linear)
    ]
    try:
        x = torch.zeros((1, *input_shape), dtype=model_dtype(model), device=model_device(model))
        with torch.no_grad():
            model(x)
    finally:
        for h in handles:
            h.remove()
    return total


def params(model: nn.Module, inputs: torch.Tensor, targets: torch.Tensor | None = None) -> float:
    """Trainable parameter count (a baseline that proxies should beat)."""
    return float(count_params(model))


def flops(model: nn.Module, inputs: torch.Tensor, targets: torch.Tensor | None = None) -> float:
    """Multiply-adds of conv and linear layers per sample at the inputs' size (``shape[1:]``)."""
    return float(count_macs(model, inputs.shape[1:]))
