"""``logger=tensorboard``: the scalars of a search (per evaluation, appended on resume without
repeats) and of train-final (per epoch, rank 0 only), read back from the event files; and the
one-line error when the extra is missing.

Train-final runs through Hydra's entry point in this process (as tests/training/test_ddp.py
does) while the search runs beside it, so the file takes seconds.
"""

from __future__ import annotations

import json
import math
import os
import subprocess
import sys
from pathlib import Path

import pytest
from cli_helpers import TINY_FINAL, TINY_ZC
from omegaconf import OmegaConf

from nascli.commands import run_hydra
from nascli.config import ConfigError
from nascli.engine.loggers import NoLogger, TensorBoardLogger, build_logger
from nascli.errors import UserError

SEARCH = [*TINY_ZC, "proxy=params"]
MISSING = 'pip install "nascli[tensorboard]"'


def _scalars(folder: Path) -> dict[str, list[tuple[int, float]]]:
    """Every scalar series of the event files in ``folder``: tag -> [(step, value)]."""
    from tensorboard.backend.event_processing.event_accumulator import EventAccumulator

    acc = EventAccumulator(str(folder))
    acc.Reload()
    return {tag: [(e.step, e.value) for e in acc.Scalars(tag)] for tag in acc.Tags()["scalars"]}


def _events(folder: Path) -> list[Path]:
    return sorted(folder.glob("events.out.tfevents.*"))


def _history(run: Path) -> list[dict]:
    return [json.loads(line) for line in (run / "history.jsonl").read_text().splitlines()]


def _start(cwd: Path, *args: str) -> tuple[subprocess.Popen, Path]:
    """``python -m nascli ARGS`` in the background; its output goes to a file."""
    out = cwd / f"nascli-{len(list(cwd.glob('nascli-*.txt')))}.txt"
    env = dict(os.environ, COLUMNS="200", PYTHONWARNINGS="ignore")
    with out.open("w") as f:
        proc = subprocess.Popen([sys.executable, "-m", "nascli", *args], cwd=cwd, stdout=f,
                                stderr=subprocess.STDOUT, env=env)
    return proc, out


def _wait(started: tuple[subprocess.Popen, Path]) -> None:
    proc, out = started
    try:
        assert proc.wait(timeout=300) == 0, out.read_text()
    finally:
        if proc.poll() is None:  # timed out: do not leave it running
            proc.kill()
            proc.wait()


@pytest.fixture(scope="module")
def runs(tmp_path_factory):
    """A search of 2 evaluations resumed to 4, and a train-final on 2 DDP ranks of 2 epochs
    resumed to 3, all with ``logger=tensorboard`` given once, at the start.

    The search runs as two commands in the background (a finished search keeps its run
    directory locked until its process exits) while train-final runs in this process."""
    pytest.importorskip("tensorboard")
    root = tmp_path_factory.mktemp("tb")
    search, final = root / "search", root / "final"
    started = _start(root, "search", *SEARCH, "budget.evaluations=2", "logger=tensorboard",
                     f"hydra.run.dir={search}")
    first = run_hydra("train_final", ["arch=nasnet-a", *TINY_FINAL, "train.epochs=2",
                                      "device.ranks=2", "logger=tensorboard",
                                      f"hydra.run.dir={final}"])
    _wait(started)
    started = _start(root, "search", f"resume={search}", "budget.evaluations=4", "progress=off")
    again = run_hydra("train_final", [f"resume={final}", "train.epochs=3",
                                      f"hydra.run.dir={root / 'resume-final'}"])
    _wait(started)
    assert (first, again) == (0, 0)
    return {"search": search, "final": final}


def test_search_logs_each_new_evaluation_once(runs):
    run = runs["search"]
    rows = _history(run)
    assert len(rows) == 4
    assert len(_events(run / "tensorboard")) == 2  # the resume appended a second event file
    scalars = _scalars(run / "tensorboard")
    assert set(scalars) == {"search/score", "search/params", "search/macs", "search/best_score"}
    for series in scalars.values():  # step = finished evaluations; restored ones not repeated
        assert [step for step, _ in series] == [1, 2, 3, 4]
    assert [v for _, v in scalars["search/score"]] == pytest.approx([r["score"] for r in rows])
    assert [v for _, v in scalars["search/params"]] == [r["params"] for r in rows]
    assert [v for _, v in scalars["search/macs"]] == [r["macs"] for r in rows]
    best = [max(r["score"] for r in rows[: i + 1]) for i in range(len(rows))]
    assert [v for _, v in scalars["search/best_score"]] == pytest.approx(best)


