"""Hydra entry points of the config-driven commands (search, evaluate, train-final).

``run_hydra`` sets ``sys.argv`` for the command, calls its ``@hydra.main`` function and
restores ``sys.argv``. Task functions turn the errors users cause (bad values, missing files)
into one line on stderr and exit code 2, instead of Hydra's traceback.
"""

from __future__ import annotations

import contextlib
import functools
import logging
import os
import sys
from collections.abc import Callable
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
            return task(cfg)
        except user_error_types() as exc:
            _report(str(exc).splitlines()[0] if str(exc) else type(exc).__name__,
                    USER_ERROR_CODE)
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


def _tasks() -> dict[str, Callable[[DictConfig], Any]]:
    from nascli.commands.correlate import correlate_task
    from nascli.commands.evaluate import evaluate_task
    from nascli.commands.search import search_task
    from nascli.commands.train_final import train_final_task

    return {"search": search_task, "evaluate": evaluate_task, "train_final": train_final_task,
            "correlate": correlate_task}


def run_hydra(command: str, args: list[str]) -> int:
    """Run ``command``'s Hydra entry point with ``args``; returns the exit code."""
    task = guarded(_tasks()[command])
    main = hydra.main(config_path=str(config_dir()), config_name=command, version_base=None)(task)
    saved, saved_env = sys.argv, os.environ.get("HYDRA_FULL_ERROR")
    sys.argv = [f"nascli {command.replace('_', '-')}", *args]
    # Hydra then re-raises composition errors instead of printing them over several lines
    os.environ["HYDRA_FULL_ERROR"] = "1"
    try:
        main()
    except (HydraException, OmegaConfBaseException) as exc:
        print(f"nascli: error: {one_line(str(exc))}", file=sys.stderr)
        return 1
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


def one_line(message: str) -> str:
    """Hydra's and OmegaConf's multi-line messages folded into one line."""
    skip = ("full_key:", "object_type=", "reference_type=", "Set the environment variable")
    lines = [ln.strip().rstrip(".") for ln in message.splitlines()]
    return "; ".join(ln for ln in lines if ln and not ln.startswith(skip))
