"""Model cost as the papers report it: parameters and multiply-adds of conv and linear layers."""

from __future__ import annotations

import torch
from torch import nn

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


def count_macs(model: nn.Module, input_size: tuple[int, int, int] = (3, 32, 32)) -> int:
    """Multiply-adds of one forward pass of one (C, H, W) image, in eval mode.

    Counts convolutions (``C_in / groups * kh * kw`` per output element) and linear layers
    (``in_features`` per output element), like the NASNet and DARTS papers; BN, pooling,
    activations and additions are not counted. Works on any device, including ``meta``.
    """
    total = 0

    def conv_hook(m: nn.Conv2d, _inp: tuple[torch.Tensor, ...], out: torch.Tensor) -> None:
        nonlocal total
        kh, kw = m.kernel_size
        total += out.numel() * (m.in_channels // m.groups) * kh * kw

    def linear_hook(m: nn.Linear, _inp: tuple[torch.Tensor, ...], out: torch.Tensor) -> None:
        nonlocal total
        total += out.numel() * m.in_features

    handles = []
    for m in model.modules():
        if isinstance(m, nn.Conv2d):
            handles.append(m.register_forward_hook(conv_hook))
        elif isinstance(m, nn.Linear):
            handles.append(m.register_forward_hook(linear_hook))
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