def test_train_final_logs_each_epoch_once_from_rank_0(runs):
    run = runs["final"]
    history = json.loads((run / "final.json").read_text())["history"]
    assert [row["epoch"] for row in history] == [1, 2, 3]
    assert "2 DDP ranks" in (run / "train_final.log").read_text()
    assert len(_events(run / "tensorboard")) == 2  # one per run: rank 0's, none from rank 1
    scalars = _scalars(run / "tensorboard")
    assert set(scalars) == {"train/loss", "train/lr", "val/acc", "val/loss"}
    for tag, key in (("train/loss", "train_loss"), ("train/lr", "lr"), ("val/acc", "val_acc"),
                     ("val/loss", "val_loss")):
        assert [step for step, _ in scalars[tag]] == [1, 2, 3], tag
        assert [v for _, v in scalars[tag]] == pytest.approx([r[key] for r in history],
                                                              rel=1e-5, abs=1e-7), tag


def test_logger_skips_missing_values_and_opens_its_folder_at_the_first_step(tmp_path):
    pytest.importorskip("tensorboard")
    logger = TensorBoardLogger(tmp_path, subdir="tb")
    assert not (tmp_path / "tb").exists()  # nothing written until there is something to log
    logger.log(1, {"a": 1.0, "b": None, "c": math.nan})
    logger.log(2, {"a": 2, "b": 0.5, "c": math.inf})
    logger.close()
    again = TensorBoardLogger(tmp_path, subdir="tb")  # a resumed run: same folder, new file
    again.log(3, {"a": 3.0})
    again.close()
    assert len(_events(tmp_path / "tb")) == 2
    assert _scalars(tmp_path / "tb") == {"a": [(1, 1.0), (2, 2.0), (3, 3.0)], "b": [(2, 0.5)]}


def test_logger_group_default_and_validation(tmp_path):
    assert isinstance(build_logger(OmegaConf.create({}), tmp_path), NoLogger)  # older runs
    node = OmegaConf.create({"logger": {"_target_": "nascli.engine.loggers.TensorBoardLogger",
                                        "subdir": "../elsewhere"}})
    with pytest.raises(ConfigError, match=r"^logger\.subdir='\.\./elsewhere' is invalid"):
        build_logger(node, tmp_path)


def test_resume_may_switch_the_logger(tmp_path):
    from nascli.commands.runs import open_resumed_run

    run = tmp_path / "run"
    run.mkdir()
    original = {k: {} for k in ("search_space", "strategy", "proxy", "dataset", "budget")}
    OmegaConf.save(OmegaConf.create({**original, "seed": 0}), run / "config.yaml")
    given = OmegaConf.create({"resume": str(run), "logger": {"_target_": "x.Y"}})
    run_dir, cfg = open_resumed_run(given, ["resume=...", "logger=tensorboard"])
    run_dir.unlock()
    assert cfg.logger._target_ == "x.Y"


@pytest.mark.parametrize("command", ["search", "train_final"])
def test_missing_tensorboard_is_one_line_before_anything_is_written(command, tmp_path,
                                                                    monkeypatch, capsys):
    monkeypatch.setitem(sys.modules, "torch.utils.tensorboard", None)  # import fails
    with pytest.raises(UserError, match=r"^logger=tensorboard needs TensorBoard: pip install"):
        TensorBoardLogger(tmp_path)
    out = tmp_path / "run"
    args = [*SEARCH] if command == "search" else ["arch=nasnet-a", *TINY_FINAL]
    code = run_hydra(command, [*args, "logger=tensorboard", f"hydra.run.dir={out}"])
    err = capsys.readouterr().err
    assert code == 2 and "Traceback" not in err, err
    lines = [ln for ln in err.splitlines() if ln.startswith("nascli: error:")]
    assert len(lines) == 1 and MISSING in lines[0], err
    written = {p.name for p in out.iterdir()} if out.exists() else set()
    assert written <= {".hydra", "search.log", "train_final.log"}, written
