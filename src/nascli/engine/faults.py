"""Crash points for the crash-test suite: ``NASCLI_FAULT=point@n`` kills the process with
SIGKILL the ``n``-th time it reaches ``point`` (like SQLite's fault injection);
``NASCLI_FAULT=point@n:enospc`` raises "No space left on device" there instead.

The engine marks its write points (``history:before``, ``history:torn``, ``history:after``,
``write:state.pt``, ``write:best.json``, ...); without the variable a point costs one
dictionary lookup. Tests kill a real search at every point and check that a resume gives the
same history as an uninterrupted run.
"""

from __future__ import annotations

import errno
import os
import signal
from collections import Counter

_counts: Counter[str] = Counter()
_spec: tuple[str, int, str] | bool | None = False  # False: not read yet


def _target() -> tuple[str, int, str] | None:
    global _spec
    if _spec is False:
        raw = os.environ.get("NASCLI_FAULT", "")
        name, _, rest = raw.partition("@")
        nth, _, kind = rest.partition(":")
        _spec = (name, int(nth or 1), kind or "kill") if name else None
    return _spec  # type: ignore[return-value]


def reached(name: str) -> bool:
    """Count one pass through ``name``; True on the n-th (the caller then does something
    partial, such as writing half a line, and calls :func:`kill`)."""
    target = _target()
    if target is None or target[0] != name:
        return False
    _counts[name] += 1
    return _counts[name] == target[1]


def kill() -> None:
    """SIGKILL this process (no clean-up of any kind runs)."""
    os.kill(os.getpid(), signal.SIGKILL)


def point(name: str) -> None:
    """Count one pass through the crash point ``name``; SIGKILL this process on the n-th."""
    target = _target()
    if target is None or target[0] != name:
        return
    _counts[name] += 1
    if _counts[name] != target[1]:
        return
    if target[2] == "enospc":
        raise OSError(errno.ENOSPC, os.strerror(errno.ENOSPC))
    os.kill(os.getpid(), signal.SIGKILL)


def reset() -> None:
    """Forget counts and re-read ``NASCLI_FAULT`` (tests)."""
    global _spec
    _counts.clear()
    _spec = False
