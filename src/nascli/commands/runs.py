"""Opening a search's run directory: a fresh one, or an existing one to resume.

A new search never writes into a directory that already holds a run, and refuses before it
touches anything. A resumed search takes the run's own config; the command line may change
budgets, where or how it runs (device, executor, progress), the evaluation cache and the
metric logger (``logger=tensorboard`` appends to the run's event files), but a change of what
is searched (space, strategy, proxy, dataset, seed, child filter) would mix two searches in
one record, so it is refused with one line naming the key.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import yaml
from omegaconf import DictConfig, OmegaConf
from omegaconf.errors import OmegaConfBaseException

from nascli.engine.rundir import CONFIG, RunDir, RunDirError, now_iso

#: keys a resumed search keeps from the run, whatever the command line says
FIXED = ("search_space", "strategy", "proxy", "dataset", "seed", "child_filter", "oneshot")
#: keys a resumed search takes from the command line when given there
ADJUSTABLE = ("budget", "device", "executor", "progress", "top_k", "cache", "logger")
#: keys inside FIXED sections that a resume may change (what runs after the search)
ADJUSTABLE_KEYS = ("oneshot.rerank_top_k", "oneshot.probe", "oneshot.reference")


def open_new_run(path: str | Path) -> RunDir:
    """The run directory of a new search: empty of runs, and locked for this process."""
    run_dir = RunDir(path)
    if run_dir.is_used():
        raise RunDirError(f"{run_dir.path} already holds a run; continue it with "
                          f"resume={run_dir.path}, or choose another hydra.run.dir")
    run_dir.lock()
    return run_dir


def _override_key(override: str) -> str:
    key = override.split("=", 1)[0].lstrip("~+")
    return key.removeprefix("override ").strip()


def _read_config(path: Path) -> DictConfig:
    try:
        cfg = OmegaConf.load(path)
    except (yaml.YAMLError, OmegaConfBaseException, UnicodeDecodeError) as exc:
        first = str(exc).splitlines()[0] if str(exc) else type(exc).__name__
        raise RunDirError(f"{path}: not a readable config ({first})") from None
    if not isinstance(cfg, DictConfig):
        raise RunDirError(f"{path}: not a config mapping")
    return cfg


def open_resumed_run(cfg: DictConfig, overrides: list[str]) -> tuple[RunDir, DictConfig]:
    """Lock the run named by ``cfg.resume`` and return it with the config to continue with:
    the run's own, plus this command line's budget, device, executor, display and logger
    settings."""
    path = Path(str(cfg.resume)).expanduser()
    if not path.is_dir():
        raise RunDirError(f"resume={path}: no such run directory")
    if not (path / CONFIG).is_file():
        raise RunDirError(f"resume={path}: not a nascli run directory (no {CONFIG})")
    original = _read_config(path / CONFIG)
    missing = [k for k in ("search_space", "strategy", "proxy", "dataset", "seed", "budget")
               if k not in original]
    if missing:
        kind = "train-final" if "train" in original else "other"
        raise RunDirError(f"resume={path}: a {kind} run directory, not a search run (its "
                          f"config has no {missing[0]!r}); use nascli train-final resume=... "
                          "for train-final runs")
    run_dir = RunDir(path)
    run_dir.lock()
    keys = [_override_key(o) for o in overrides]
    later = [k for k in keys if k.startswith(ADJUSTABLE_KEYS)]
    for key in keys:
        root = key.split(".", 1)[0]
        if key in later:
            continue
        if root in FIXED and _value(cfg, key) != _value(original, key):
            raise RunDirError(
                f"resume: {key}={_short(_value(cfg, key))} differs from the run's "
                f"{_short(_value(original, key))}; a resumed search keeps its space, strategy, "
                "proxy, dataset, seed, child filter and supernet (budgets, device, executor, "
                "logger, oneshot.rerank_top_k and oneshot.probe may change)")
    merged = OmegaConf.to_container(original, resolve=False)
    for root in {k.split(".", 1)[0] for k in keys} & set(ADJUSTABLE):
        if root in cfg:
            merged[root] = OmegaConf.to_container(cfg[root], resolve=True) \
                if OmegaConf.is_config(cfg[root]) else cfg[root]
    for key in {k.split(".")[0] + "." + k.split(".")[1] for k in later}:
        OmegaConf.update(merged_cfg := OmegaConf.create(merged), key, _value(cfg, key),
                         force_add=True)
        merged = OmegaConf.to_container(merged_cfg, resolve=False)
    merged["resume"] = str(path)
    return run_dir, OmegaConf.create(merged)


def _value(cfg: DictConfig, key: str) -> Any:
    value = OmegaConf.select(cfg, key, default=None, throw_on_missing=False)
    return OmegaConf.to_container(value, resolve=True) if OmegaConf.is_config(value) else value


def _short(value: Any) -> str:
    text = repr(value)
    return text if len(text) <= 60 else text[:57] + "..."


def record_resume(run_dir: RunDir, command: str) -> None:
    """Add this resume (time and command) to the manifest; the first command stays."""
    manifest = run_dir.read_manifest()
    resumes = list(manifest.get("resumes") or [])
    resumes.append({"at": now_iso(), "command": command})
    run_dir.write_manifest(resumes=resumes, status="running")
