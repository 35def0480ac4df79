"""Zero-cost proxies: score an untrained network from one batch, by name.

``compute(name, model, inputs, targets, **options) -> float`` works on any ``nn.Module``
classifier (logits, or a tuple whose first item is the logits), on the model's device, and
leaves the model exactly as it was. Higher scores mean higher expected accuracy. Every
function in :data:`PROXIES` has the same guarantees; :func:`register_proxy` adds one.

Out of accelerator memory, a proxy that takes ``chunks`` is retried with the batch split in
halves, then quarters, ... (its chunks accumulate to the full-batch score); the others
(synflow, which uses one sample; params; flops; zen) re-raise.
"""

from __future__ import annotations

import contextlib
import functools
import inspect
from collections.abc import Callable, Iterator
from typing import Any

import torch
from torch import nn

from nascli.proxies._state import (
    free_accelerator_memory,
    is_oom,
    model_device,
    model_dtype,
    preserved,
    seeded,
)
from nascli.proxies.activations import jacob_cov, naswot
from nascli.proxies.cost import count_macs, count_params, flops, params
from nascli.proxies.gradient import fisher, grad_norm, grasp, snip
from nascli.proxies.synflow import log_synflow, synflow
from nascli.proxies.zen import zen
from nascli.registry import Registry

ProxyFn = Callable[..., float]

#: name -> guarded proxy function ``(model, inputs, targets=None, **options) -> float``.
PROXIES: Registry[ProxyFn] = Registry("proxy")


@contextlib.contextmanager
def _plain_autograd(device: torch.device) -> Iterator[None]:
    """Gradients on and autocast off, whatever the caller's context: the definitions fix the
    precision (float64 for synflow, the model's dtype otherwise) and most need gradients."""
    with contextlib.ExitStack() as stack:
        stack.enter_context(torch.inference_mode(False))
        stack.enter_context(torch.enable_grad())
        if device.type in ("cpu", "cuda", "mps", "xpu"):
            stack.enter_context(torch.autocast(device.type, enabled=False))
        yield


def _as_batch(
    t: torch.Tensor | None, model: nn.Module, labels: bool = False
) -> torch.Tensor | None:
    """On the model's device (inputs also in its dtype), and usable by autograd: a tensor
    made under ``torch.inference_mode`` cannot be saved for backward, so it is copied."""
    if t is None:
        return None
    t = t.to(model_device(model))
    if not labels and t.is_floating_point():
        t = t.to(model_dtype(model))
    if t.is_inference():
        with torch.inference_mode(False):
            t = t.clone()
    return t


def _guarded(fn: ProxyFn) -> ProxyFn:
    """Wrap a raw proxy: device and dtype of the inputs, restore the model, seed, retry on OOM."""
    splittable = "chunks" in inspect.signature(fn).parameters

    @functools.wraps(fn)
    def run(
        model: nn.Module,
        inputs: torch.Tensor,
        targets: torch.Tensor | None = None,
        *,
        seed: int = 0,
        **options: Any,
    ) -> float:
        device = model_device(model)
        inputs, targets = _as_batch(inputs, model), _as_batch(targets, model, labels=True)
        chunks = 1
        while True:
            try:
                with seeded(device, seed), preserved(model), _plain_autograd(device):
                    kwargs = {"chunks": chunks} if splittable else {}
                    return float(fn(model, inputs, targets, **kwargs, **options))
            except Exception as error:  # retry only out-of-memory, below
                if not (splittable and is_oom(error) and chunks < inputs.shape[0]):
                    raise
            # Outside the except block, so the failed attempt's tensors can be freed.
            free_accelerator_memory(device)
            chunks *= 2

    run.splittable = splittable  # type: ignore[attr-defined]
    return run


def register_proxy(name: str, fn: ProxyFn | None = None) -> Any:
    """Register ``fn(model, inputs, targets, [chunks=], **options) -> float`` under ``name``.

    Usable as a decorator. The registered function is guarded (see :func:`compute`); give it
    a ``chunks`` keyword if it can accumulate its score over parts of the batch.
    """

    def add(f: ProxyFn) -> ProxyFn:
        PROXIES.register(name, _guarded(f))
        return f

    return add(fn) if fn is not None else add


def compute(
    name: str,
    model: nn.Module,
    inputs: torch.Tensor,
    targets: torch.Tensor | None = None,
    **options: Any,
) -> float:
    """Score ``model`` with the proxy ``name`` on a batch (``inputs`` N x C x H x W).

    Runs on the model's device; the model's weights, buffers, modes, ``requires_grad`` flags,
    gradients, dtype and device are unchanged afterwards, and so is the global random state.
    ``options`` go to the proxy (``loss_fn``, ``seed``, ...).
    """
    return PROXIES.get(name)(model, inputs, targets, **options)


# The built-in proxies, one line each.
register_proxy("synflow", synflow)
register_proxy("log_synflow", log_synflow)
register_proxy("snip", snip)
register_proxy("grasp", grasp)
register_proxy("fisher", fisher)
register_proxy("grad_norm", grad_norm)
register_proxy("jacob_cov", jacob_cov)
register_proxy("naswot", naswot)
register_proxy("params", params)
register_proxy("macs", flops)
register_proxy("flops", flops)  # the name users know; it counts multiply-adds too
register_proxy("zen", zen)

__all__ = [
    "PROXIES",
    "ProxyFn",
    "compute",
    "count_macs",
    "count_params",
    "register_proxy",
]
