"""Synaptic flow (Tanaka et al. 2020) as a zero-cost proxy (Abdelfattah et al. 2021).

The reference definition: BatchNorm removed, every parameter replaced by its absolute value,
the network in float64, one all-ones input of the data's shape (batch 1), R = the sum of the
outputs, and the score S = sum over convolution and linear weights of |theta * dR/dtheta|.

Deep networks push S past float64's range (about 1e308). ``log_synflow`` then rescales: with
non-negative weights and a positive input, a network made of convolutions, linear layers, ReLU,
pooling, additions and concatenations is positively homogeneous, so scaling the input and every
bias by ``alpha`` scales each activation by ``alpha``, and seeding the backward pass with
``beta`` scales each gradient by ``beta``: the rescaled score is ``alpha * beta * S`` exactly.
Both are powers of two chosen to centre the activations and gradients in float64's range.
"""

from __future__ import annotations

import copy
import math

import torch
from torch import nn

from nascli.proxies._common import logits, scored_layers
from nascli.proxies._state import batchnorm_removed, model_device

#: The probe input scale: 2**-1000 is about 1e-301, still a normal float64.
_PROBE_EXPONENT = 1000
_MAX_LOG = math.log(torch.finfo(torch.float64).max)


def _prepare(model: nn.Module) -> None:
    """The synflow network: eval mode (no dropout or drop-path), float64, |parameters|."""
    model.eval()
    model.double()
    with torch.no_grad():
        for p in model.parameters():
            p.abs_()


def _flow(
    model: nn.Module, shape: torch.Size, alpha: float, beta: float, backward: bool = True
) -> tuple[float, float]:
    """(R, S) of the prepared model for input ``alpha`` * 1 and backward seed ``beta``.

    Biases are scaled by ``alpha`` for the pass (and put back), so that a homogeneous network
    gives exactly ``alpha * R`` and ``alpha * beta * S``.
    """
    layers = scored_layers(model)
    weights = [m.weight for m in layers]
    biases = [m.bias for m in layers if isinstance(m.bias, torch.Tensor)]
    saved = [b.detach().clone() for b in biases]
    device = model_device(model)
    try:
        with torch.no_grad():
            for b in biases:
                b.mul_(alpha)
        x = torch.full((1, *shape), alpha, dtype=torch.float64, device=device)
        with torch.set_grad_enabled(backward):
            for w in weights:
                w.requires_grad_(backward)
            r = logits(model(x)).sum()
            if not backward:
                return r.item(), math.nan
            seed = torch.tensor(beta, dtype=r.dtype, device=r.device)
            grads = torch.autograd.grad(r, weights, grad_outputs=seed, allow_unused=True)
        s = sum(
            (
                (w.detach() * g).abs().sum()
                for w, g in zip(weights, grads, strict=True)
                if g is not None
            ),
            torch.zeros((), dtype=torch.float64, device=device),
        )
        return r.item(), s.item()
    finally:
        with torch.no_grad():
            for b, v in zip(biases, saved, strict=True):
                b.copy_(v)


def _log_score(
    model: nn.Module, shape: torch.Size, force_rescale: bool = False
) -> tuple[float, float | None]:
    """(log S, S): S from the plain float64 pass, or None where that overflowed."""
    if model_device(model).type == "mps":  # no float64 there: score a CPU copy
        model = copy.deepcopy(model).cpu()
    with batchnorm_removed(model):
        _prepare(model)
        if not force_rescale:
            r, s = _flow(model, shape, 1.0, 1.0)
            if math.isfinite(r) and math.isfinite(s):
                return (math.log(s) if s > 0 else -math.inf), s
        # The output of a probe at a tiny input gives the network's gain R, and the gradients
        # have about the same total gain: scale both by R**-1/2.
        r0, _ = _flow(model, shape, 2.0**-_PROBE_EXPONENT, 1.0, backward=False)
        if not (math.isfinite(r0) and r0 > 0):
            raise FloatingPointError(
                "synflow: the network's gain exceeds float64 even after rescaling "
                f"(probe output {r0!r})"
            )
        k = math.ceil((math.log2(r0) + _PROBE_EXPONENT) / 2)
        r, s = _flow(model, shape, 2.0**-k, 2.0**-k)
        if not (math.isfinite(r) and math.isfinite(s)):
            raise FloatingPointError(f"synflow: rescaled pass not finite (R={r!r}, S={s!r})")
        return (math.log(s) if s > 0 else -math.inf) + 2 * k * math.log(2.0), None


def log_synflow(
    model: nn.Module, inputs: torch.Tensor, targets: torch.Tensor | None = None
) -> float:
    """Natural log of the synflow score; finite where float64 synflow overflows.

    Exactly ``log(synflow)`` when that is finite. Past float64's range the rescaled pass is
    exact for positively homogeneous networks (see the module docstring) and approximate for
    networks with other non-linearities. ``-inf`` for a network whose score is zero.
    """
    return _log_score(model, inputs.shape[1:])[0]


def synflow(model: nn.Module, inputs: torch.Tensor, targets: torch.Tensor | None = None) -> float:
    """The synflow score in float64 (``inf`` only when it exceeds float64's range).

    Only the shape of ``inputs`` is used (``shape[1:]``): the input is a single all-ones sample.
    """
    log_s, s = _log_score(model, inputs.shape[1:])
    if s is not None:
        return s
    return math.exp(log_s) if log_s < _MAX_LOG else math.inf
