"""Worker slots that survive their workers: per-evaluation timeouts, crashed workers replaced,
retries. The process pool and the Ray executor are both a :class:`Supervisor`.

A supervisor owns ``slots`` workers and a queue of evaluations. A thread hands each free worker
the next evaluation and watches the busy ones:

- a worker that dies mid-evaluation (segfault, out-of-memory killer, SIGKILL, a lost Ray node)
  is replaced; its evaluation runs again on a fresh worker up to ``retries`` times, then becomes
  a failed row naming the worker and the reason;
- an evaluation that runs longer than ``timeout_s`` has its worker killed and replaced and
  becomes a failed row ("timed out after 600 s"); a slow candidate stays slow, so timeouts are
  not retried;
- a worker that cannot start at all (a bad config, no GPU) stops the search with one line
  (:class:`WorkerStartError`) instead of being restarted forever.
"""

from __future__ import annotations

import contextlib
import logging
import threading
import time
from collections import deque
from concurrent.futures import Future
from dataclasses import dataclass, field
from typing import Any

from nascli.errors import UserError
from nascli.estimators.base import Estimate

log = logging.getLogger("nascli")


class WorkerStartError(UserError):
    """A worker process (or actor) could not build its estimator."""


@dataclass
class Task:
    """One queued evaluation."""

    id: int
    genotype: Any
    seed: int | None
    steps: int | None = None
    future: Future = field(default_factory=Future)
    attempts: int = 0
    started: float = 0.0


def check_survival(timeout_s: float | None, retries: int) -> None:
    """One-line errors for bad ``executor.timeout_s`` / ``executor.retries``."""
    if timeout_s is not None and (isinstance(timeout_s, bool) or not timeout_s > 0):
        raise UserError(f"executor.timeout_s={timeout_s!r} is invalid; expected seconds > 0 "
                        "or null (no limit)")
    if isinstance(retries, bool) or not isinstance(retries, int) or retries < 0:
        raise UserError(f"executor.retries={retries!r} is invalid; expected an integer >= 0")


