"""Device selection and precision settings (device=auto|cpu|cuda|mps)."""

from __future__ import annotations

import contextlib
import logging
import os
import time
from collections.abc import Iterator
from dataclasses import dataclass, field

import torch
from torch import nn

log = logging.getLogger("nascli")

DEVICE_NAMES = ("auto", "cpu", "cuda", "mps")
AMP_MODES = ("none", "bf16", "fp16")
#: ``device.compile``: torch.compile modes for train-final's training step
#: (``reduce-overhead`` adds CUDA graphs)
COMPILE_MODES = ("off", "default", "reduce-overhead", "max-autotune")


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


def set_tf32(enabled: bool) -> None:
    """Allow (or forbid) TF32 tensor cores for fp32 matmuls and convolutions on CUDA.

    Uses torch's ``fp32_precision`` settings where they exist (torch >= 2.9; mixing them with
    the older ``allow_tf32`` flags is an error there), else the ``allow_tf32`` flags.
    """
    precision = "tf32" if enabled else "ieee"
    conv = getattr(torch.backends.cudnn, "conv", None)
    if conv is not None and hasattr(conv, "fp32_precision"):
        torch.backends.cuda.matmul.fp32_precision = precision
        conv.fp32_precision = precision
    else:  # pragma: no cover - torch < 2.9
        torch.backends.cuda.matmul.allow_tf32 = enabled
        torch.backends.cudnn.allow_tf32 = enabled


def cudnn_benchmark_mode(setting: bool | str, fixed_shapes: bool) -> bool:
    """Whether cuDNN should autotune: ``auto`` turns it on only when the shapes are fixed.

    A search brings new shapes with every candidate, and autotuning each of them cost more
    than it saved (issue 11: 47 and 18 s for the first candidates on an H200); train-final
    repeats one shape for hours.
    """
    if setting == "auto":
        return bool(fixed_shapes)
    return bool(setting)


def setup_device(
    name: str = "auto", gpus: list[int] | None = None, threads: int | None = None,
    cudnn_benchmark: bool | str = "auto", tf32: bool = True, fixed_shapes: bool = False,
) -> torch.device:
    """Resolve the device and apply global settings (threads; on CUDA cuDNN autotuning and
    TF32)."""
    device = resolve_device(name, gpus)
    if threads:
        fix_threads(int(threads))
    if device.type == "cuda":
        torch.backends.cudnn.benchmark = cudnn_benchmark_mode(cudnn_benchmark, fixed_shapes)
        set_tf32(tf32)
    return device


_THREADS_FIXED = False


def _sample_cpus(cpus: list[int], stat: list[str] | None = None,
                 ) -> tuple[float, float, float] | None:
    """(busy seconds of ``cpus``, this process's CPU seconds, clock) now, or from ``stat``
    (``/proc/stat`` lines, ``/proc/self/stat`` fields and the clock saved earlier)."""
    if stat is None:
        stat = _read_stat()
        if stat is None:
            return None
    lines, mine, clock = stat
    wanted = {f"cpu{c}" for c in cpus}
    busy = 0
    for line in lines:
        fields = line.split()
        if fields and fields[0] in wanted:
            values = [int(v) for v in fields[1:9]]
            busy += sum(values) - values[3] - values[4]  # all but idle and iowait
    hz = os.sysconf("SC_CLK_TCK")
    return busy / hz, (int(mine[11]) + int(mine[12])) / hz, clock


def _read_stat() -> tuple[list[str], list[str], float] | None:
    try:
        with open("/proc/stat") as f:
            lines = f.read().splitlines()
        with open("/proc/self/stat") as f:
            mine = f.read().rsplit(")", 1)[1].split()
    except OSError:
        return None
    return [line for line in lines if line.startswith("cpu")], mine, time.monotonic()


#: the machine when this module loaded: a governor's first call measures from here
_LOADED = _read_stat()


def fix_threads(threads: int) -> None:
    """Use exactly ``threads`` torch threads from now on (``device.threads``): no
    :class:`ThreadGovernor` adapts them."""
    global _THREADS_FIXED
    torch.set_num_threads(int(threads))
    _THREADS_FIXED = True


