"""The run directory: history, best genotype, manifest, resolved config and resumable state."""

from __future__ import annotations

import json
import os
import platform
import subprocess
import tempfile
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import torch

import nascli
from nascli.genotypes import save_genotype
from nascli.spaces import SearchSpace

HISTORY = "history.jsonl"
BEST = "best.json"
MANIFEST = "manifest.json"
STATE = "state.pt"
CONFIG = "config.yaml"


def now_iso() -> str:
    """The current UTC time, ISO 8601."""
    return datetime.now(UTC).isoformat(timespec="milliseconds")


def atomic_write_text(path: Path, text: str) -> None:
    """Write ``text`` to ``path`` via a temporary file and a rename (no torn files)."""
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".tmp")
    with os.fdopen(fd, "w", encoding="utf-8") as f:
        f.write(text)
    os.replace(tmp, path)


def atomic_torch_save(obj: Any, path: Path) -> None:
    """``torch.save`` via a temporary file and a rename."""
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".tmp")
    os.close(fd)
    torch.save(obj, tmp)
    os.replace(tmp, path)


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


def read_history(path: Path) -> list[dict[str, Any]]:
    """Rows of a ``history.jsonl``; a torn last line (killed mid-write) is ignored."""
    rows = []
    if not path.is_file():
        return rows
    for line in path.read_text(encoding="utf-8").splitlines():
        line = line.strip()
        if not line:
            continue
        try:
            row = json.loads(line)
        except json.JSONDecodeError:
            continue
        if isinstance(row, dict) and "flops" in row and "macs" not in row:
            row["macs"] = row.pop("flops")  # runs written before 0.2 named multiply-adds flops
        rows.append(row)
    return rows


class RunDir:
    """Writes one search run's files under ``path`` (created if needed)."""

    def __init__(self, path: str | os.PathLike) -> None:
        self.path = Path(path)
        self.path.mkdir(parents=True, exist_ok=True)
        self._history = None

    # -- history ----------------------------------------------------------------------------
    def append(self, row: dict[str, Any]) -> None:
        """Append one evaluation to ``history.jsonl``, flushed to disk before returning."""
        if self._history is None:
            self._history = open(self.path / HISTORY, "a", encoding="utf-8")  # noqa: SIM115
        self._history.write(json.dumps(row, allow_nan=False, default=_json_default) + "\n")
        self._history.flush()
        os.fsync(self._history.fileno())

    def history(self) -> list[dict[str, Any]]:
        """Every evaluation recorded so far."""
        return read_history(self.path / HISTORY)

    def close(self) -> None:
        """Close the history file."""
        if self._history is not None:
            self._history.close()
            self._history = None

    # -- results ----------------------------------------------------------------------------
    def write_best(self, genotype: Any, space: SearchSpace, **meta: Any) -> Path:
        """``best.json``: the best genotype as a genotype file, with its score in ``meta``."""
        return save_genotype(self.path / BEST, genotype, space, **meta)

    def write_json(self, name: str, data: Any) -> Path:
        """Any JSON file of the run, atomically."""
        path = self.path / name
        atomic_write_text(path, json.dumps(data, indent=2, default=_json_default) + "\n")
        return path

    def write_config(self, yaml_text: str) -> None:
        """The resolved config."""
        atomic_write_text(self.path / CONFIG, yaml_text)

    def write_manifest(self, **fields: Any) -> dict[str, Any]:
        """``manifest.json`` with versions, git commit and the given fields (merged)."""
        path = self.path / MANIFEST
        data: dict[str, Any] = {}
        if path.is_file():
            data = json.loads(path.read_text())
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

    def load_state(self) -> dict[str, Any] | None:
        """The saved state, or None when the run has none."""
        path = self.path / STATE
        if not path.is_file():
            return None
        return torch.load(path, weights_only=True, map_location="cpu")


def _json_default(obj: Any) -> Any:
    if hasattr(obj, "item"):
        return obj.item()
    if isinstance(obj, Path):
        return str(obj)
    if isinstance(obj, tuple | set):
        return list(obj)
    raise TypeError(f"cannot write {type(obj).__name__} to JSON")
