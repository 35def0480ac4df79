"""The run directory: history, best genotype, manifest, resolved config and resumable state.

The run directory is the user's record of hours of compute, so every write is crash-safe:
``history.jsonl`` is an append-only log whose torn last line (a write cut by a kill) is cut
back on open; every other file is replaced atomically (temporary file, fsync, rename) and a
failed write leaves no temporary file behind. One process writes a run directory at a time
(an advisory ``fcntl`` lock held for the life of the process); files read back are checked,
and a damaged one is reported in one line (:class:`RunDirError`) instead of a traceback.
"""

from __future__ import annotations

import contextlib
import errno
import json
import logging
import math
import os
import platform
import subprocess
import tempfile
from collections.abc import Callable, Iterator
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import nascli
from nascli.engine import faults
from nascli.errors import UserError
from nascli.genotypes import genotype_to_dict

log = logging.getLogger("nascli.rundir")

HISTORY = "history.jsonl"
BEST = "best.json"
PARETO = "pareto.json"
MANIFEST = "manifest.json"
STATE = "state.pt"
CONFIG = "config.yaml"
LOCK = ".lock"
#: files whose presence means a directory already holds a run
RUN_FILES = (HISTORY, MANIFEST, CONFIG, STATE, BEST)


class RunDirError(UserError, ValueError):
    """A run directory or one of its files cannot be used; the message names the file."""


class RunDirBusy(RunDirError):
    """Another live process holds the run directory's lock."""


def now_iso() -> str:
    """The current UTC time, ISO 8601."""
    return datetime.now(UTC).isoformat(timespec="milliseconds")


@contextlib.contextmanager
def _temporary(path: Path) -> Iterator[str]:
    """A temporary file beside ``path``, removed unless it was renamed over ``path``."""
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".tmp")
    os.close(fd)
    try:
        yield tmp
    finally:
        with contextlib.suppress(FileNotFoundError):
            os.unlink(tmp)


def _fsync(tmp: str) -> None:
    with open(tmp, "rb") as f:
        os.fsync(f.fileno())


def _group_readable(path: Path) -> None:
    # mkstemp makes 0600 files; run files are shared with the user's group like others
    with contextlib.suppress(OSError):
        os.chmod(path, 0o666 & ~_umask())


def _umask() -> int:
    mask = os.umask(0)
    os.umask(mask)
    return mask


def atomic_write_text(path: Path, text: str, point: str = "") -> None:
    """Write ``text`` to ``path`` via a temporary file, fsync and rename (no torn files)."""
    path = Path(path)
    with _temporary(path) as tmp:
        with open(tmp, "w", encoding="utf-8") as f:
            f.write(text)
            f.flush()
            faults.point(point or f"write:{path.name}")
            os.fsync(f.fileno())
        os.replace(tmp, path)
    _group_readable(path)


def atomic_torch_save(obj: Any, path: Path) -> None:
    """``torch.save`` via a temporary file, fsync and rename."""
    import torch

    path = Path(path)
    with _temporary(path) as tmp:
        torch.save(obj, tmp)
        faults.point(f"write:{path.name}")
        _fsync(tmp)
        os.replace(tmp, path)
    _group_readable(path)


def git_commit() -> str | None:
    """The git commit of the source tree nascli runs from, if it is a git checkout."""
    root = Path(nascli.__file__).resolve().parents[2]
    if not (root / ".git").exists():
        return None
    try:
        out = subprocess.run(
            ["git", "-C", str(root), "rev-parse", "HEAD"], capture_output=True, text=True,
            timeout=5, check=True,
        )
    except (OSError, subprocess.SubprocessError):
        return None
    return out.stdout.strip() or None


