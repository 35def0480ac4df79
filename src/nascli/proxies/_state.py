"""Leaving a model exactly as it was: snapshot and restore around a proxy, and scoring modes.

A proxy may change anything while it scores (dtype, mode, ``requires_grad``, BatchNorm
statistics, even weights in place); :func:`preserved` puts every bit of it back. Restoring
re-attaches the original tensor objects (so optimizers and views that hold them stay valid) and
then copies the saved values into them (so in-place edits are undone bitwise).
"""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass

import torch
from torch import nn
from torch.nn.modules.batchnorm import _BatchNorm
from torch.nn.modules.dropout import _DropoutNd


@dataclass
class _ParamState:
    param: nn.Parameter
    data: torch.Tensor  # the original tensor object behind ``param.data``
    saved: torch.Tensor  # its values at entry
    requires_grad: bool
    grad: torch.Tensor | None  # the original ``.grad`` object (detached while scoring)
    saved_grad: torch.Tensor | None


@dataclass
class _BufferState:
    module: nn.Module
    name: str
    tensor: torch.Tensor
    saved: torch.Tensor


def model_device(model: nn.Module) -> torch.device:
    """The device of the model's first parameter or buffer (CPU for a stateless model)."""
    for t in model.parameters():
        return t.device
    for t in model.buffers():
        return t.device
    return torch.device("cpu")


def model_dtype(model: nn.Module) -> torch.dtype:
    """The dtype of the model's first floating-point parameter (float32 if none)."""
    for p in model.parameters():
        if p.is_floating_point():
            return p.dtype
    return torch.float32


@contextmanager
def preserved(model: nn.Module) -> Iterator[nn.Module]:
    """Run a block that may change ``model`` freely; restore it bitwise on exit.

    Restored: parameter values, dtype and device (the same tensor objects), ``requires_grad``,
    ``.grad`` (the original object, or None), every buffer (BatchNorm running statistics and
    ``num_batches_tracked``) and the train/eval flag of every submodule. Inside the block every
    ``.grad`` starts as None, so a proxy never mixes its gradients with the caller's.
    """
    params = []
    for p in model.parameters():  # deduplicated: shared parameters appear once
        grad = p.grad
        params.append(
            _ParamState(
                param=p,
                data=p.data,
                saved=p.detach().clone(),
                requires_grad=p.requires_grad,
                grad=grad,
                saved_grad=None if grad is None else grad.detach().clone(),
            )
        )
        p.grad = None
    buffers = [
        _BufferState(module=m, name=n, tensor=b, saved=b.detach().clone())
        for m in model.modules()
        for n, b in m._buffers.items()
        if b is not None
    ]
    modes = [(m, m.training) for m in model.modules()]
    try:
        yield model
    finally:
        with torch.no_grad():
            for s in params:
                s.param.grad = None  # before .data: a grad of another dtype would block it
                s.param.data = s.data
                s.data.copy_(s.saved)
                s.param.requires_grad_(s.requires_grad)
                if s.grad is not None:
                    s.grad.copy_(s.saved_grad)
                s.param.grad = s.grad
            for b in buffers:
                b.module._buffers[b.name] = b.tensor
                b.tensor.copy_(b.saved)
        for m, training in modes:
            m.training = training


def _identity(x: torch.Tensor) -> torch.Tensor:
    return x


@contextmanager
def batchnorm_removed(model: nn.Module) -> Iterator[nn.Module]:
    """Make every BatchNorm layer an identity inside the block (as if built without BN).

    Synflow's reference code scores a copy of the network built without BatchNorm; replacing
    the layer's forward with the identity is the same function, uses no batch statistics and
    updates no running statistics.
    """
    patched = []
    for m in model.modules():
        if isinstance(m, _BatchNorm):
            patched.append((m, m.__dict__.get("forward")))
            m.forward = _identity
    try:
        yield model
    finally:
        for m, previous in patched:
            if previous is None:
                del m.forward
            else:
                m.forward = previous


def set_data_mode(model: nn.Module) -> None:
    """Train mode (BatchNorm on batch statistics, as the reference code) without dropout.

    Dropout is switched off so that a score is a function of the architecture, the weights and
    the batch, not of dropout noise; BatchNorm running statistics are restored by
    :func:`preserved`.
    """
    model.train()
    for m in model.modules():
        if isinstance(m, _DropoutNd):  # the alpha dropouts too
            m.eval()


@contextmanager
def seeded(device: torch.device, seed: int) -> Iterator[None]:
    """Seed the CPU (and ``device``'s) generator inside the block; the caller's state returns.

    Makes anything random inside a model (drop-path, say) the same on every call.
    """
    index = None
    if device.type == "cuda":
        index = device.index if device.index is not None else torch.cuda.current_device()
    with torch.random.fork_rng(devices=[] if index is None else [index]):
        torch.random.default_generator.manual_seed(seed)
        if index is not None:
            with torch.cuda.device(index):
                torch.cuda.manual_seed(seed)
        yield


def is_oom(error: BaseException) -> bool:
    """Whether ``error`` is an out-of-memory error of an accelerator (or of the allocator)."""
    oom_type = getattr(torch, "OutOfMemoryError", torch.cuda.OutOfMemoryError)
    if isinstance(error, oom_type | torch.cuda.OutOfMemoryError):
        return True
    return isinstance(error, RuntimeError) and "out of memory" in str(error).lower()


def free_accelerator_memory(device: torch.device) -> None:
    """Return cached blocks to the device after an out-of-memory error."""
    if device.type == "cuda":
        torch.cuda.empty_cache()
    elif device.type == "mps" and hasattr(torch, "mps"):
        torch.mps.empty_cache()
