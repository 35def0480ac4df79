"""Data-parallel training (torch DDP) over several processes started by one job.

One rank per GPU of ``device.gpus`` (NCCL), or ``device.ranks`` processes on the CPU (gloo).
The job spawns its ranks itself (:func:`spawn`), so Hydra composes the config once and writes
one run directory; a rank reads who it is from the variables torchrun also sets (``RANK``,
``WORLD_SIZE``, ``LOCAL_RANK``, ``LOCAL_WORLD_SIZE``, ``MASTER_ADDR``, ``MASTER_PORT``), so the
same rank function runs under torchrun on several machines (docs/ddp.md).
"""

from __future__ import annotations

import contextlib
import json
import logging
import multiprocessing.connection
import os
import shutil
import signal
import socket
import sys
import tempfile
import threading
import time
import traceback
from collections.abc import Callable, Iterator
from dataclasses import dataclass, replace
from datetime import timedelta
from pathlib import Path
from typing import Any

import torch
import torch.distributed as dist
import torch.multiprocessing as mp
from torch import nn

from nascli.training.device import Device, DeviceError, fix_threads

log = logging.getLogger("nascli")

#: how long a rank waits in a collective (for a hung peer, or for rank 0's validation and
#: checkpoint between epochs) before it fails; a rank that dies is noticed at once
TIMEOUT = timedelta(minutes=30)
#: seconds a stopped rank gets to exit on SIGTERM before SIGKILL
GRACE = 10.0


class RankError(RuntimeError):
    """A rank crashed or was killed; one line, with the rank's traceback in ``details``."""

    def __init__(self, message: str, details: str = "") -> None:
        super().__init__(message)
        self.details = details


@dataclass(frozen=True)
class Ranks:
    """This process's place among the ranks: global ``rank`` of ``world``, ``local`` of
    ``local_world`` on this machine. ``Ranks()`` is a run without DDP."""

    rank: int = 0
    world: int = 1
    local: int = 0
    local_world: int = 1

    @property
    def is_main(self) -> bool:
        """Rank 0: the one that logs and writes."""
        return self.rank == 0

    @property
    def distributed(self) -> bool:
        return self.world > 1

    @classmethod
    def from_env(cls) -> Ranks:
        """The ranks torchrun (or :func:`spawn`) describes in the environment."""
        env = os.environ
        world = int(env.get("WORLD_SIZE", "1"))
        return cls(int(env.get("RANK", "0")), world, int(env.get("LOCAL_RANK", "0")),
                   int(env.get("LOCAL_WORLD_SIZE", str(world))))


def world_size(settings: Device, device: torch.device) -> int:
    """How many DDP ranks ``settings`` ask for on ``device``: one per GPU of ``device.gpus``
    on CUDA, ``device.ranks`` on the CPU, 1 elsewhere (1: no DDP)."""
    if device.type == "cuda":
        gpus = list(settings.gpus)
        if len(set(gpus)) != len(gpus):
            raise DeviceError(f"device.gpus={gpus!r} lists a GPU twice; train-final runs one "
                              "rank per GPU")
        count = torch.cuda.device_count()
        if any(g >= count for g in gpus):
            raise DeviceError(f"device.gpus={gpus!r} but only {count} GPU(s) exist")
        if settings.ranks > 1:
            log.warning("device.ranks=%d is for the CPU; on CUDA train-final runs one rank per "
                        "GPU of device.gpus", settings.ranks)
        return max(1, len(gpus))
    if device.type == "cpu":
        return settings.ranks
    if settings.ranks > 1:
        log.warning("device.ranks=%d is for the CPU; %s trains in one process", settings.ranks,
                    device.type)
    return 1


