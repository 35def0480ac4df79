"""Model cost as the papers report it: parameters and multiply-adds of conv and linear layers."""

from __future__ import annotations

import math
from collections.abc import Sequence

import torch
from torch import nn
from torch.nn.modules.conv import _ConvNd, _ConvTransposeNd

#: attribute names of auxiliary heads (nascli, DARTS, torchvision's Inception)
AUX_NAMES = frozenset({"aux_head", "auxiliary_head", "AuxLogits"})


def count_parameters(model: nn.Module, exclude_auxiliary: bool = True) -> int:
    """Number of parameters; auxiliary heads are left out by default, as the papers count."""
    total = 0
    for name, p in model.named_parameters():
        if exclude_auxiliary and AUX_NAMES.intersection(name.split(".")):
            continue
        total += p.numel()
    return total


def _layer_macs(module: nn.Module, args: tuple[torch.Tensor, ...], out: torch.Tensor) -> int:
    """Multiply-adds of one call of a conv (any dimension, transposed too) or linear layer,
    per sample."""
    batch = out.shape[0] if out.dim() > 1 else 1
    if isinstance(module, _ConvTransposeNd):
        # each input element meets out_channels / groups filters of prod(kernel) taps
        per_input = module.out_channels // module.groups * math.prod(module.kernel_size)
        return args[0].numel() // batch * per_input
    if isinstance(module, _ConvNd):
        per_output = module.in_channels // module.groups * math.prod(module.kernel_size)
        return out.numel() // batch * per_output
    return out.numel() // batch * module.in_features  # nn.Linear


def count_macs(model: nn.Module, input_size: Sequence[int] = (3, 32, 32)) -> int:
    """Multiply-adds of one forward pass of one input of shape ``input_size``, in eval mode.

    Counts convolutions (``C_in / groups * prod(kernel)`` per output element) and linear layers
    (``in_features`` per output element), like the NASNet and DARTS papers; BN, pooling,
    activations and additions are not counted. A layer called twice counts twice. Works on any
    ``nn.Module`` and any device, including ``meta``; the model's train/eval mode is restored.
    """
    total = 0

    def hook(module: nn.Module, args: tuple[torch.Tensor, ...], out: torch.Tensor) -> None:
        nonlocal total
        total += _layer_macs(module, args, out)

    handles = [m.register_forward_hook(hook) for m in model.modules()
               if isinstance(m, _ConvNd | nn.Linear)]
    param = next(model.parameters(), None)
    device = param.device if param is not None else torch.device("cpu")
    dtype = param.dtype if param is not None else torch.float32
    was_training = model.training
    try:
        model.eval()
        with torch.no_grad():
            model(torch.zeros((1, *input_size), device=device, dtype=dtype))
    finally:
        model.train(was_training)
        for h in handles:
            h.remove()
    return int(total)
