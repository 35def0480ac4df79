"""Proxies read from one batch without labels: jacob_cov and naswot (Mellor et al. 2021)."""

from __future__ import annotations

from collections.abc import Callable

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn
from torch.overrides import TorchFunctionMode

from nascli.proxies._common import chunk_slices, logits
from nascli.proxies._state import set_data_mode

#: The reference's regulariser for the eigenvalues of the Jacobian correlation matrix.
_JACOB_K = 1e-5


def jacob_cov(
    model: nn.Module,
    inputs: torch.Tensor,
    targets: torch.Tensor | None = None,
    *,
    chunks: int = 1,
) -> float:
    """Jacobian covariance (Mellor et al. 2021, v1), as in Abdelfattah et al.'s code.

    J has one row per sample: the gradient of the sum of that sample's outputs with respect to
    its input. With v the eigenvalues of the correlation matrix of the rows (N x N), the score
    is -sum(log(v + k) + 1 / (v + k)), k = 1e-5; higher is better. NaN when a row is constant.
    """
    set_data_mode(model)
    rows = []
    for part in chunk_slices(inputs.shape[0], chunks):
        x = inputs[part].detach().clone().requires_grad_(True)
        (grad,) = torch.autograd.grad(logits(model(x)).sum(), x)
        rows.append(grad.reshape(grad.shape[0], -1).double().cpu())
    jac = torch.cat(rows).numpy()
    with np.errstate(invalid="ignore", divide="ignore"):
        corr = np.corrcoef(jac)
    if not np.all(np.isfinite(corr)):
        return float("nan")
    v = np.linalg.eigvalsh(corr)
    return float(-np.sum(np.log(v + _JACOB_K) + 1.0 / (v + _JACOB_K)))


#: Every way to apply a ReLU: ``nn.ReLU`` modules call ``F.relu``; networks that rectify a
#: shared state once (nascli's cells) call it directly or use the tensor methods.
_RELU_FUNCTIONS = frozenset(
    {F.relu, torch.relu, torch.relu_, torch.Tensor.relu, torch.Tensor.relu_}
)


class _ReluCodes(TorchFunctionMode):
    """Calls ``record(x > 0)`` with the input of every ReLU applied inside the block.

    A function mode sees functional ReLUs too, which module hooks would miss; a ReLU module
    reaches it once (as ``F.relu``), because the mode is off while it runs the function.
    """

    def __init__(self, record: Callable[[torch.Tensor], None]) -> None:
        super().__init__()
        self.record = record

    def __torch_function__(self, func, types, args=(), kwargs=None):
        if func in _RELU_FUNCTIONS:
            x = args[0] if args else kwargs["input"]
            self.record((x > 0).reshape(x.shape[0], -1))
        return func(*args, **(kwargs or {}))


def naswot(
    model: nn.Module,
    inputs: torch.Tensor,
    targets: torch.Tensor | None = None,
    *,
    chunks: int = 1,
) -> float:
    """NASWOT (Mellor et al. 2021): log|K| of the Hamming kernel of ReLU binary codes.

    Each ReLU applied in the forward pass (module or function) gives every sample a binary
    code c (which of its inputs are > 0); K[i, j] sums, over all ReLU calls, the number of
    units where samples i and j agree: ``c_i . c_j + (1 - c_i) . (1 - c_j)``, the units minus
    the Hamming distance. The score is log det K (``-inf`` if K is singular, e.g. for
    duplicate inputs).
    """
    set_data_mode(model)
    n = inputs.shape[0]
    parts = chunk_slices(n, chunks)
    # One forward pass: accumulate K on the device. Several: keep each call's codes (one byte
    # per unit and sample, on the CPU) so that pairs across chunks can be compared at the end.
    kernel = torch.zeros(n, n, dtype=torch.float64, device=inputs.device)
    codes: list[list[torch.Tensor]] = []
    call = 0

    def add(c: torch.Tensor) -> None:
        # c c' + (1 - c)(1 - c)' = 2 c c' - s 1' - 1 s' + units, s = ones per sample: one
        # matrix product, in float32 where its integer sums are exact (below 2**24).
        units = c.shape[1]
        c = c.to(torch.float32 if units < 2**24 else torch.float64)
        ones = c.sum(1, dtype=torch.float64)
        kernel.add_(2.0 * (c @ c.T).double() - ones[:, None] - ones[None, :] + units)

    def record(c: torch.Tensor) -> None:
        nonlocal call
        if len(parts) == 1:
            add(c)
        else:
            if call == len(codes):
                codes.append([])
            codes[call].append(c.cpu())
        call += 1

    with torch.no_grad(), _ReluCodes(record):
        for part in parts:
            call = 0
            model(inputs[part])
    if call == 0:
        raise ValueError("naswot needs a network with ReLU activations (none was applied)")
    for per_call in codes:
        add(torch.cat(per_call).to(inputs.device))
    _, logdet = np.linalg.slogdet(kernel.cpu().numpy())
    return float(logdet)
