"""The runs a report covers: found under the given paths, read, and grouped by swept keys.

A group is every run that shares the values of all swept keys except ``seed``; the seeds are
what a group's curves average over. The keys come from each run's ``.hydra/overrides.yaml``
(Hydra writes it in every job folder, single runs included), so a sweep over
``strategy.population_size`` or ``dataset`` gives one group per value.
"""

from __future__ import annotations

import contextlib
import logging
import math
from collections import defaultdict
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import yaml

from nascli.engine.rundir import CONFIG, HISTORY, MANIFEST, read_history, read_json_object

log = logging.getLogger("nascli.report")

SEED = "seed"
OVERRIDES = Path(".hydra") / "overrides.yaml"
HYDRA_CONFIG = Path(".hydra") / "hydra.yaml"
#: override keys that never change what a search finds (display, bookkeeping, Hydra itself)
IGNORED = ("progress", "top_k", "resume", "hydra.", "hydra/")


class ReportError(ValueError):
    """No run to report on, or a path that is not one."""


@dataclass
class Run:
    """One run directory: its evaluations, overrides (key -> value as typed) and seed."""

    path: Path
    rows: list[dict[str, Any]]
    overrides: dict[str, str]
    manifest: dict[str, Any]
    seed: int | str | None = None

    @property
    def best(self) -> float | None:
        """The best finished score, or None when every evaluation failed."""
        scores = [r["score"] for r in self.rows if r["status"] == "ok"]
        return max(scores) if scores else None

    @property
    def wall_time(self) -> float:
        """Seconds of search until the last evaluation finished."""
        return float(wall_times(self.rows)[-1]) if self.rows else 0.0


@dataclass
class Group:
    """Runs that differ only in their seed; ``settings`` holds the swept keys' values."""

    label: str
    settings: dict[str, str]
    runs: list[Run] = field(default_factory=list)

    def summary(self) -> dict[str, Any]:
        """Seeds, evaluations, failures, wall time and the final best (mean and sample std)."""
        finals = [r.best for r in self.runs if r.best is not None]
        return {
            "label": self.label, "settings": self.settings,
            "seeds": [r.seed for r in self.runs],
            "runs": [str(r.path) for r in self.runs],
            "evaluations": [len(r.rows) for r in self.runs],
            "failed": [sum(x["status"] == "failed" for x in r.rows) for r in self.runs],
            "wall_time_s": [round(r.wall_time, 3) for r in self.runs],
            "final_best": {"mean": float(np.mean(finals)) if finals else None,
                           "std": float(np.std(finals, ddof=1)) if len(finals) > 1 else None,
                           "n": len(finals)},
        }


def wall_times(rows: list[dict[str, Any]]) -> np.ndarray:
    """Search time (s) at which each row, in id order, finished: ``elapsed``, or the running
    sum of ``seconds`` for rows written without it."""
    rows = sorted(rows, key=lambda r: r["id"])
    if all(isinstance(r.get("elapsed"), int | float) for r in rows):
        return np.array([float(r["elapsed"]) for r in rows])
    return np.cumsum([float(r.get("seconds") or 0.0) for r in rows])


def _run_dirs(path: Path) -> tuple[list[Path], bool]:
    """Run directories at or under ``path``, and whether ``path`` is itself one."""
    if not path.exists():
        raise ReportError(f"{path}: no such directory")
    if not path.is_dir():
        raise ReportError(f"{path}: not a run directory (a file; give the folder)")
    if (path / HISTORY).is_file():
        return [path], True
    return sorted(h.parent for h in path.rglob(HISTORY)), False


def find_runs(paths: list[Path]) -> list[Path]:
    """Run directories under ``paths`` (a run dir, or a multirun folder of them), each once."""
    runs: dict[Path, Path] = {}
    for p in paths:
        for run in _run_dirs(Path(p).expanduser())[0]:
            runs.setdefault(run.resolve(), run)
    if not runs:
        raise ReportError(f"no run directory with {HISTORY} under "
                          f"{', '.join(map(str, paths))}")
    return list(runs.values())


def load_runs(paths: list[Path]) -> list[Run]:
    """The runs under ``paths`` with their evaluations. A run named on the command line
    without evaluations is an error; one found inside a sweep folder is skipped, with a
    warning (a job that died before its first evaluation)."""
    runs: dict[Path, Run] = {}
    for p in paths:
        found, named = _run_dirs(Path(p).expanduser())
        if not found:
            raise ReportError(f"{p}: not a run directory (no {HISTORY} in it or below)")
        for path in found:
            if path.resolve() in runs:
                continue
            rows = read_history(path / HISTORY)
            if not rows:
                if named:
                    raise ReportError(f"{path}: an empty run (no evaluations in {HISTORY})")
                log.warning("%s: no evaluations yet; left out of the report", path)
                continue
            runs[path.resolve()] = _read_run(path, rows)
    if not runs:
        raise ReportError(f"no run with evaluations under {', '.join(map(str, paths))}")
    return list(runs.values())


