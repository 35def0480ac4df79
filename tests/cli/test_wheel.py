"""A built wheel ships the configs, and its console script runs from a fresh environment."""

from __future__ import annotations

import os
import site
import subprocess
import sys
import venv
import zipfile
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]


@pytest.mark.slow
def test_wheel_contains_configs_and_its_console_script_runs(tmp_path):
    subprocess.run(
        [sys.executable, "-m", "pip", "wheel", "--no-deps", "--no-build-isolation",
         "-w", str(tmp_path / "dist"), str(ROOT)],
        check=True, capture_output=True, timeout=300,
    )
    (wheel,) = (tmp_path / "dist").glob("nascli-*.whl")
    names = set(zipfile.ZipFile(wheel).namelist())
    for cfg in ("search.yaml", "evaluate.yaml", "train_final.yaml", "strategy/evolution.yaml",
                "hydra/job_logging/nascli.yaml", "__init__.py"):
        assert f"nascli/configs/{cfg}" in names, cfg
    # a venv that sees the packages of the environment running the tests (torch etc.: a venv
    # or the system Python) but gets nascli only from the wheel. system_site_packages would
    # show the base interpreter's packages, not those of a venv that runs pytest
    env_dir = tmp_path / "venv"
    venv.EnvBuilder(with_pip=True).create(env_dir)
    (site_dir,) = (env_dir / "lib").glob("python*/site-packages")
    outer = [p for p in site.getsitepackages() if Path(p).is_dir()]
    (site_dir / "_outer_environment.pth").write_text("\n".join(outer) + "\n")
    py = env_dir / "bin" / "python"
    subprocess.run([str(py), "-m", "pip", "install", "--no-deps", "--no-index", str(wheel)],
                   check=True, capture_output=True, timeout=300)
    work = tmp_path / "work"
    work.mkdir()
    env = {k: v for k, v in os.environ.items() if k != "PYTHONPATH"}
    proc = subprocess.run(
        [str(env_dir / "bin" / "nascli"), "search", "--cfg", "job"], cwd=work,
        capture_output=True, text=True, timeout=300, env=env,
    )
    assert proc.returncode == 0, proc.stderr
    assert "name: mnist5k" in proc.stdout
    where = subprocess.run(
        [str(py), "-c", "import nascli.config as c; print(c.config_dir())"], cwd=work,
        capture_output=True, text=True, timeout=120, env=env,
    )
    assert str(env_dir) in where.stdout, where.stdout + where.stderr
    proc = subprocess.run(
        [str(env_dir / "bin" / "nascli"), "evaluate", "nasnet-a", "proxy=params", "device=cpu"],
        cwd=work, capture_output=True, text=True, timeout=300, env=env,
    )
    assert proc.returncode == 0, proc.stderr
    assert list((work / "outputs" / "evaluate").rglob("evaluation.json"))
