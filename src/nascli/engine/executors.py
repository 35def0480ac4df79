"""Where candidate evaluations run: in this process, or in a pool of worker processes.

Every executor is built from a picklable ``factory`` that makes the estimator (once per
process) and the GPU indices the run may use: ``Executor(factory, gpus=None, **options)``, with
``submit(genotype, seed) -> Future`` of ``(Estimate, worker name)``, ``workers`` and
``shutdown()``. A pool worker is pinned to one GPU (``CUDA_VISIBLE_DEVICES``) when GPUs are
given, so one box with several GPUs evaluates several candidates at once. ``EXECUTORS`` names
the built-in ones; the ``executor`` config group may name any class with ``_target_``.
"""

from __future__ import annotations

import contextlib
import ctypes
import multiprocessing as mp
import os
import signal
import sys
import threading
import time
from collections.abc import Callable
from concurrent.futures import Future, ProcessPoolExecutor
from typing import Any

from nascli.estimators.base import Estimate, Estimator
from nascli.registry import Registry

_WORKER_ESTIMATOR: Estimator | None = None
_WORKER_NAME = "local"
_WORKER_GPU: int | None = None


def pinned_gpu() -> int | None:
    """The GPU this pool worker is pinned to (``CUDA_VISIBLE_DEVICES`` shows it as ``cuda:0``),
    or None outside a GPU worker."""
    return _WORKER_GPU


class LocalExecutor:
    """Runs each evaluation at once, in this process (``gpus`` is unused: the run's device)."""

    workers = 1

    def __init__(self, factory: Callable[[], Estimator], gpus: list[int] | None = None) -> None:
        self.estimator = factory()

    @classmethod
    def wrap(cls, estimator: Estimator) -> LocalExecutor:
        """An executor around an estimator that already exists (Python API)."""
        return cls(lambda: estimator)

    def submit(self, genotype: Any, seed: int | None = None) -> Future:
        """Evaluate now; returns a finished future of ``(Estimate, worker name)``."""
        future: Future = Future()
        try:
            future.set_result((self.estimator(genotype, seed=seed), "local"))
        except BaseException as exc:  # KeyboardInterrupt must reach the engine
            if not isinstance(exc, Exception):
                raise
            future.set_exception(exc)
        return future

    def shutdown(self, cancel: bool = False) -> None:
        """Nothing to release."""


def _die_with_parent(parent: int) -> None:
    """End this worker when the search process dies, even by SIGKILL: a parent-death signal
    on Linux, and a watchdog thread everywhere (an orphaned worker would hold memory, and a
    GPU, forever)."""
    if sys.platform.startswith("linux"):
        with contextlib.suppress(OSError, AttributeError):
            libc = ctypes.CDLL("libc.so.6", use_errno=True)
            libc.prctl(1, signal.SIGKILL)  # PR_SET_PDEATHSIG
    if os.getppid() != parent:  # the parent died before prctl took effect
        os._exit(1)

    def watch() -> None:
        while True:
            time.sleep(1.0)
            if os.getppid() != parent:
                os._exit(1)

    threading.Thread(target=watch, name="nascli-parent-watchdog", daemon=True).start()


def _init_worker(factory: Callable[[], Estimator], gpu_queue: Any, threads: int | None,
                 fixed: bool, parent: int) -> None:
    global _WORKER_ESTIMATOR, _WORKER_NAME, _WORKER_GPU
    # Ctrl-C reaches the whole process group: only the search process handles it, and it
    # stops the workers itself (two quick Ctrl-C presses used to hang half-stopped workers)
    signal.signal(signal.SIGINT, signal.SIG_IGN)
    _die_with_parent(parent)
    gpu = gpu_queue.get() if gpu_queue is not None else None
    if gpu is not None:
        os.environ["CUDA_VISIBLE_DEVICES"] = str(gpu)
        _WORKER_GPU = int(gpu)
    import torch

    from nascli.training.device import fix_threads

    if threads and fixed:  # the user's executor.threads: exactly that many
        fix_threads(threads)
    elif threads:  # the cores split evenly: a ceiling the worker's ThreadGovernor works under
        torch.set_num_threads(threads)
    _WORKER_NAME = f"pid{os.getpid()}" + (f"-gpu{gpu}" if gpu is not None else "")
    _WORKER_ESTIMATOR = factory()


def _evaluate_in_worker(genotype: Any, seed: int | None) -> tuple[Estimate, str]:
    assert _WORKER_ESTIMATOR is not None, "worker was not initialised"
    return _WORKER_ESTIMATOR(genotype, seed=seed), _WORKER_NAME


class PoolExecutor:
    """A process pool: one worker per entry of ``gpus`` (a GPU listed twice gets two workers),
    else ``workers`` CPU workers."""

    def __init__(
        self, factory: Callable[[], Estimator], gpus: list[int] | None = None, *,
        workers: int = 2, threads: int | None = None,
    ) -> None:
        if int(workers) < 1:
            raise ValueError(f"workers={workers!r} is invalid; expected an integer >= 1")
        if threads is not None and int(threads) < 1:
            raise ValueError(f"threads={threads!r} is invalid; expected an integer >= 1 or null")
        ctx = mp.get_context("spawn")  # CUDA and fork do not mix
        gpus = list(gpus or [])
        self.workers = len(gpus) if gpus else workers
        queue = None
        if gpus:
            queue = ctx.Manager().Queue()
            for g in gpus:
                queue.put(g)
        fixed = threads is not None
        if threads is None:  # GPU workers too: 4 workers x all cores oversubscribe the CPU
            threads = max(1, (os.cpu_count() or 1) // self.workers)
        self._pool = ProcessPoolExecutor(
            max_workers=self.workers, mp_context=ctx, initializer=_init_worker,
            initargs=(factory, queue, threads, fixed, os.getpid()),
        )

    def submit(self, genotype: Any, seed: int | None = None) -> Future:
        """Queue one evaluation; the future yields ``(Estimate, worker name)``."""
        return self._pool.submit(_evaluate_in_worker, genotype, seed)

    def shutdown(self, cancel: bool = False) -> None:
        """Stop the workers: after the running evaluations finish, or at once (``cancel``,
        after an interrupt: running evaluations are lost and re-run on resume)."""
        if not cancel:
            self._pool.shutdown(wait=True, cancel_futures=True)
            return
        processes = list((getattr(self._pool, "_processes", None) or {}).values())
        self._pool.shutdown(wait=False, cancel_futures=True)
        for p in processes:
            with contextlib.suppress(Exception):
                p.terminate()
        for p in processes:
            with contextlib.suppress(Exception):
                p.join(timeout=5)
                if p.is_alive():
                    p.kill()


def auto_executor(factory: Callable[[], Estimator], gpus: list[int] | None = None, *,
                  threads: int | None = None) -> LocalExecutor | PoolExecutor:
    """``executor=auto``: a pool with one worker per entry of ``gpus`` (each GPU
    ``device.workers_per_gpu`` times) when that is more than one, else this process.

    On CPUs one process using every core beat a pool of processes sharing them; on a GPU
    several small search-time networks train at once (docs/hardware.md).
    """
    if gpus and len(gpus) > 1:
        return PoolExecutor(factory, gpus, threads=threads)
    return LocalExecutor(factory, gpus)


EXECUTORS: Registry[Callable[..., Any]] = Registry("executor")
EXECUTORS.register("auto", auto_executor)
EXECUTORS.register("local", LocalExecutor)
EXECUTORS.register("pool", PoolExecutor)
