"""A user's strategy, proxy and dataset from their own folder: --config-dir plus a module on
PYTHONPATH, no edit of nascli (docs/extending.md)."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest
from cli_helpers import TINY, run_dirs

PLUGINS = Path(__file__).resolve().parents[1] / "plugins"


def _run(tmp_path: Path, *args: str) -> subprocess.CompletedProcess:
    env = dict(os.environ, COLUMNS="200", PYTHONWARNINGS="ignore",
               PYTHONPATH=os.pathsep.join([str(PLUGINS), os.environ.get("PYTHONPATH", "")]))
    return subprocess.run([sys.executable, "-m", "nascli", "search", "--config-dir",
                           str(PLUGINS / "configs"), *args], cwd=tmp_path, capture_output=True,
                          text=True, timeout=600, env=env)


@pytest.mark.parametrize("choice", ["strategy=first_choice", "proxy=width_score",
                                    "dataset=stripes"])
def test_a_user_component_runs_a_search(tmp_path, choice):
    group = choice.split("=")[0]
    tiny = [o for o in TINY if not o.startswith((f"{group}.", f"{group}="))]
    proc = _run(tmp_path, choice, *tiny, "budget.evaluations=3")
    assert proc.returncode == 0, proc.stderr[-3000:]
    (run,) = run_dirs(tmp_path)
    rows = [json.loads(line) for line in (run / "history.jsonl").read_text().splitlines()]
    assert len(rows) == 3 and all(r["status"] == "ok" for r in rows), rows
    manifest = json.loads((run / "manifest.json").read_text())
    group, option = choice.split("=")
    if group == "proxy":
        assert manifest["proxy"] == option
        assert all(r["score"] <= 0 and "params_seen" in r["metrics"] for r in rows)
    elif group == "strategy":
        assert manifest["strategy"] == option
    else:
        assert manifest["dataset"]["name"] == "my_nas_plugins.stripes"
        assert manifest["dataset"]["num_classes"] == 2


def test_a_user_option_with_a_typo_lists_the_users_options_too(tmp_path):
    proc = _run(tmp_path, "strategy=first_choise", *TINY)
    assert proc.returncode != 0
    line = [ln for ln in proc.stderr.splitlines() if ln.startswith("nascli: error:")]
    assert len(line) == 1 and "first_choice" in line[0] and "evolution" in line[0], proc.stderr