# -- reading the history ----------------------------------------------------------------------
def _check_row(row: Any, where: str) -> dict[str, Any]:
    """A history row as written by the engine, or :class:`RunDirError` naming the field."""
    if not isinstance(row, dict):
        raise RunDirError(f"{where}: a row must be a JSON object, got {type(row).__name__}")
    if "flops" in row and "macs" not in row:
        row["macs"] = row.pop("flops")  # runs written before 0.2 named multiply-adds flops
    eid = row.get("id")
    if not isinstance(eid, int) or isinstance(eid, bool) or eid < 0:
        raise RunDirError(f"{where}: field 'id' must be an integer >= 0, got {eid!r}")
    if not isinstance(row.get("hash"), str):
        raise RunDirError(f"{where}: field 'hash' is missing or not a string")
    if not isinstance(row.get("genotype"), dict):
        raise RunDirError(f"{where}: field 'genotype' must be an object")
    status, score = row.get("status"), row.get("score")
    if status not in ("ok", "failed", "rejected"):
        raise RunDirError(f"{where}: field 'status' must be ok, failed or rejected, got "
                          f"{status!r}")
    if status == "ok" and (isinstance(score, bool) or not isinstance(score, int | float)
                           or not math.isfinite(score)):
        raise RunDirError(f"{where}: field 'score' must be a finite number, got {score!r}")
    if status != "ok" and score is not None:
        raise RunDirError(f"{where}: a {status} row must have score null, got {score!r}")
    _check_fidelity(row.get("fidelity"), where)
    row.setdefault("arch", "")
    for key in ("params", "macs", "seconds", "epochs", "error", "worker", "metrics"):
        row.setdefault(key, None)
    return row


def _check_fidelity(fidelity: Any, where: str) -> None:
    """A row's ``fidelity`` (successive halving): rung and steps, non-negative integers."""
    if fidelity is None:
        return
    if not isinstance(fidelity, dict) or not all(
            isinstance(fidelity.get(k), int) and not isinstance(fidelity.get(k), bool)
            and fidelity[k] >= 0 for k in ("rung", "steps", "bracket")):
        raise RunDirError(f"{where}: field 'fidelity' must hold integers rung, steps and "
                          f"bracket >= 0, got {fidelity!r}")


def read_history(path: Path) -> list[dict[str, Any]]:
    """The evaluations of a ``history.jsonl`` in id order, each id once (its first row).

    A torn last line (a write cut by a kill) is ignored; any other line that is not a valid
    row raises :class:`RunDirError` naming the file, the line and the field.
    """
    path = Path(path)
    if not path.is_file():
        return []
    try:
        data = path.read_bytes()
    except OSError as exc:
        raise RunDirError(f"{path}: cannot be read ({exc.strerror or exc})") from None
    lines = data.split(b"\n")
    complete = lines[:-1]  # the part after the last newline is torn (or empty)
    rows: dict[int, dict[str, Any]] = {}
    for number, raw in enumerate(complete, 1):
        if not raw.strip():
            continue
        where = f"{path}, line {number}"
        try:
            row = json.loads(raw.decode("utf-8"))
        except (UnicodeDecodeError, json.JSONDecodeError, RecursionError):
            raise RunDirError(f"{where}: not a JSON row (a damaged file; remove or repair that "
                              "line to resume)") from None
        row = _check_row(row, where)
        rows.setdefault(row["id"], row)
    return [rows[i] for i in sorted(rows)]


def heal_history(path: Path) -> int:
    """Cut a torn last line of ``history.jsonl`` back to the last newline; returns the bytes
    removed (0 when the file ends cleanly or does not exist)."""
    path = Path(path)
    if not path.is_file():
        return 0
    with open(path, "rb+") as f:
        size = f.seek(0, os.SEEK_END)
        if size == 0:
            return 0
        f.seek(max(0, size - 1))
        if f.read(1) == b"\n":
            return 0
        # scan back in blocks for the last newline
        end, block = size, 1 << 16
        keep = 0
        while end > 0:
            start = max(0, end - block)
            f.seek(start)
            chunk = f.read(end - start)
            i = chunk.rfind(b"\n")
            if i >= 0:
                keep = start + i + 1
                break
            end = start
        f.truncate(keep)
        f.flush()
        os.fsync(f.fileno())
    return size - keep


