"""Whole-search sweeps through Hydra launcher plugins (issue 12, item 2): the SLURM setup
composes with overrides, and its local twin runs each job of a sweep in its own process."""

from __future__ import annotations

import json

import pytest
from cli_helpers import TINY_ZC

pytest.importorskip("hydra_plugins.hydra_submitit_launcher")


def test_the_slurm_launcher_config_composes_with_overrides(nascli):
    proc = nascli("search", "hydra/launcher=slurm", "hydra.launcher.partition=gpu",
                  "hydra.launcher.gpus_per_node=4", "--cfg", "hydra", "-p", "hydra.launcher")
    assert proc.returncode == 0, proc.stderr[-2000:]
    assert "partition: gpu" in proc.stdout and "gpus_per_node: 4" in proc.stdout
    assert "SlurmLauncher" in proc.stdout and "timeout_min: 1440" in proc.stdout


def test_a_sweep_runs_each_job_in_its_own_process(nascli):
    proc = nascli("search", "-m", "hydra/launcher=local_jobs", *TINY_ZC, "proxy=synflow",
                  "budget.evaluations=2", "seed=0,1")
    assert proc.returncode == 0, proc.stderr[-2000:]
    histories = sorted((nascli.cwd / "multirun").rglob("history.jsonl"))
    assert [h.parent.name for h in histories] == ["0", "1"]
    for h in histories:
        rows = [json.loads(line) for line in h.read_text().splitlines()]
        assert len(rows) == 2 and all(r["status"] == "ok" for r in rows)
    assert any((nascli.cwd / "multirun").rglob(".submitit"))  # submitit ran the jobs
