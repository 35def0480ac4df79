"""Cost baselines: trainable parameters and multiply-adds (report them beside every proxy)."""

from __future__ import annotations

import torch
from torch import nn

# one multiply-add counter for the whole project: the network cost the papers report
from nascli.models.cost import count_macs


def count_params(model: nn.Module) -> int:
    """Number of trainable parameters (shared parameters once)."""
    return sum(p.numel() for p in model.parameters() if p.requires_grad)


def params(model: nn.Module, inputs: torch.Tensor, targets: torch.Tensor | None = None) -> float:
    """Trainable parameter count (a baseline that proxies should beat)."""
    return float(count_params(model))


def flops(model: nn.Module, inputs: torch.Tensor, targets: torch.Tensor | None = None) -> float:
    """Multiply-adds of conv and linear layers per sample at the inputs' size (``shape[1:]``)."""
    return float(count_macs(model, inputs.shape[1:]))
