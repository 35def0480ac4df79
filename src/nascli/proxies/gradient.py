"""Loss-gradient proxies of Abdelfattah et al. 2021: grad_norm, snip, grasp and fisher.

All four score one batch with the network in train mode (BatchNorm on batch statistics, as
the reference code) and sum a per-weight or per-channel saliency over convolution and linear
layers. ``chunks`` splits the batch (after running out of memory); every chunk's loss is
weighted by its share of the batch, so the chunked score equals the full-batch score except
for BatchNorm's batch statistics, which then come from each chunk.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn

from nascli.proxies._common import (
    LossFn,
    chunk_slices,
    logits,
    loss_gradients,
    require_targets,
    scored_layers,
    scored_weights,
)
from nascli.proxies._state import set_data_mode


def _total(values: list[torch.Tensor]) -> float:
    return float(sum(v.double().sum().item() for v in values))


def grad_norm(
    model: nn.Module,
    inputs: torch.Tensor,
    targets: torch.Tensor,
    *,
    chunks: int = 1,
    loss_fn: LossFn = F.cross_entropy,
) -> float:
    """Sum over layers of the L2 norm of the loss gradient of each layer's weight."""
    targets = require_targets(targets, "grad_norm")
    set_data_mode(model)
    weights = scored_weights(model)
    grads = loss_gradients(model, inputs, targets, weights, chunks, loss_fn)
    return _total([g.norm() for g in grads])


def snip(
    model: nn.Module,
    inputs: torch.Tensor,
    targets: torch.Tensor,
    *,
    chunks: int = 1,
    loss_fn: LossFn = F.cross_entropy,
) -> float:
    """SNIP (Lee et al. 2019): sum of |theta * dL/dtheta| over conv and linear weights.

    The reference takes the gradient of a multiplicative all-ones mask, which equals
    ``theta * dL/dtheta``.
    """
    targets = require_targets(targets, "snip")
    set_data_mode(model)
    weights = scored_weights(model)
    grads = loss_gradients(model, inputs, targets, weights, chunks, loss_fn)
    return _total([(w.detach() * g).abs() for w, g in zip(weights, grads, strict=True)])


def grasp(
    model: nn.Module,
    inputs: torch.Tensor,
    targets: torch.Tensor,
    *,
    chunks: int = 1,
    loss_fn: LossFn = F.cross_entropy,
    temperature: float = 1.0,
) -> float:
    """GraSP (Wang et al. 2020) as the reference code sums it: -sum(theta * H g).

    g is the loss gradient and H g the Hessian-gradient product, both over conv and linear
    weights. The reference negates GraSP's saliency because accuracy correlated negatively
    with the unsigned one; we keep its sign.
    """
    targets = require_targets(targets, "grasp")
    set_data_mode(model)
    weights = scored_weights(model)

    def loss_of(part: slice) -> torch.Tensor:
        out = logits(model(inputs[part])) / temperature
        return loss_fn(out, targets[part]) * ((part.stop - part.start) / inputs.shape[0])

    g = loss_gradients(
        model, inputs, targets, weights, chunks, lambda out, t: loss_fn(out / temperature, t)
    )
    hg = [torch.zeros_like(w) for w in weights]
    for part in chunk_slices(inputs.shape[0], chunks):
        grads = torch.autograd.grad(loss_of(part), weights, create_graph=True, allow_unused=True)
        z = sum(
            ((gi * gf).sum() for gi, gf in zip(g, grads, strict=True) if gf is not None),
            torch.zeros((), device=inputs.device),
        )
        if not z.requires_grad:  # no weight reaches the loss
            continue
        for acc, h in zip(hg, torch.autograd.grad(z, weights, allow_unused=True), strict=True):
            if h is not None:
                acc.add_(h)
    return _total([-(w.detach() * h) for w, h in zip(weights, hg, strict=True)])


def fisher(
    model: nn.Module,
    inputs: torch.Tensor,
    targets: torch.Tensor,
    *,
    chunks: int = 1,
    loss_fn: LossFn = F.cross_entropy,
) -> float:
    """Fisher (Theis et al. 2018; Turner et al. 2020) as summed by the reference code.

    Per output channel k of each conv/linear layer: 0.5 * mean over the batch of
    (sum over positions of activation * dL/dactivation)**2, taken at the layer's output. The
    reference spreads each channel's value over the weights of that channel before summing,
    so a channel counts once per weight it has (``weight[k].numel()``); we do the same.
    """
    targets = require_targets(targets, "fisher")
    set_data_mode(model)
    layers = scored_layers(model)
    weights = scored_weights(model)
    sums = {
        id(m): torch.zeros(m.weight.shape[0], dtype=torch.float64, device=inputs.device)
        for m in layers
    }

    def on_output(module: nn.Module, _args: object, out: torch.Tensor) -> None:
        act = out.detach()

        def on_grad(grad: torch.Tensor) -> None:
            g = act * grad
            g_nk = g.sum(dim=tuple(range(2, g.dim()))) if g.dim() > 2 else g
            sums[id(module)].add_(g_nk.double().pow(2).sum(0))

        if out.requires_grad:
            out.register_hook(on_grad)

    handles = [m.register_forward_hook(on_output) for m in layers]
    try:
        loss_gradients(model, inputs, targets, weights, chunks, loss_fn)
    finally:
        for h in handles:
            h.remove()
    n = inputs.shape[0]
    return _total([0.5 * sums[id(m)] / n * m.weight[0].numel() for m in layers])
