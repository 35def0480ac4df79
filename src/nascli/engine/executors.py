"""Where candidate evaluations run: in this process, in a pool of worker processes, or on Ray.

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
from concurrent.futures import Future
from dataclasses import dataclass
from multiprocessing import connection as mp_connection
from typing import Any

from nascli.engine.ray_executor import RayExecutor
from nascli.engine.supervisor import Supervisor, Task, WorkerStartError, check_survival
from nascli.errors import UserError
from nascli.estimators.base import Estimate, Estimator, estimate
from nascli.registry import Registry

_WORKER_GPU: int | None = None


def pinned_gpu() -> int | None:
    """The GPU this pool worker is pinned to (``CUDA_VISIBLE_DEVICES`` shows it as ``cuda:0``),
    or None outside a GPU worker."""
    return _WORKER_GPU


class EvaluationTimeout(Exception):
    """Raised inside an in-process evaluation that ran past ``executor.timeout_s``."""


class LocalExecutor:
    """Runs each evaluation at once, in this process (``gpus`` is unused: the run's device).

    ``timeout_s`` interrupts an evaluation that runs longer (a timer signal, in the main
    thread) and records it as failed; ``retries`` has no use here (the search process is the
    worker: if it dies, the search resumes).
    """

    workers = 1

    def __init__(self, factory: Callable[[], Estimator], gpus: list[int] | None = None, *,
                 timeout_s: float | None = None, retries: int = 0) -> None:
        check_survival(timeout_s, retries)
        self.timeout_s = timeout_s
        self.estimator = factory()

    @classmethod
    def wrap(cls, estimator: Estimator) -> LocalExecutor:
        """An executor around an estimator that already exists (Python API)."""
        return cls(lambda: estimator)

    def submit(self, genotype: Any, seed: int | None = None, steps: int | None = None
               ) -> Future:
        """Evaluate now (``steps``: a schedule's training length); returns a finished future
        of ``(Estimate, worker name)``."""
        future: Future = Future()
        t0 = time.monotonic()
        try:
            with self._deadline():
                future.set_result((estimate(self.estimator, genotype, seed, steps), "local"))
        except EvaluationTimeout:
            future.set_result((Estimate.failed(f"timed out after {self.timeout_s:g} s",
                                               seconds=time.monotonic() - t0), "local"))
        except BaseException as exc:  # KeyboardInterrupt must reach the engine
            if not isinstance(exc, Exception):
                raise
            future.set_exception(exc)
        return future

    @contextlib.contextmanager
    def _deadline(self) -> Any:
        """Raise :class:`EvaluationTimeout` in the body after ``timeout_s`` seconds."""
        if self.timeout_s is None or threading.current_thread() is not threading.main_thread():
            yield
            return

        def expire(signum: int, frame: Any) -> None:
            raise EvaluationTimeout

        previous = signal.signal(signal.SIGALRM, expire)
        signal.setitimer(signal.ITIMER_REAL, float(self.timeout_s))
        try:
            yield
        finally:
            signal.setitimer(signal.ITIMER_REAL, 0)
            signal.signal(signal.SIGALRM, previous)

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


def _setup_worker(gpu: int | None, threads: int | None, fixed: bool, parent: int) -> None:
    """Signals, parent watch, GPU pinning and threads of a fresh worker process."""
    global _WORKER_GPU
    # Ctrl-C reaches the whole process group: only the search process handles it, and it
    # stops the workers itself (two quick Ctrl-C presses used to hang half-stopped workers)
    signal.signal(signal.SIGINT, signal.SIG_IGN)
    _die_with_parent(parent)
    if gpu is not None:
        os.environ["CUDA_VISIBLE_DEVICES"] = str(gpu)
        _WORKER_GPU = int(gpu)
    import torch

    from nascli.training.device import fix_threads

    if threads and fixed:  # the user's executor.threads: exactly that many
        fix_threads(threads)
    elif threads:  # the cores split evenly: a ceiling the worker's ThreadGovernor works under
        torch.set_num_threads(threads)


def _worker_main(conn: Any, factory: Callable[[], Estimator], gpu: int | None,
                 threads: int | None, fixed: bool, parent: int) -> None:
    """A pool worker: build the estimator once, then evaluate what arrives on ``conn``."""
    _setup_worker(gpu, threads, fixed, parent)
    name = f"pid{os.getpid()}" + (f"-gpu{gpu}" if gpu is not None else "")
    try:
        estimator = factory()
    except Exception as exc:  # reported to the search as one line
        conn.send(("start_failed", 0, f"{type(exc).__name__}: {exc}".splitlines()[0]))
        return
    conn.send(("ready", 0, name))
    while True:
        try:
            message = conn.recv()
        except (EOFError, OSError):
            return
        if message is None:
            return
        task_id, genotype, seed, steps = message
        try:
            outcome: Any = (estimate(estimator, genotype, seed, steps), name)
        except Exception as exc:  # the estimator crashed: a failed row
            outcome = (Estimate.failed(f"{type(exc).__name__}: {exc}"), name)
        conn.send(("done", task_id, outcome))


@dataclass
class _Process:
    """A pool worker as the search process sees it."""

    process: Any
    conn: Any
    gpu: int | None
    ready: bool = False


class PoolExecutor(Supervisor):
    """A pool of worker processes: one per entry of ``gpus`` (a GPU listed twice gets two
    workers), else ``workers`` CPU workers. Each builds its estimator once.

    A worker that dies mid-evaluation is replaced and the evaluation retried ``retries``
    times, then recorded as failed; one that runs past ``timeout_s`` seconds is killed and
    replaced, and its evaluation recorded as timed out (see :mod:`nascli.engine.supervisor`).
    """

    def __init__(
        self, factory: Callable[[], Estimator], gpus: list[int] | None = None, *,
        workers: int = 2, threads: int | None = None, timeout_s: float | None = None,
        retries: int = 0,
    ) -> None:
        if isinstance(workers, bool) or not isinstance(workers, int) or workers < 1:
            raise UserError(f"executor.workers={workers!r} is invalid; expected an integer >= 1")
        if threads is not None and (isinstance(threads, bool) or int(threads) < 1):
            raise UserError(f"executor.threads={threads!r} is invalid; expected an integer >= 1 "
                            "or null")
        gpus = list(gpus or [])
        super().__init__(len(gpus) if gpus else workers, timeout_s, retries)
        self._ctx = mp.get_context("spawn")  # CUDA and fork do not mix
        self._factory, self._gpus = factory, gpus
        self._fixed = threads is not None
        # GPU workers too: 4 workers x all cores would oversubscribe the CPU
        self._threads = threads or max(1, (os.cpu_count() or 1) // self.workers)
        self._start_failures: dict[int, int] = {}
        self.start()

    def _start(self, slot: int) -> _Process:
        ours, theirs = self._ctx.Pipe()
        gpu = self._gpus[slot] if self._gpus else None
        process = self._ctx.Process(
            target=_worker_main, name=f"nascli-worker-{slot}", daemon=True,
            args=(theirs, self._factory, gpu, self._threads, self._fixed, os.getpid()))
        process.start()
        theirs.close()
        return _Process(process, ours, gpu)

    def _send(self, handle: _Process, task: Task) -> None:
        handle.conn.send((task.id, task.genotype, task.seed, task.steps))

    def _collect(self, timeout: float) -> list[tuple[int, int, Any]]:
        slots = {id(h.conn): s for s, h in self._handles.items()}
        ready = mp_connection.wait([h.conn for h in self._handles.values()], timeout)
        done = []
        for conn in ready:
            slot = slots[id(conn)]
            try:
                kind, task_id, payload = conn.recv()
            except (EOFError, OSError):
                continue  # the worker died: _death reports it
            done += self._message(slot, kind, task_id, payload)
        return done

    def _message(self, slot: int, kind: str, task_id: int, payload: Any,
                 ) -> list[tuple[int, int, Any]]:
        if kind == "start_failed":
            raise WorkerStartError(f"executor: a worker could not start: {payload}")
        if kind == "ready":
            self._handles[slot].ready = True
            self._start_failures[slot] = 0
            return []
        return [(slot, task_id, payload)]

    def _death(self, handle: _Process) -> str | None:
        code = handle.process.exitcode
        if code is None:
            return None
        slot = next(s for s, h in self._handles.items() if h is handle)
        with contextlib.suppress(EOFError, OSError):
            while handle.conn.poll():  # its last words, e.g. why it could not start
                self._message(slot, *handle.conn.recv())
        if not handle.ready:
            self._start_failures[slot] = self._start_failures.get(slot, 0) + 1
            if self._start_failures[slot] >= 3:
                raise WorkerStartError(f"executor: a worker exited with code {code} three "
                                       "times before it was ready")
        if code < 0:
            with contextlib.suppress(ValueError):
                return f"died ({signal.Signals(-code).name})"
        return f"exited with code {code}"

    def _kill(self, handle: _Process) -> None:
        with contextlib.suppress(Exception):
            handle.process.kill()
        with contextlib.suppress(Exception):
            handle.process.join(timeout=5)
        handle.conn.close()

    def _stop(self, handle: _Process) -> None:
        with contextlib.suppress(Exception):
            handle.conn.send(None)
        handle.process.join(timeout=10)
        if handle.process.is_alive():
            self._kill(handle)
        handle.conn.close()

    def _ready(self, handle: _Process) -> bool:
        return handle.ready

    def _name(self, handle: _Process) -> str:
        return f"pid{handle.process.pid}" + (f"-gpu{handle.gpu}" if handle.gpu is not None
                                              else "")


def auto_executor(factory: Callable[[], Estimator], gpus: list[int] | None = None, *,
                  threads: int | None = None, timeout_s: float | None = None,
                  retries: int = 0) -> LocalExecutor | PoolExecutor:
    """``executor=auto``: a pool with one worker per entry of ``gpus`` (each GPU
    ``device.workers_per_gpu`` times) when that is more than one, else this process.

    On a GPU several small search-time networks train at once (docs/hardware.md). On CPUs
    the search stays in this process, whose threads follow the free cores;
    ``executor=pool executor.workers=2`` (one thread each) was 1.26x faster for 8 default
    candidates on 2 cores (benchmarks/bench_executors.py).
    """
    if gpus and len(gpus) > 1:
        return PoolExecutor(factory, gpus, threads=threads, timeout_s=timeout_s, retries=retries)
    return LocalExecutor(factory, gpus, timeout_s=timeout_s, retries=retries)


EXECUTORS: Registry[Callable[..., Any]] = Registry("executor")
EXECUTORS.register("auto", auto_executor)
EXECUTORS.register("local", LocalExecutor)
EXECUTORS.register("pool", PoolExecutor)
EXECUTORS.register("ray", RayExecutor)  # Ray itself is imported only when one is made
