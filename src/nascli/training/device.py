"""Device selection and precision settings (device=auto|cpu|cuda|mps)."""

from __future__ import annotations

import contextlib
from collections.abc import Iterator

import torch


class DeviceError(ValueError):
    """The requested device is not available here."""


def resolve_device(name: str = "auto", gpus: list[int] | None = None) -> torch.device:
    """``auto`` picks CUDA, then MPS, then CPU; ``cuda`` uses the first index of ``gpus``."""
    mps = getattr(torch.backends, "mps", None)
    has_mps = bool(mps is not None and mps.is_available())
    if name == "auto":
        if torch.cuda.is_available():
            return torch.device("cuda", (gpus or [0])[0])
        return torch.device("mps") if has_mps else torch.device("cpu")
    if name == "cuda":
        if not torch.cuda.is_available():
            raise DeviceError("device=cuda but no CUDA GPU is visible; use device=cpu or auto")
        index = (gpus or [0])[0]
        if index >= torch.cuda.device_count():
            raise DeviceError(
                f"device.gpus=[{index}, ...] but only {torch.cuda.device_count()} GPU(s) exist"
            )
        return torch.device("cuda", index)
    if name == "mps":
        if not has_mps:
            raise DeviceError("device=mps but MPS is not available; use device=cpu or auto")
        return torch.device("mps")
    if name == "cpu":
        return torch.device("cpu")
    raise DeviceError(f"unknown device {name!r}; valid: auto, cpu, cuda, mps")


def setup_device(
    name: str = "auto", gpus: list[int] | None = None, threads: int | None = None,
    cudnn_benchmark: bool = True,
) -> torch.device:
    """Resolve the device and apply global settings (threads, cudnn.benchmark)."""
    device = resolve_device(name, gpus)
    if threads:
        torch.set_num_threads(int(threads))
    if device.type == "cuda":
        torch.backends.cudnn.benchmark = cudnn_benchmark
    return device


@contextlib.contextmanager
def autocast(device: torch.device, amp: str = "none") -> Iterator[None]:
    """Mixed precision (``bf16`` or ``fp16``) on CUDA; a no-op elsewhere or for ``none``."""
    if amp == "none" or device.type != "cuda":
        yield
        return
    dtype = torch.bfloat16 if amp == "bf16" else torch.float16
    with torch.autocast(device_type="cuda", dtype=dtype):
        yield
