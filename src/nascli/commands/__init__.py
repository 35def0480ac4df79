"""Hydra entry points of the config-driven commands (search, evaluate, train-final).

``run_hydra`` sets ``sys.argv`` for the command, calls its ``@hydra.main`` function and
restores ``sys.argv``. Task functions turn the errors users cause (bad values, missing files)
into one line on stderr and exit code 2, instead of Hydra's traceback.
"""

from __future__ import annotations

import contextlib
import functools
import json
import logging
import os
import sys
from collections.abc import Callable
from pathlib import Path
from typing import Any

import hydra
from hydra.errors import HydraException
from omegaconf import DictConfig
from omegaconf.errors import OmegaConfBaseException

from nascli.config import config_dir
from nascli.errors import UserError, user_error_types

log = logging.getLogger("nascli")

USER_ERROR_CODE = 2
INTERNAL_ERROR_CODE = 1


__all__ = ["USER_ERROR_CODE", "UserError", "guarded", "one_line", "run_hydra"]


def _log_files() -> list[str]:
    return [h.baseFilename for h in logging.getLogger().handlers
            if isinstance(h, logging.FileHandler)]


def _report(message: str, code: int) -> None:
    """One line on stderr and in the run's log files, then exit with ``code``."""
    record = logging.LogRecord("nascli", logging.ERROR, "", 0, message, None, None)
    for handler in logging.getLogger().handlers:  # the run's log file records it too
        if isinstance(handler, logging.FileHandler):
            with contextlib.suppress(Exception):
                handler.handle(record)
    print(f"nascli: error: {message}", file=sys.stderr)
    raise SystemExit(code) from None


def guarded(task: Callable[[DictConfig], Any]) -> Callable[[DictConfig], Any]:
    """Errors as one line: the user's input exits 2, the machine's (a full disk, a read-only
    folder) exits 1 naming the log; Ctrl-C exits 130 and SIGTERM 143, work saved."""

    @functools.wraps(task)
    def wrapper(cfg: DictConfig) -> Any:
        try:
            value = task(cfg)
            _finished(task.__name__, cfg, value)
            return value
        except user_error_types() as exc:
            message = str(exc).splitlines()[0] if str(exc) else type(exc).__name__
            if _discard_unused_output():
                print(f"nascli: error: {message}", file=sys.stderr)
                raise SystemExit(USER_ERROR_CODE) from None
            _report(message, USER_ERROR_CODE)
        except KeyboardInterrupt as exc:
            from nascli.engine.signals import Terminated, ignore_from_now

            ignore_from_now()
            term = isinstance(exc, Terminated)
            print(f"nascli: {'terminated (SIGTERM)' if term else 'interrupted'}; finished work "
                  "is saved", file=sys.stderr)
            raise SystemExit(143 if term else 130) from None
        except OSError as exc:
            where = f" ({exc.filename})" if exc.filename else ""
            logs = _log_files()
            _report(f"{exc.strerror or exc}{where}; finished work is saved"
                    + (f"; log: {logs[0]}" if logs else ""), INTERNAL_ERROR_CODE)

    return wrapper


def _discard_unused_output() -> bool:
    """Remove the output folder Hydra made for a job refused before it wrote anything (it
    holds only ``.hydra/`` and the log), and its emptied parents; True when removed."""
    import shutil

    from hydra.core.hydra_config import HydraConfig

    try:
        folder = Path(HydraConfig.get().runtime.output_dir)
    except (ValueError, AttributeError):
        return False
    log_name = f"{HydraConfig.get().job.name}.log"
    ours = (".hydra", log_name, ".lock")  # Hydra's record, the log, the run's lock
    if not folder.is_dir() or any(p.name not in ours for p in folder.iterdir()):
        return False
    for handler in list(logging.getLogger().handlers):
        if isinstance(handler, logging.FileHandler) and \
                Path(handler.baseFilename).parent == folder:
            logging.getLogger().removeHandler(handler)
            handler.close()
    shutil.rmtree(folder, ignore_errors=True)
    parent, cwd = folder.parent, Path.cwd().resolve()
    for _ in range(3):  # outputs/search/<date>: only folders this left empty
        if parent.resolve() == cwd or not parent.is_dir() or any(parent.iterdir()):
            break
        parent.rmdir()
        parent = parent.parent
    return True


