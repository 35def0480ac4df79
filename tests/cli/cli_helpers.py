"""Shared helpers of the CLI tests: tiny overrides and run-directory lookup."""

from __future__ import annotations

from pathlib import Path

#: overrides that make a search or an evaluation take seconds on CPU
TINY = [
    "dataset=synthetic", "dataset.num_samples=240", "dataset.image_size=28", "dataset.channels=1",
    "search_space.channels=4", "proxy.max_steps=2", "proxy.eval_batch_size=512",
    "device=cpu", "progress=off",
]

#: the same for zero-cost proxies (no training keys)
TINY_ZC = [o for o in TINY if not o.startswith("proxy.")]


def run_dirs(root: Path, command: str = "search") -> list[Path]:
    """Run directories written under ``root/outputs/<command>``."""
    return sorted(p.parent for p in (root / "outputs" / command).rglob("manifest.json"))


#: overrides that make a train-final run take seconds on CPU (two optimisation steps an epoch)
TINY_FINAL = [
    "dataset=synthetic", "dataset.num_samples=240", "dataset.image_size=28", "dataset.channels=1",
    "train.channels=4", "train.cells_per_stage=1", "train.max_steps=2", "train.batch_size=16",
    "device=cpu",
]


def one_error_line(proc, *needles: str, code: int = 2) -> str:
    """The single ``nascli: error:`` line of a failed run (exit ``code``, no traceback),
    checked to contain each of ``needles``."""
    out = proc.stdout + proc.stderr
    assert proc.returncode == code, out
    assert "Traceback" not in out, out
    lines = [ln for ln in proc.stderr.splitlines() if ln.startswith("nascli: error:")]
    assert len(lines) == 1, proc.stderr
    for needle in needles:
        assert needle in lines[0], lines[0]
    return lines[0]


def nascli_in(cwd: Path, *args: str, timeout: int = 600):
    """``python -m nascli ARGS`` in ``cwd`` (like the ``nascli`` fixture, for module-scoped
    fixtures that prepare a run once)."""
    import os
    import subprocess
    import sys

    env = dict(os.environ, COLUMNS="200", PYTHONWARNINGS="ignore")
    return subprocess.run([sys.executable, "-m", "nascli", *args], cwd=cwd, capture_output=True,
                          text=True, timeout=timeout, env=env)
