"""One rich console shared by log lines and progress bars, so bars are never garbled."""

from __future__ import annotations

import logging
import os
import sys

from rich.console import Console
from rich.logging import RichHandler

_CONSOLE: Console | None = None


def console() -> Console:
    """The process-wide console (stderr; fixed width when not a terminal)."""
    global _CONSOLE
    if _CONSOLE is None:
        tty = sys.stderr.isatty()
        # without a TTY rich wraps at 80 columns: log lines read better wide
        width = None if tty else int(os.environ.get("COLUMNS", "160"))
        _CONSOLE = Console(stderr=True, width=width)
    return _CONSOLE


def reset_console() -> None:
    """Forget the console (tests swap stderr between runs)."""
    global _CONSOLE
    _CONSOLE = None


def make_console_handler() -> logging.Handler:
    """RichHandler on the shared console (used by configs/hydra/job_logging/nascli.yaml)."""
    reset_console()
    return RichHandler(
        console=console(), show_path=False, rich_tracebacks=False, markup=False,
        log_time_format="[%X]",
    )


def is_interactive() -> bool:
    """True when live progress bars make sense (stderr is a terminal)."""
    return console().is_terminal