def _read_run(path: Path, rows: list[dict[str, Any]]) -> Run:
    manifest = read_json_object(path / MANIFEST)
    overrides = read_overrides(path)
    seed: Any = overrides.get(SEED, manifest.get(SEED))
    with contextlib.suppress(TypeError, ValueError):
        seed = int(seed)
    return Run(path, rows, overrides, manifest, seed)


def read_overrides(run: Path) -> dict[str, str]:
    """``key -> value`` of the run's command-line overrides ({} when Hydra wrote none)."""
    path = run / OVERRIDES
    if not path.is_file():
        return {}
    try:
        items = yaml.safe_load(path.read_text(encoding="utf-8")) or []
    except (yaml.YAMLError, UnicodeDecodeError, OSError) as exc:
        raise ReportError(f"{path}: not readable YAML ({type(exc).__name__})") from None
    if not isinstance(items, list):
        raise ReportError(f"{path}: expected a list of overrides")
    out: dict[str, str] = {}
    for item in items:
        key, eq, value = str(item).partition("=")
        key = key.strip().removeprefix("override ").lstrip("+~")
        if key and not key.startswith(IGNORED):
            out[key] = value if eq else "(deleted)"
    return out


def _sort_key(values: tuple[str, ...]) -> tuple[tuple[int, float, str], ...]:
    """Numbers in numeric order (5 < 10 < 20), then text."""
    out = []
    for v in values:
        try:
            number = float(v)
        except ValueError:
            number = math.nan
        out.append((0, number, "") if math.isfinite(number) else (1, 0.0, v))
    return tuple(out)


def group_runs(runs: list[Run]) -> tuple[list[Group], dict[str, str]]:
    """Groups by every swept key (all keys but ``seed`` whose value differs between runs), in
    a stable order, and the settings common to all runs."""
    keys = sorted({k for r in runs for k in r.overrides} - {SEED})
    values = {id(r): {k: _value(r, k) for k in keys} for r in runs}
    swept = [k for k in keys if len({values[id(r)][k] for r in runs}) > 1]
    common = {k: values[id(runs[0])][k] for k in keys if k not in swept}
    members: dict[tuple[str, ...], list[Run]] = defaultdict(list)
    for r in runs:
        members[tuple(values[id(r)][k] for k in swept)].append(r)
    groups = []
    for combo in sorted(members, key=_sort_key):
        settings = dict(zip(swept, combo, strict=True))
        label = ", ".join(f"{k}={v}" for k, v in settings.items()) or _plain_label(runs)
        group_members = sorted(members[combo], key=lambda r: (_sort_key((str(r.seed),)),
                                                               str(r.path)))
        groups.append(Group(label, settings, group_members))
    return groups, common


def _plain_label(runs: list[Run]) -> str:
    """The label of a single group: strategy and proxy from the manifest."""
    m = runs[0].manifest
    if m.get("strategy") or m.get("proxy"):
        return f"{m.get('strategy', '?')} / {m.get('proxy', '?')}"
    return runs[0].path.name


def _value(run: Run, key: str) -> str:
    """The run's value of ``key``: its override, else what its config says (a group's chosen
    option from ``.hydra/hydra.yaml``, a scalar from ``config.yaml``), else ``n/a``."""
    if key in run.overrides:
        return run.overrides[key]
    choices = (_yaml(run.path / HYDRA_CONFIG).get("hydra") or {}).get("runtime", {})
    choice = (choices or {}).get("choices", {}) or {}
    if key in choice:
        return str(choice[key])
    node: Any = _yaml(run.path / CONFIG)
    for part in key.split("."):
        node = node.get(part) if isinstance(node, dict) else None
    if node is None:
        return "n/a"  # the key does not exist in this run's config
    if isinstance(node, dict | list):
        return "default"
    return str(node).lower() if isinstance(node, bool) else str(node)


def _yaml(path: Path) -> dict[str, Any]:
    """A YAML mapping, or {} when absent or unreadable (only used for labels)."""
    try:
        data = yaml.safe_load(path.read_text(encoding="utf-8"))
    except (OSError, UnicodeDecodeError, yaml.YAMLError):
        return {}
    return data if isinstance(data, dict) else {}


def score_label(runs: list[Run], best: bool = True) -> str:
    """The score axis' label, naming the estimator when every run used the same one."""
    proxies = {r.manifest.get("proxy") for r in runs}
    proxy = proxies.pop() if len(proxies) == 1 else None
    what = ("validation accuracy" if proxy == "train" else f"{proxy} score" if proxy
            else "score")
    return f"best {what} so far" if best else what