class RunDir:
    """Writes one run's files under ``path`` (created if needed).

    Call :meth:`lock` before writing: it holds the directory for this process.
    """

    def __init__(self, path: str | os.PathLike) -> None:
        self.path = Path(path)
        try:
            self.path.mkdir(parents=True, exist_ok=True)
        except OSError as exc:
            raise RunDirError(f"{self.path}: cannot create the run directory "
                              f"({exc.strerror or exc})") from None
        self._history = None
        self._lock_fd: int | None = None

    # -- ownership --------------------------------------------------------------------------
    def is_used(self) -> bool:
        """Whether the directory already holds a run (history, manifest, config, state)."""
        return any((self.path / name).exists() for name in RUN_FILES)

    def lock(self) -> None:
        """Hold the directory for this process (until it exits or :meth:`unlock`).

        A second process gets :class:`RunDirBusy` naming the holder's pid. A lock left by a
        process that died is free again (the kernel drops it), so it is simply taken over.
        """
        import fcntl

        if self._lock_fd is not None:
            return
        path = self.path / LOCK
        try:
            fd = os.open(path, os.O_RDWR | os.O_CREAT, 0o644)
        except OSError as exc:
            raise RunDirError(f"{self.path}: cannot write here ({exc.strerror or exc})") from None
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except OSError:
            holder = os.pread(fd, 64, 0).decode("ascii", "replace").strip() or "?"
            os.close(fd)
            raise RunDirBusy(f"{self.path} is in use by another nascli process (pid {holder}); "
                             "wait for it to finish or stop it first") from None
        previous = os.pread(fd, 64, 0).decode("ascii", "replace").strip()
        if previous and previous != str(os.getpid()):
            log.info("taking over %s from process %s, which is no longer running", path,
                     previous)
        os.ftruncate(fd, 0)
        os.pwrite(fd, f"{os.getpid()}\n".encode(), 0)
        self._lock_fd = fd

    def unlock(self) -> None:
        """Release the directory (the lock file stays; it is free for the next process)."""
        if self._lock_fd is not None:
            os.close(self._lock_fd)
            self._lock_fd = None

    def clean_temporary(self) -> list[str]:
        """Remove temporary files a killed write left behind (``.NAME.*.tmp``); a clean
        exit never leaves any, but SIGKILL gives no chance to."""
        removed = []
        for tmp in self.path.glob(".*.tmp"):
            with contextlib.suppress(OSError):
                tmp.unlink()
                removed.append(tmp.name)
        if removed:
            log.info("removed %d temporary file(s) of an interrupted write", len(removed))
        return removed

    # -- history ----------------------------------------------------------------------------
    def open_history(self) -> int:
        """Prepare ``history.jsonl`` for appending: cut a torn last line and warn. Returns the
        number of bytes cut."""
        cut = heal_history(self.path / HISTORY)
        if cut:
            log.warning("%s: cut a torn last line (%d bytes) left by an interrupted write",
                        self.path / HISTORY, cut)
        return cut

    def append(self, row: dict[str, Any]) -> None:
        """Append one evaluation to ``history.jsonl``, on disk (fsync) before returning."""
        line = (json.dumps(row, allow_nan=False, default=_json_default) + "\n").encode()
        if self._history is None:
            self.open_history()
            self._history = open(self.path / HISTORY, "ab")  # noqa: SIM115
            _group_readable(self.path / HISTORY)
        faults.point("history:before")
        if faults.reached("history:torn"):
            self._history.write(line[: len(line) // 2])
            self._history.flush()
            faults.kill()
        self._history.write(line)
        self._history.flush()
        os.fsync(self._history.fileno())
        faults.point("history:after")

    def history(self) -> list[dict[str, Any]]:
        """Every evaluation recorded so far, by id."""
        return read_history(self.path / HISTORY)

    def close(self) -> None:
        """Close the history file."""
        if self._history is not None:
            self._history.close()
            self._history = None

    # -- results ----------------------------------------------------------------------------
    def write_best(self, genotype: Any, space: Any, **meta: Any) -> Path:
        """``best.json``: the best genotype as a genotype file, with its score in ``meta``."""
        path = self.path / BEST
        data = genotype_to_dict(genotype, space, **meta)
        atomic_write_text(path, json.dumps(data, indent=2, default=_json_default) + "\n",
                          point="write:best.json")
        return path

    def write_json(self, name: str, data: Any) -> Path:
        """Any JSON file of the run, atomically."""
        path = self.path / name
        atomic_write_text(path, json.dumps(data, indent=2, default=_json_default) + "\n")
        return path

    def write_config(self, yaml_text: str) -> None:
        """The resolved config."""
        atomic_write_text(self.path / CONFIG, yaml_text)

    def read_manifest(self) -> dict[str, Any]:
        """``manifest.json`` as a dict ({} when absent); :class:`RunDirError` if damaged."""
        return read_json_object(self.path / MANIFEST)

    def write_manifest(self, **fields: Any) -> dict[str, Any]:
        """``manifest.json`` with versions, git commit and the given fields (merged)."""
        import torch

        data = self.read_manifest()
        data.setdefault("nascli", nascli.__version__)
        data.setdefault("torch", torch.__version__)
        data.setdefault("python", platform.python_version())
        data.setdefault("platform", platform.platform())
        data.setdefault("git_commit", git_commit())
        data.update(fields)
        self.write_json(MANIFEST, data)
        return data

    # -- resumable state --------------------------------------------------------------------
    def save_state(self, state: dict[str, Any]) -> None:
        """Strategy and engine state, atomically (loadable with ``weights_only=True``)."""
        atomic_torch_save(state, self.path / STATE)

    def load_state(self, check: Callable[[dict[str, Any]], None] | None = None
                   ) -> dict[str, Any] | None:
        """The saved state, or None when the run has none; a damaged file (or one ``check``
        refuses) raises :class:`RunDirError`."""
        import torch

        path = self.path / STATE
        if not path.is_file():
            return None
        try:
            state = torch.load(path, weights_only=True, map_location="cpu")
        except Exception as exc:  # torn, empty, foreign or a refused (pickle) payload
            raise RunDirError(f"{path}: unreadable state file ({_reason(exc)}); the run cannot "
                              "be resumed exactly") from None
        if not isinstance(state, dict):
            raise RunDirError(f"{path}: not a nascli state file")
        if check is not None:
            try:
                check(state)
            except (KeyError, TypeError, ValueError) as exc:
                raise RunDirError(f"{path}: damaged state file ({_reason(exc)})") from None
        return state


def read_json_object(path: Path) -> dict[str, Any]:
    """A JSON object file ({} when absent); :class:`RunDirError` naming it when damaged."""
    path = Path(path)
    if not path.is_file():
        return {}
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
    except (UnicodeDecodeError, json.JSONDecodeError, RecursionError) as exc:
        raise RunDirError(f"{path}: not valid JSON ({_reason(exc)})") from None
    except OSError as exc:
        raise RunDirError(f"{path}: cannot be read ({exc.strerror or exc})") from None
    if not isinstance(data, dict):
        raise RunDirError(f"{path}: expected a JSON object, got {type(data).__name__}")
    return data


def _reason(exc: BaseException) -> str:
    text = str(exc).splitlines()[0] if str(exc) else ""
    return f"{type(exc).__name__}: {text[:200]}" if text else type(exc).__name__


def is_disk_error(exc: BaseException) -> bool:
    """An OSError of the machine, not of the user's input (disk full, read-only, I/O)."""
    return isinstance(exc, OSError) and exc.errno in (errno.ENOSPC, errno.EROFS, errno.EIO,
                                                      errno.EDQUOT, errno.EACCES, errno.EPERM)


def _json_default(obj: Any) -> Any:
    if hasattr(obj, "item"):
        return obj.item()
    if isinstance(obj, Path):
        return str(obj)
    if isinstance(obj, tuple | set):
        return list(obj)
    raise TypeError(f"cannot write {type(obj).__name__} to JSON")