#: what each finished job of this process wrote (``--json`` prints it on stdout)
FINISHED: list[dict[str, Any]] = []
#: the result file each command writes into its run directory
RESULT_FILES = {"search_task": "best.json", "train_final_task": "final.json",
                "correlate_task": "correlation.json"}


def _finished(name: str, cfg: DictConfig, value: Any) -> None:
    """Remember a finished job: its run directory and the result file it wrote."""
    from hydra.core.hydra_config import HydraConfig

    run_dir = Path(HydraConfig.get().runtime.output_dir)
    filename = str(cfg.get("output", "")) if name == "evaluate_task" else RESULT_FILES.get(name)
    FINISHED.append({"run_dir": str(run_dir), "file": filename, "value": value})


def _best_summary(run_dir: Path, best: dict[str, Any]) -> dict[str, Any]:
    """A search's best: its evaluation, one-line form, score, metrics and cost, and the
    genotype file's content (``best.json``, loadable by every command)."""
    meta = best.get("meta", {})
    arch = None
    with contextlib.suppress(OSError, ValueError):
        for line in (run_dir / "history.jsonl").read_text().splitlines():
            row = json.loads(line)
            if row.get("id") == meta.get("evaluation"):
                arch = row.get("arch")
    return {"evaluation": meta.get("evaluation"), "arch": arch, "score": meta.get("score"),
            "metrics": meta.get("metrics"), "params": meta.get("params"),
            "macs": meta.get("macs"), "genotype": best}


def json_summary(command: str) -> dict[str, Any]:
    """One JSON object about the jobs of this command: ``{"command", "run_dir", "score",
    "result"}`` for one job, ``{"command", "runs": [...]}`` for a multirun."""
    runs = []
    for job in FINISHED:
        path = Path(job["run_dir"]) / job["file"] if job["file"] else None
        result = None
        if path is not None and path.is_file():
            with contextlib.suppress(OSError, ValueError):
                result = json.loads(path.read_text())
        if job["file"] == "best.json" and isinstance(result, dict):
            result = _best_summary(Path(job["run_dir"]), result)
        value = job["value"]
        runs.append({"run_dir": job["run_dir"],
                     "score": value if isinstance(value, int | float) else None,
                     "result": result})
    name = command.replace("_", "-")
    if len(runs) == 1:
        return {"command": name, **runs[0]}
    return {"command": name, "runs": runs}


def check_composed(command: str, args: list[str], dirs: list[Path]) -> str | None:
    """What a run would refuse in the config ``--cfg`` printed (a group option of the wrong
    type, an unknown key, a seed that is not an integer), as one line; None when it is fine.
    ``dirs``: the ``--config-dir`` folders of the command line."""
    from hydra import compose, initialize_config_dir

    from nascli.config import RUNTIME, ConfigError, component_options

    overrides = [a for a in args if "=" in a and not a.startswith("-")
                 and not a.lstrip("+~").startswith("hydra")]
    if dirs:
        overrides.append("hydra.searchpath=[" + ",".join(f"file://{d}" for d in dirs) + "]")
    try:
        with initialize_config_dir(config_dir=str(config_dir()), version_base=None):
            cfg = compose(command, overrides=overrides)
    except (HydraException, OmegaConfBaseException):
        return None  # Hydra has already said what it could not compose
    try:
        for group in RUNTIME:
            if cfg.get(group) is not None:
                component_options(cfg[group], group)
    except ConfigError as exc:
        return str(exc)
    seed = cfg.get("seed")
    if seed is not None and (isinstance(seed, bool) or not isinstance(seed, int)):
        return f"seed={seed!r} is invalid; expected an integer"
    return None