class Supervisor:
    """Base of executors whose workers may crash or hang (see the module docstring).

    Subclasses start, address and kill workers: :meth:`_start`, :meth:`_send`,
    :meth:`_collect`, :meth:`_death`, :meth:`_kill`, :meth:`_stop`, :meth:`_name`.
    """

    poll_s = 0.05

    def __init__(self, slots: int, timeout_s: float | None = None, retries: int = 0) -> None:
        check_survival(timeout_s, retries)
        self.workers = int(slots)
        self.timeout_s, self.retries = timeout_s, int(retries)
        self._queue: deque[Task] = deque()
        self._busy: dict[int, Task] = {}
        self._handles: dict[int, Any] = {}
        self._lock = threading.Lock()
        self._closed = threading.Event()
        self._error: BaseException | None = None
        self._ids = 0
        self._thread: threading.Thread | None = None

    # -- subclass interface --------------------------------------------------------------
    def _start(self, slot: int) -> Any:
        """Start the worker of ``slot``; returns its handle."""
        raise NotImplementedError

    def _send(self, handle: Any, task: Task) -> None:
        """Hand ``task`` to a started, idle worker."""
        raise NotImplementedError

    def _collect(self, timeout: float) -> list[tuple[int, int, Any]]:
        """Finished evaluations as ``(slot, task id, (Estimate, worker name))``, waiting up to
        ``timeout`` seconds for the first; may raise :class:`WorkerStartError`."""
        raise NotImplementedError

    def _death(self, handle: Any) -> str | None:
        """Why the worker of ``handle`` is gone ("died (SIGKILL)"), or None while it lives."""
        raise NotImplementedError

    def _kill(self, handle: Any) -> None:
        """End the worker at once."""
        raise NotImplementedError

    def _stop(self, handle: Any) -> None:
        """Ask an idle worker to finish."""
        self._kill(handle)

    def _name(self, handle: Any) -> str:
        """The worker's name for history rows."""
        return str(handle)

    def _ready(self, handle: Any) -> bool:
        """Whether the worker has built its estimator (a timeout counts from then on)."""
        return True

    # -- executor interface --------------------------------------------------------------
    def start(self) -> None:
        """Start every worker and the supervising thread."""
        for slot in range(self.workers):
            self._handles[slot] = self._start(slot)
        self._thread = threading.Thread(target=self._loop, name="nascli-supervisor",
                                        daemon=True)
        self._thread.start()

    def submit(self, genotype: Any, seed: int | None = None, steps: int | None = None
               ) -> Future:
        """Queue one evaluation (``steps``: a schedule's training length); the future yields
        ``(Estimate, worker name)``."""
        if self._error is not None:
            raise self._error
        with self._lock:
            self._ids += 1
            task = Task(self._ids, genotype, seed, steps)
            self._queue.append(task)
        self._dispatch()  # at once, not at the supervisor's next poll
        return task.future

    def shutdown(self, cancel: bool = False) -> None:
        """Stop the workers: after the running evaluations finish, or at once (``cancel``:
        running evaluations are lost and re-run on resume)."""
        if not cancel:
            while self._thread is not None and self._thread.is_alive() and self._pending():
                time.sleep(self.poll_s)
        self._closed.set()
        if self._thread is not None:
            self._thread.join(timeout=10)
        with self._lock:
            for task in list(self._queue) + list(self._busy.values()):
                task.future.cancel()
            self._queue.clear()
            self._busy.clear()
        for handle in self._handles.values():
            try:
                (self._kill if cancel else self._stop)(handle)
            except Exception:  # a dead worker is what we wanted
                log.debug("stopping a worker failed", exc_info=True)

    # -- the supervising thread ----------------------------------------------------------
    def _pending(self) -> bool:
        with self._lock:
            return bool(self._queue or self._busy)

    def _loop(self) -> None:
        while not self._closed.is_set():
            try:
                self._dispatch()
                for slot, task_id, outcome in self._collect(self.poll_s):
                    self._finish(slot, task_id, outcome)
                self._watch()
            except WorkerStartError as exc:
                self._fail_all(exc)
                return
            except Exception as exc:  # the search must hear of it, not hang
                log.exception("executor: supervisor failed")
                self._fail_all(exc)
                return

    def _dispatch(self) -> None:
        with self._lock:
            free = [s for s, h in self._handles.items()
                    if s not in self._busy and self._ready(h)]
            while free and self._queue:
                slot, task = free.pop(0), self._queue.popleft()
                task.started = time.monotonic()
                self._busy[slot] = task
                # a worker that just died: _watch retries or fails the task
                with contextlib.suppress(OSError, EOFError, ValueError):
                    self._send(self._handles[slot], task)

    def _finish(self, slot: int, task_id: int, outcome: Any) -> None:
        with self._lock:
            task = self._busy.get(slot)
            if task is None or task.id != task_id:  # a stale answer of a replaced worker
                return
            del self._busy[slot]
        if not task.future.done():
            task.future.set_result(outcome)

    def _watch(self) -> None:
        for slot in list(self._handles):
            with self._lock:  # no evaluation is handed to a worker while it is replaced
                self._watch_slot(slot)

    def _watch_slot(self, slot: int) -> None:
        """Replace the worker of ``slot`` if it died or overran; retry or fail its task."""
        now = time.monotonic()
        handle = self._handles[slot]
        task = self._busy.get(slot)
        reason = self._death(handle)
        timed_out = False
        if reason is None and task is not None and self.timeout_s is not None \
                and now - task.started > self.timeout_s:
            self._kill(handle)
            reason, timed_out = f"timed out after {self.timeout_s:g} s", True
        if reason is None:
            return
        name = self._name(handle)
        log.warning("executor: worker %s %s%s", name, reason,
                    "" if task is None else f" in evaluation with seed {task.seed}")
        self._handles[slot] = self._start(slot)  # replace it
        if task is None:
            return
        self._busy.pop(slot, None)
        if not timed_out and task.attempts < self.retries:
            task.attempts += 1
            self._queue.appendleft(task)
            return
        tries = f" ({task.attempts + 1} attempts)" if task.attempts else ""
        error = f"worker {name} {reason}{tries}" if not timed_out else reason
        task.future.set_result((Estimate.failed(error, seconds=now - task.started), name))

    def _fail_all(self, exc: BaseException) -> None:
        self._error = exc
        with self._lock:
            tasks = list(self._queue) + list(self._busy.values())
            self._queue.clear()
            self._busy.clear()
        for task in tasks:
            if not task.future.done():
                task.future.set_exception(exc)
