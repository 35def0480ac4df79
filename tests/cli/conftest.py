"""Helpers to run the real ``nascli`` command in a subprocess (true exit codes and stderr)."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest


def run_nascli(*args: str, cwd: Path, timeout: int = 600) -> subprocess.CompletedProcess:
    """``python -m nascli ARGS`` in ``cwd``; returns the finished process."""
    env = dict(os.environ, COLUMNS="200", PYTHONWARNINGS="ignore")
    return subprocess.run(
        [sys.executable, "-m", "nascli", *args], cwd=cwd, capture_output=True, text=True,
        timeout=timeout, env=env,
    )


@pytest.fixture
def nascli(tmp_path):
    """Run nascli in a temporary working directory."""

    def _run(*args: str, timeout: int = 600) -> subprocess.CompletedProcess:
        return run_nascli(*args, cwd=tmp_path, timeout=timeout)

    _run.cwd = tmp_path
    return _run