def _tasks() -> dict[str, Callable[[DictConfig], Any]]:
    from nascli.commands.correlate import correlate_task
    from nascli.commands.evaluate import evaluate_task
    from nascli.commands.search import search_task
    from nascli.commands.train_final import train_final_task

    return {"search": search_task, "evaluate": evaluate_task, "train_final": train_final_task,
            "correlate": correlate_task}


USAGE = {
    "search": "nascli search [key=value ...] [-m] [--json]",
    "evaluate": "nascli evaluate ARCH [key=value ...] [-m] [--json]",
    "train_final": "nascli train-final ARCH [key=value ...] [-m] [--json]",
    "correlate": "nascli correlate [key=value ...] [-m] [--json]",
}


def _usage(job: str) -> str:
    """The usage line of one command, for its ``--help`` (the ``nascli_usage`` resolver)."""
    return "Usage: " + USAGE.get(str(job), f"nascli {job} [key=value ...]")


def run_hydra(command: str, args: list[str]) -> int:
    """Run ``command``'s Hydra entry point with ``args``; returns the exit code."""
    from omegaconf import OmegaConf

    OmegaConf.register_new_resolver("nascli_usage", _usage, replace=True)
    task = guarded(_tasks()[command])
    main = hydra.main(config_path=str(config_dir()), config_name=command, version_base=None)(task)
    saved, saved_env = sys.argv, os.environ.get("HYDRA_FULL_ERROR")
    sys.argv = [f"nascli {command.replace('_', '-')}", *args]
    # Hydra then re-raises composition errors instead of printing them over several lines
    os.environ["HYDRA_FULL_ERROR"] = "1"
    try:
        main()
    except (HydraException, OmegaConfBaseException) as exc:
        unknown = unknown_key(exc)
        if unknown:  # a mistyped key is the user's to fix, like a bad value
            print(f"nascli: error: {unknown}", file=sys.stderr)
            return USER_ERROR_CODE
        print(f"nascli: error: {one_line(str(exc))}", file=sys.stderr)
        return 1
    except ValueError as exc:  # Hydra's own flag checks, e.g. -m with --cfg
        if not str(exc).startswith("Only one of"):
            raise
        print(f"nascli: error: {one_line(str(exc))}", file=sys.stderr)
        return USER_ERROR_CODE
    except OSError as exc:  # Hydra could not create the output folder or its log file
        where = f" ({exc.filename})" if exc.filename else ""
        print(f"nascli: error: cannot write the run's output{where}: {exc.strerror or exc}",
              file=sys.stderr)
        return INTERNAL_ERROR_CODE
    except SystemExit as exc:
        code = exc.code
        return code if isinstance(code, int) else (0 if code is None else 1)
    finally:
        sys.argv = saved
        if saved_env is None:
            os.environ.pop("HYDRA_FULL_ERROR", None)
        else:
            os.environ["HYDRA_FULL_ERROR"] = saved_env
    return 0


def unknown_key(exc: BaseException) -> str | None:
    """``KEY: unknown key; valid keys of SECTION: ...`` for Hydra's "Could not override 'KEY'"
    (an override of a key the config does not have); None for any other error."""
    from omegaconf.errors import ConfigAttributeError, ConfigKeyError

    cause, node = exc.__cause__, getattr(exc.__cause__, "parent_node", None)
    key = str(getattr(cause, "full_key", "") or "")
    if not isinstance(cause, ConfigAttributeError | ConfigKeyError) or node is None or not key:
        return None
    valid = [str(k) for k in node if not str(k).startswith("_") and k != "hydra"]
    if not valid:
        return None
    section = key.rpartition(".")[0]
    return f"{key}: unknown key; valid keys of {section or 'the config'}: {', '.join(valid)}"


def one_line(message: str) -> str:
    """Hydra's and OmegaConf's multi-line messages folded into one line."""
    skip = ("full_key:", "object_type=", "reference_type=", "Set the environment variable")
    lines = [ln.strip().rstrip(".") for ln in message.splitlines()]
    return "; ".join(ln for ln in lines if ln and not ln.startswith(skip))
