"""Stopping a long job cleanly: SIGTERM (what batch schedulers send) is handled like Ctrl-C,
and the clean-up that saves state cannot itself be interrupted by a second signal."""

from __future__ import annotations

import contextlib
import signal
import threading
from collections.abc import Iterator
from types import FrameType


class Terminated(KeyboardInterrupt):
    """The process received SIGTERM; handled like Ctrl-C, exit code 143."""


def _on_term(signum: int, frame: FrameType | None) -> None:
    raise Terminated("SIGTERM")


def _main_thread() -> bool:
    return threading.current_thread() is threading.main_thread()


@contextlib.contextmanager
def graceful() -> Iterator[None]:
    """Within the block, SIGTERM raises :class:`Terminated` (a ``KeyboardInterrupt``)."""
    if not _main_thread():
        yield
        return
    previous = signal.signal(signal.SIGTERM, _on_term)
    try:
        yield
    finally:
        signal.signal(signal.SIGTERM, previous)


@contextlib.contextmanager
def shielded() -> Iterator[None]:
    """Within the block, SIGINT and SIGTERM are ignored: state is being saved, and a second
    Ctrl-C must not leave it half written. The block is short (a few file writes)."""
    if not _main_thread():
        yield
        return
    previous = {s: signal.signal(s, signal.SIG_IGN) for s in (signal.SIGINT, signal.SIGTERM)}
    try:
        yield
    finally:
        for s, handler in previous.items():
            signal.signal(s, handler)


def ignore_from_now() -> None:
    """Ignore SIGINT and SIGTERM for the rest of the process: it is already stopping, and a
    second Ctrl-C must not cut the clean-up or turn the exit code into a signal."""
    if _main_thread():
        for s in (signal.SIGINT, signal.SIGTERM):
            signal.signal(s, signal.SIG_IGN)