class ThreadGovernor:
    """Fits torch's CPU threads to the cores other processes leave free, before each candidate.

    A laptop or a shared box always runs something else. Measured on 2 cores beside one busy
    process (benchmarks/bench_shared_cpu.py): 2 threads ran a search candidate 2.7x slower than
    alone (OpenMP threads wait for the one that shares its core), 1 thread ran it at the same
    speed as alone. So before each candidate the governor reads how much CPU time other
    processes used on this process's cores since the last call (``/proc/stat`` minus
    ``/proc/self/stat``) and uses the free cores, at most the thread count it started with
    (torch's default, or a pool worker's share). It does nothing where ``device.threads`` was
    given, where someone else changed the thread count since, or without ``/proc`` (not Linux).
    """

    def __init__(self, device: torch.device | str = "cpu") -> None:
        self.cpu = torch.device(device).type == "cpu"
        self.ceiling = torch.get_num_threads()
        self.current = self.ceiling
        try:
            self.cpus = sorted(os.sched_getaffinity(0))
        except AttributeError:  # pragma: no cover - not Linux
            self.cpus = []
        self.last = self._sample()
        self.first = True

    def _sample(self) -> tuple[float, float, float] | None:
        """(busy seconds of this process's CPUs, this process's CPU seconds, wall clock)."""
        return _sample_cpus(self.cpus)

    def adjust(self) -> int | None:
        """Set and return the thread count for the next piece of work (None when the work
        runs on an accelerator)."""
        if not self.cpu:
            return None
        if _THREADS_FIXED or self.last is None or not self.cpus:
            return torch.get_num_threads()
        if torch.get_num_threads() != self.current:  # the user's choice wins from now on
            self.last = None
            return torch.get_num_threads()
        now = self._sample()
        started = _LOADED is not None and self.first
        if started and now is not None and now[2] - self.last[2] < 0.25:
            # the first call comes right after start-up: measure since this module loaded
            self.last = _sample_cpus(self.cpus, _LOADED) or self.last
        self.first = False
        if now is None:
            return self.current
        wall = now[2] - self.last[2]
        if wall < 0.25:  # too short to tell: keep the last decision
            return self.current
        others = max(0.0, (now[0] - self.last[0]) - (now[1] - self.last[1])) / wall
        self.last = now
        threads = max(1, min(self.ceiling, round(len(self.cpus) - others)))
        if threads != self.current:
            log.info("other processes use %.1f of %d cores: %d torch thread(s)", others,
                     len(self.cpus), threads)
            torch.set_num_threads(threads)
            self.current = threads
        return threads


_WARM: set[str] = set()


def warm_up(device: torch.device, channels_last: bool = True, amp: str = "none") -> float:
    """Pay a GPU's start-up costs once per process, not in the first candidate's time.

    A small conv net's forward, backward and SGD step creates the CUDA context, the cuBLAS
    and cuDNN handles and the allocator's first blocks. Random state is left untouched.
    Returns the seconds spent: 0.0 on the CPU or when this device is already warm.
    """
    key = str(device)
    if device.type == "cpu" or key in _WARM:
        return 0.0
    t0 = time.perf_counter()
    devices = [device] if device.type == "cuda" else []
    with torch.random.fork_rng(devices=devices):
        net = nn.Sequential(
            nn.Conv2d(3, 16, 3, padding=1, bias=False), nn.BatchNorm2d(16), nn.ReLU(),
            nn.Conv2d(16, 16, 3, padding=1, groups=16, bias=False), nn.Conv2d(16, 16, 1),
            nn.AdaptiveAvgPool2d(1), nn.Flatten(), nn.Linear(16, 10),
        ).to(device)
        x = torch.randn(8, 3, 16, 16).to(device)
        y = torch.zeros(8, dtype=torch.long, device=device)
        if channels_last:
            net, x = net.to(memory_format=torch.channels_last), x.contiguous(
                memory_format=torch.channels_last)
        optimizer = torch.optim.SGD(net.parameters(), lr=0.01)
        with autocast(device, amp):
            loss = nn.functional.cross_entropy(net(x), y)
        loss.backward()
        optimizer.step()
        if device.type == "cuda":
            torch.cuda.synchronize(device)
    _WARM.add(key)
    return time.perf_counter() - t0


