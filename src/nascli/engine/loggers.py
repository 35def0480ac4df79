"""Metric loggers, the ``logger`` config group: ``none`` (the default) or ``tensorboard``.

A logger takes named scalars at an integer step. A search logs one step per finished
evaluation (step = finished evaluations so far, restored ones included, so a resumed search
continues the same curves); train-final logs one step per epoch (step = the epoch, from 1),
on rank 0 only. The run directory's ``history.jsonl`` and ``final.json`` stay the record; a
logger is a view for watching a run live (docs/logging.md).

TensorBoard is an optional extra (``pip install "nascli[tensorboard]"``), imported when
``logger=tensorboard`` is chosen, so a missing package fails before anything runs.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Mapping
from pathlib import Path
from typing import Any

from omegaconf import DictConfig

from nascli.errors import UserError

#: what a logger receives: tag -> value (None, NaN and infinities are left out)
Scalars = Mapping[str, float | int | None]


class NoLogger:
    """``logger=none``: scalars go nowhere."""

    def __init__(self, run_dir: str | Path | None = None) -> None:
        self.run_dir = run_dir

    def log(self, step: int, scalars: Scalars) -> None:
        """Drop ``scalars``."""

    def close(self) -> None:
        """Nothing to close."""


class TensorBoardLogger:
    """``logger=tensorboard``: scalars as TensorBoard event files in ``RUN_DIR/<subdir>``.

    The writer (and its folder) is created at the first :meth:`log`, so a run that fails
    before its first step leaves no event file; each step is flushed, so a killed run loses
    nothing it logged. A resumed run adds a new event file to the same folder, which
    TensorBoard reads as one run.
    """

    def __init__(self, run_dir: str | Path, subdir: str = "tensorboard") -> None:
        if not subdir or Path(subdir).is_absolute() or ".." in Path(subdir).parts:
            raise ValueError(f"subdir={subdir!r} is invalid; expected a folder name inside "
                             "the run directory")
        self._writer_class = _summary_writer()  # now: a missing extra fails at start
        self.path = Path(run_dir) / subdir
        self._writer: Any = None

    def log(self, step: int, scalars: Scalars) -> None:
        """Write each finite value of ``scalars`` at ``step`` and flush."""
        if self._writer is None:
            self._writer = self._writer_class(log_dir=str(self.path))
        for tag, value in scalars.items():
            if value is not None and math.isfinite(value):
                self._writer.add_scalar(tag, float(value), global_step=int(step))
        self._writer.flush()

    def close(self) -> None:
        """Flush and close the event file (if one was opened)."""
        if self._writer is not None:
            self._writer.close()
            self._writer = None


def _summary_writer() -> Callable[..., Any]:
    """torch's ``SummaryWriter``; one line naming the extra when TensorBoard is missing."""
    try:
        from torch.utils.tensorboard import SummaryWriter
    except ImportError:
        raise UserError('logger=tensorboard needs TensorBoard: pip install "nascli[tensorboard]" '
                        "(or use logger=none)") from None
    return SummaryWriter


def build_logger(cfg: DictConfig, run_dir: str | Path) -> Any:
    """The logger of ``cfg.logger`` writing under ``run_dir``; :class:`NoLogger` when the
    config has no ``logger`` node (a run or checkpoint from before the group existed)."""
    from nascli.config import instantiate

    node = cfg.get("logger")
    if node is None:
        return NoLogger(run_dir)
    return instantiate(node, "logger", run_dir=Path(run_dir))


def evaluation_scalars(row: Mapping[str, Any], best: Mapping[str, Any] | None) -> dict[str, Any]:
    """The scalars of one search history row: its score (none for a failed evaluation),
    parameters, multiply-adds and the best score so far (``best``: the best row)."""
    return {"search/score": row.get("score"), "search/params": row.get("params"),
            "search/macs": row.get("macs"),
            "search/best_score": best.get("score") if best else None}


def epoch_scalars(row: Mapping[str, Any]) -> dict[str, Any]:
    """The scalars of one train-final epoch row: training loss, learning rate at the epoch's
    end, and validation accuracy and loss (none without a validation split)."""
    return {"train/loss": row.get("train_loss"), "train/lr": row.get("lr"),
            "val/acc": row.get("val_acc"), "val/loss": row.get("val_loss")}


def log_evaluations(logger: Any, search: Any) -> Callable[[dict[str, Any]], None]:
    """A search's ``on_evaluation`` callback: each new row to ``logger`` at step = finished
    evaluations so far (rows restored on resume are counted, never logged again)."""

    def on_evaluation(row: dict[str, Any]) -> None:
        logger.log(len(search.history), evaluation_scalars(row, search.best()))

    return on_evaluation
