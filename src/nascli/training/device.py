"""Device selection and precision settings (device=auto|cpu|cuda|mps)."""

from __future__ import annotations

import contextlib
from collections.abc import Iterator
from dataclasses import dataclass, field

import torch

DEVICE_NAMES = ("auto", "cpu", "cuda", "mps")
AMP_MODES = ("none", "bf16", "fp16")


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


@dataclass
class Device:
    """Where training runs and how: the ``device`` config group (``device=auto``).

    ``auto`` picks CUDA, then MPS, then CPU. ``gpus`` lists GPU indices (the pool executor
    runs one worker per entry). ``amp``: ``none``, ``bf16`` or ``fp16`` mixed precision on
    CUDA. ``channels_last``: NHWC tensors (1.4-1.8x faster training on CPU for these networks).
    ``threads``: torch's intra-op threads (``None``: torch's default).
    """

    name: str = "auto"
    gpus: list[int] = field(default_factory=list)
    amp: str = "none"
    channels_last: bool = True
    cudnn_benchmark: bool = True
    threads: int | None = None

    def __post_init__(self) -> None:
        if self.name not in DEVICE_NAMES:
            raise DeviceError(f"device.name={self.name!r} is invalid; expected one of "
                              f"{', '.join(DEVICE_NAMES)}")
        if self.amp not in AMP_MODES:
            raise DeviceError(f"device.amp={self.amp!r} is invalid; expected one of "
                              f"{', '.join(AMP_MODES)}")
        if self.threads is not None and self.threads < 1:
            raise DeviceError(f"device.threads={self.threads!r} is invalid; expected an integer "
                              ">= 1 or null")
        bad = [g for g in self.gpus if not isinstance(g, int) or g < 0]
        if bad:
            raise DeviceError(f"device.gpus={list(self.gpus)!r} is invalid; expected GPU "
                              "indices >= 0")

    def setup(self) -> torch.device:
        """Resolve the device and apply the process-wide settings (threads, cudnn.benchmark)."""
        return setup_device(self.name, list(self.gpus), self.threads, self.cudnn_benchmark)


@dataclass
class CPU(Device):
    """``device=cpu``."""

    name: str = "cpu"


@dataclass
class CUDA(Device):
    """``device=cuda``: GPU 0 with bf16 autocast unless told otherwise."""

    name: str = "cuda"
    gpus: list[int] = field(default_factory=lambda: [0])
    amp: str = "bf16"


@dataclass
class MPS(Device):
    """``device=mps`` (Apple GPUs)."""

    name: str = "mps"