def rank_device(settings: Device, ranks: Ranks) -> tuple[Device, torch.device]:
    """This rank's settings and device, applied: GPU ``gpus[local]`` (``local`` where
    ``gpus`` is shorter, as under torchrun) on CUDA; on the CPU ``cores // local_world``
    torch threads unless ``device.threads`` fixes them."""
    if settings.name in ("cuda", "auto") and torch.cuda.is_available():
        gpus = list(settings.gpus)
        settings = replace(settings, gpus=[gpus[ranks.local] if ranks.local < len(gpus)
                                           else ranks.local])
    device = settings.setup(fixed_shapes=True)
    if device.type == "cuda":
        torch.cuda.set_device(device)
    elif device.type == "cpu" and settings.threads is None:
        fix_threads(max(1, _cores() // ranks.local_world))
    return settings, device


def _cores() -> int:
    try:
        return len(os.sched_getaffinity(0))
    except AttributeError:  # pragma: no cover - not Linux
        return os.cpu_count() or 1


@contextlib.contextmanager
def process_group(ranks: Ranks, device: torch.device) -> Iterator[None]:
    """Join the ranks' process group (NCCL on CUDA, gloo on the CPU; a collective fails after
    :data:`TIMEOUT`) for the block; nothing without DDP."""
    if not ranks.distributed:
        yield
        return
    backend = "nccl" if device.type == "cuda" else "gloo"
    dist.init_process_group(backend, init_method="env://", rank=ranks.rank,
                            world_size=ranks.world, timeout=TIMEOUT,
                            device_id=device if device.type == "cuda" else None)
    try:
        yield
    finally:
        dist.destroy_process_group()


def data_parallel(model: nn.Module, device: torch.device, ranks: Ranks,
                  find_unused: bool = False) -> nn.Module:
    """``model`` in DistributedDataParallel (gradients averaged over the ranks in backward;
    rank 0's weights and buffers broadcast at the start), or itself without DDP."""
    if not ranks.distributed:
        return model
    ids = [device.index] if device.type == "cuda" else None
    return nn.parallel.DistributedDataParallel(model, device_ids=ids,
                                               find_unused_parameters=find_unused)


def mean_over_ranks(value: float, ranks: Ranks, device: torch.device) -> float:
    """The mean of ``value`` over all ranks (every rank must call it); ``value`` without DDP."""
    if not ranks.distributed:
        return value
    t = torch.tensor([value], dtype=torch.float64, device=device)
    dist.all_reduce(t)
    return float(t) / ranks.world


def gather_on_main(obj: Any, ranks: Ranks) -> list[Any] | None:
    """Every rank's ``obj`` (picklable) on rank 0, in rank order; None on the other ranks and
    without DDP. Every rank must call it."""
    if not ranks.distributed:
        return None
    out: list[Any] | None = [None] * ranks.world if ranks.is_main else None
    dist.gather_object(obj, out, dst=0)
    return out


def fits_shared_memory(nbytes: int) -> bool:
    """Whether ``nbytes`` fit twice into the free shared memory (``/dev/shm``, where tensors
    passed to a rank go; a Docker container has 64 MB unless told otherwise)."""
    try:
        return shutil.disk_usage("/dev/shm").free >= 2 * nbytes
    except OSError:  # no /dev/shm (not Linux): torch shares through files elsewhere
        return True


def free_port() -> int:
    """A TCP port that nothing listens on now, on 127.0.0.1."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def spawn(fn: Callable[..., Any], args: tuple[Any, ...], world: int,
          expected: tuple[type[BaseException], ...] = ()) -> None:
    """Run ``fn(*args)`` in ``world`` new processes (fresh ones, from a fork server; see
    :func:`_context`) that form one process group on 127.0.0.1 and a free port, and wait for
    all of them.

    Arguments travel pickled (tensors in shared memory). When a rank fails, the others are
    stopped (SIGTERM, then SIGKILL after :data:`GRACE` s) and the failure is raised here: an
    exception of ``expected`` (the user's mistakes) as its one-line message in the first type
    of ``expected`` it is an instance of, anything else as :class:`RankError`. Ranks end with
    this process, even when it is killed (:func:`_end_with_job`).
    """
    ctx = _context(fn)
    port = free_port()
    alive, job_alive = ctx.Pipe(duplex=False)  # closes when this process ends, however
    with tempfile.TemporaryDirectory(prefix="nascli-ranks-") as reports:
        procs = [ctx.Process(target=_rank_entry, name=f"nascli-rank-{rank}",
                             args=(rank, world, port, dict(os.environ), alive, reports,
                                   expected, fn, args))
                 for rank in range(world)]
        try:
            for p in procs:
                p.start()
            failed = _wait(procs)
        finally:
            _stop(procs)
            job_alive.close()
            alive.close()
        if failed is not None:
            raise _failure(procs, failed, Path(reports), expected)


def prestart(fn: Callable[..., Any]) -> None:
    """Start the fork server that :func:`spawn` will use for ``fn`` (or any function of its
    module) now: it imports in the background while this process prepares the job."""
    if _context(fn).get_start_method() == "forkserver":
        from multiprocessing import forkserver

        forkserver.ensure_running()


def _context(fn: Callable[..., Any]) -> Any:
    """Where ranks come from: a fork server that imported ``fn``'s module (torch included)
    once, so each rank starts in a fraction of a second instead of importing it again; plain
    spawning for a function of ``__main__`` (the fork server cannot import that). Either way a
    rank is a fresh process, not a fork of this one (whose threads or CUDA state it would
    inherit). A rank gets the job's environment (:func:`_rank_entry`), but writes to the
    stdout and stderr the job had when its first rank started (the fork server's)."""
    if fn.__module__ == "__main__" or "forkserver" not in mp.get_all_start_methods():
        return mp.get_context("spawn")
    ctx = mp.get_context("forkserver")
    # DDP's constructor imports torch._dynamo: 1.7 s a rank, measured on a 2-core box
    ctx.set_forkserver_preload([fn.__module__, "torch._dynamo"])
    return ctx


def _wait(procs: list[Any]) -> int | None:
    """Wait until every process ended (None) or one failed (its index)."""
    running = {p.sentinel: i for i, p in enumerate(procs)}
    while running:
        for sentinel in multiprocessing.connection.wait(list(running)):
            i = running.pop(sentinel)
            procs[i].join()
            if procs[i].exitcode != 0:
                return i
    return None


def _stop(procs: list[Any]) -> None:
    """End the processes still running: SIGTERM, then SIGKILL after the grace period."""
    alive = [p for p in procs if p.is_alive()]
    for p in alive:
        p.terminate()
    deadline = time.monotonic() + GRACE
    for p in alive:
        p.join(max(0.0, deadline - time.monotonic()))
        if p.is_alive():
            p.kill()
            p.join()


def _failure(procs: list[Any], failed: int, reports: Path,
             expected: tuple[type[BaseException], ...]) -> BaseException:
    """The exception that says why the ranks stopped: a user's mistake that any rank reported
    (it explains the rest), else what the first rank to end badly (``failed``) reported or
    its exit code or signal: the ranks it left then fail in their next collective."""
    found = {r["rank"]: r for r in (json.loads(p.read_text())
                                    for p in sorted(reports.glob("rank*.json")))}
    users = [r for r in found.values() if r["user"] is not None]
    if users:
        return expected[users[0]["user"]](users[0]["message"])
    if failed in found:
        return RankError(f"rank {failed} failed: {found[failed]['message']}",
                         found[failed]["traceback"])
    code = procs[failed].exitcode
    how = f"exit code {code}" if code >= 0 else f"signal {signal.Signals(-code).name}"
    hint = " (out of memory?)" if code == -signal.SIGKILL else ""
    return RankError(f"rank {failed} ended with {how}{hint}")


def _rank_entry(rank: int, world: int, port: int, env: dict[str, str], alive: Any,
                reports: str, expected: tuple[type[BaseException], ...],
                fn: Callable[..., Any], args: tuple[Any, ...]) -> None:
    """A spawned rank: its environment, ``fn(*args)``, a report of why it failed, and a quick
    exit: the interpreter's teardown with torch loaded takes seconds, and the files the rank
    wrote are complete (atomic writes), its log handlers and streams flushed here."""
    _end_with_job(alive)
    os.environ.clear()  # the job's environment now, not the fork server's from its start
    os.environ.update(env)
    os.environ.update(MASTER_ADDR="127.0.0.1", MASTER_PORT=str(port), RANK=str(rank),
                      WORLD_SIZE=str(world), LOCAL_RANK=str(rank), LOCAL_WORLD_SIZE=str(world))
    code = 0
    try:
        fn(*args)
    except KeyboardInterrupt:  # Ctrl-C reaches every rank; the parent reports it
        code = 130
    except Exception as exc:
        user = next((i for i, e in enumerate(expected) if isinstance(exc, e)), None)
        _report(Path(reports), rank, exc, user)
        code = 1 if user is None else 2
    logging.shutdown()
    for stream in (sys.stdout, sys.stderr):
        with contextlib.suppress(Exception):
            stream.flush()
    os._exit(code)


def _report(reports: Path, rank: int, exc: Exception, user: int | None) -> None:
    """Write why this rank failed for :func:`_failure` (a user's mistake: index ``user`` of
    the expected types, its message; else the exception's type, message and traceback)."""
    text = str(exc).splitlines()[0] if str(exc) else ""
    report = {"rank": rank, "traceback": traceback.format_exc(),
              "user": user, "message": text if user is not None
              else f"{type(exc).__name__}: {text}".rstrip(": ")}
    tmp = reports / f".rank{rank}.tmp"
    tmp.write_text(json.dumps(report))
    tmp.rename(reports / f"rank{rank}.json")


def _end_with_job(alive: Any) -> None:
    """End this rank as soon as the job that started it is gone, even killed with SIGKILL:
    a thread waits for the end of ``alive``, a pipe only the job writes to (a rank blocked in
    a collective would not notice otherwise until the collective timed out, and the fork
    server, which ranks keep alive, does not end with the job)."""

    def watch() -> None:
        multiprocessing.connection.wait([alive])  # returns at end of file: the job is gone
        os._exit(1)

    threading.Thread(target=watch, name="nascli-job-watch", daemon=True).start()
