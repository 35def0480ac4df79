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