def memory_short(device: torch.device, free_fraction: float = 0.25) -> bool:
    """True when less than ``free_fraction`` of a CUDA GPU's memory is free (then a search
    frees cached blocks after a candidate; otherwise that costs time for nothing)."""
    if device.type != "cuda":
        return False
    free, total = torch.cuda.mem_get_info(device)
    return free < free_fraction * total


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

    ``auto`` picks CUDA, then MPS, then CPU. ``gpus`` lists GPU indices. ``amp``: ``none``
    (fp32), ``bf16`` or ``fp16`` mixed precision on CUDA. ``tf32``: let fp32 matmuls and
    convolutions use TF32 tensor cores on CUDA. ``channels_last``: NHWC tensors (1.4-1.8x
    faster training on CPU for these networks). ``cudnn_benchmark``: ``auto`` (autotune only
    where shapes are fixed: train-final, not a search), true or false. ``threads``: torch's
    intra-op threads (``None``: the cores other processes leave free, see
    :class:`ThreadGovernor`; a number fixes the count).
    ``workers_per_gpu``: candidates evaluated at once on each GPU (4: search-time networks
    leave most of a GPU idle). ``compile``:
    ``off`` or a ``torch.compile`` mode for train-final's training step (``reduce-overhead``
    adds CUDA graphs); searches stay eager, as every candidate would compile a new graph.
    ``ranks``: train-final processes on the CPU, trained data-parallel (DDP over gloo) when
    above 1; on CUDA train-final runs one rank per GPU of ``gpus`` instead (docs/ddp.md).
    """

    name: str = "auto"
    gpus: list[int] = field(default_factory=list)
    amp: str = "none"
    tf32: bool = True
    channels_last: bool = True
    cudnn_benchmark: bool | str = "auto"
    threads: int | None = None
    workers_per_gpu: int = 4
    compile: str = "off"
    ranks: int = 1

    def __post_init__(self) -> None:
        if isinstance(self.compile, bool):  # YAML's true/false
            self.compile = "default" if self.compile else "off"
        if self.compile not in COMPILE_MODES:
            raise DeviceError(f"device.compile={self.compile!r} is invalid; expected one of "
                              f"{', '.join(COMPILE_MODES)}")
        if self.name not in DEVICE_NAMES:
            raise DeviceError(f"device.name={self.name!r} is invalid; expected one of "
                              f"{', '.join(DEVICE_NAMES)}")
        if self.amp not in AMP_MODES:
            raise DeviceError(f"device.amp={self.amp!r} is invalid; expected one of "
                              f"{', '.join(AMP_MODES)}")
        if self.cudnn_benchmark not in ("auto", True, False):
            raise DeviceError(f"device.cudnn_benchmark={self.cudnn_benchmark!r} is invalid; "
                              "expected auto, true or false")
        for key in ("threads", "workers_per_gpu", "ranks"):
            value = getattr(self, key)
            if value is None and key == "threads":
                continue
            if isinstance(value, bool) or not isinstance(value, int) or value < 1:
                hint = " or null" if key == "threads" else ""
                raise DeviceError(f"device.{key}={value!r} is invalid; expected an integer "
                                  f">= 1{hint}")
        bad = [g for g in self.gpus if not isinstance(g, int) or g < 0]
        if bad:
            raise DeviceError(f"device.gpus={list(self.gpus)!r} is invalid; expected GPU "
                              "indices >= 0")

    def setup(self, fixed_shapes: bool = False) -> torch.device:
        """Resolve the device and apply the process-wide settings (threads, cuDNN autotuning
        for ``fixed_shapes`` or not, TF32)."""
        return setup_device(self.name, list(self.gpus), self.threads, self.cudnn_benchmark,
                            self.tf32, fixed_shapes)

    def compiled(self, model: nn.Module) -> nn.Module:
        """``model`` itself, or compiled with ``torch.compile`` in mode ``compile`` (compiles
        lazily, on the first call; parameters stay shared with ``model``)."""
        if self.compile == "off":
            return model
        log.info("training step compiled with torch.compile(mode=%r): the first steps include "
                 "the compile time", self.compile)
        return torch.compile(model, mode=self.compile)

    def worker_gpus(self, device: torch.device) -> list[int] | None:
        """One entry per candidate evaluated at once on ``device``: each GPU of ``gpus`` (or
        the one ``device`` names) ``workers_per_gpu`` times; None off CUDA."""
        if device.type != "cuda":
            return None
        gpus = list(self.gpus) or [device.index or 0]
        return [g for g in gpus for _ in range(self.workers_per_gpu)]


@dataclass
class CPU(Device):
    """``device=cpu``."""

    name: str = "cpu"


@dataclass
class CUDA(Device):
    """``device=cuda``: GPU 0 in fp32 with TF32 and channels_last (the fastest measured
    setting), several candidates at once per GPU."""

    name: str = "cuda"
    gpus: list[int] = field(default_factory=lambda: [0])


@dataclass
class MPS(Device):
    """``device=mps`` (Apple GPUs)."""

    name: str = "mps"
