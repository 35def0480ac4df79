"""Fake run directories laid out as ``nascli search -m`` writes them (history, manifest,
config, best genotype, ``.hydra/overrides.yaml``), without running a search."""

from __future__ import annotations

import json
import random
from pathlib import Path

#: a valid genotype (the NASNet space, B=5), as a search's history and best.json hold it
_CELL = {"blocks": [{"inputs": [0, 1], "ops": ["sep_conv_3x3", "identity"], "combine": "add"}
                    for _ in range(5)], "concat": [2, 3, 4, 5, 6]}
GENOTYPE = {"normal": _CELL, "reduce": _CELL}


def _row(i: int, score: float | None, elapsed: float) -> dict:
    ok = score is not None
    return {"id": i, "hash": f"{i:016x}", "genotype": GENOTYPE, "arch": f"arch {i}",
            "score": score, "status": "ok" if ok else "failed",
            "error": None if ok else "diverged", "metrics": {}, "params": 1000 * (i + 1),
            "macs": 5000 * (i + 1), "seconds": 1.5, "epochs": 1.0, "worker": "local",
            "elapsed": elapsed, "finished_at": "2026-12-01T00:00:00.000+00:00"}


def make_run(path: Path, overrides: list[str], seed: int, evaluations: int = 6,
             offset: float = 0.0, failed: tuple[int, ...] = ()) -> Path:
    """One run folder with ``evaluations`` rows (scores rise with noise from ``seed``)."""
    rng = random.Random(seed * 1000 + int(offset * 100))
    (path / ".hydra").mkdir(parents=True)
    lines, t = [], 0.0
    for i in range(evaluations):
        t += 1.0 + rng.random()
        score = None if i in failed else round(offset + rng.random(), 4)
        lines.append(json.dumps(_row(i, score, round(t, 3))))
    (path / "history.jsonl").write_text("\n".join(lines) + "\n")
    (path / ".hydra" / "overrides.yaml").write_text(
        "".join(f"- {o}\n" for o in [*overrides, f"seed={seed}"]))
    (path / "config.yaml").write_text(f"seed: {seed}\nstrategy:\n  population_size: 10\n")
    (path / "manifest.json").write_text(json.dumps(
        {"seed": seed, "strategy": "evolution", "proxy": "train", "status": "finished"}))
    best = {"format": 1, "space": "nasnet", **GENOTYPE}
    (path / "best.json").write_text(json.dumps(best))
    return path


def make_sweep(root: Path, keys: dict[str, list[str]], seeds: tuple[int, ...] = (0, 1, 2),
               evaluations: int = 6) -> Path:
    """A multirun folder ``root`` with one job per combination of ``keys`` values and seed,
    numbered as Hydra numbers them; the score offset grows with each combination."""
    combos: list[list[str]] = [[]]
    for key, values in keys.items():
        combos = [[*c, f"{key}={v}"] for c in combos for v in values]
    job = 0
    for k, combo in enumerate(combos):
        for seed in seeds:
            make_run(root / str(job), ["device=cpu", *combo], seed, evaluations, offset=k)
            job += 1
    (root / "multirun.yaml").write_text("hydra: {}\n")
    return root
