"""nascli fits the habits of Hydra and shell users (issue 13): Hydra's flags in both
spellings, shell completion, --cfg job validation, --json on stdout, group-readable files, no
stray run folders, launcher hints, per-command help, training on the whole training set."""

from __future__ import annotations

import json
import os
import shutil
import stat
import subprocess
import sys
from pathlib import Path

import pytest
from cli_helpers import TINY_FINAL, TINY_ZC, nascli_in, one_error_line

ROOT = Path(__file__).resolve().parents[2]
SEARCH = [*TINY_ZC, "proxy=synflow", "budget.evaluations=2"]


@pytest.fixture(scope="module")
def json_run(tmp_path_factory):
    """One search with --json, then its resume with --json (shared by the tests below)."""
    cwd = tmp_path_factory.mktemp("json")
    first = nascli_in(cwd, "search", *SEARCH, "--json")
    assert first.returncode == 0, first.stderr[-2000:]
    run = json.loads(first.stdout)["run_dir"]
    second = nascli_in(cwd, "search", f"resume={run}", "budget.evaluations=3", "--json")
    assert second.returncode == 0, second.stderr[-2000:]
    return cwd, Path(run), first, second


def test_json_on_stdout_names_the_run_the_best_and_its_score(json_run):
    _cwd, run, first, second = json_run
    out = json.loads(first.stdout)  # stdout holds the JSON object and nothing else
    assert out["command"] == "search" and Path(out["run_dir"]) == run
    assert out["score"] == out["result"]["score"] and out["result"]["arch"].startswith("N: ")
    assert out["result"]["genotype"]["hash"] and "val_acc" not in out["result"]["metrics"]
    assert "best" in first.stderr or "search finished" in first.stderr  # tables on stderr
    assert json.loads(second.stdout)["run_dir"] == str(run)


def test_a_resume_writes_into_the_run_it_continues(json_run):
    cwd, run, _, _ = json_run
    folders = [p for p in (cwd / "outputs" / "search").glob("*/*") if p.is_dir()]
    assert folders == [run]  # no stray folder for the resume
    rows = (run / "history.jsonl").read_text().splitlines()
    assert len(rows) == 3
    log = (run / "search.log").read_text()
    assert log.count("search finished") == 2  # both runs in the run's own log, once each


def test_run_files_are_readable_by_the_group(json_run):
    _, run, _, _ = json_run
    umask = os.umask(0)
    os.umask(umask)
    for path in run.rglob("*"):
        if path.is_file():
            assert stat.S_IMODE(path.stat().st_mode) == 0o666 & ~umask, path


def test_a_refused_command_leaves_no_run_folder(tmp_path):
    proc = nascli_in(tmp_path, "search", *SEARCH, "budget.evaluations=-3")
    one_error_line(proc, "budget.evaluations=-3")
    assert not (tmp_path / "outputs").exists()


def test_hydra_flags_work_with_a_space_before_their_value(tmp_path):
    proc = nascli_in(tmp_path, "search", "--info", "plugins")
    assert proc.returncode == 0 and "BasicLauncher" in proc.stdout + proc.stderr
    proc = nascli_in(tmp_path, "search", "--cfg", "job", "-p", "strategy")
    assert proc.returncode == 0 and "_target_: nascli.strategies.RandomSearch" in proc.stdout
    plugins = ROOT / "tests" / "plugins" / "configs"
    env = dict(os.environ, PYTHONPATH=str(ROOT / "tests" / "plugins"))
    proc = subprocess.run([sys.executable, "-m", "nascli", "search", "--config-dir",
                           str(plugins), "proxy=width_score", "--cfg", "job", "-p", "proxy"],
                          cwd=tmp_path, capture_output=True, text=True, timeout=120, env=env)
    assert proc.returncode == 0, proc.stderr
    assert "width_score" in proc.stdout or "WidthScore" in proc.stdout


def test_cfg_job_refuses_what_a_run_would_refuse(tmp_path):
    proc = nascli_in(tmp_path, "search", "strategy=evolution", "strategy.population_size=abc",
                     "--cfg", "job")
    one_error_line(proc, "strategy.population_size", "abc")
    proc = nascli_in(tmp_path, "search", "seed=abc", "--cfg", "job")
    one_error_line(proc, "seed='abc' is invalid; expected an integer")
    proc = nascli_in(tmp_path, "search", "-m", "--cfg", "job")  # Hydra's rule, in one line
    one_error_line(proc, "Only one of --run, --multirun, --cfg")


def test_each_command_help_names_that_command(tmp_path):
    proc = nascli_in(tmp_path, "correlate", "--help")
    assert proc.returncode == 0 and "Usage: nascli correlate" in proc.stdout
    assert "nascli search [" not in proc.stdout


def _complete(words: str, cword: int) -> list[str]:
    exe = shutil.which("nascli") or ""
    if not exe:
        pytest.skip("the nascli console script is not on PATH")
    env = dict(os.environ, _NASCLI_COMPLETE="complete_bash", COMP_WORDS=words,
               COMP_CWORD=str(cword))
    proc = subprocess.run([exe], env=env, capture_output=True, text=True, timeout=60)
    return proc.stdout.split()


def test_shell_completion_completes_commands_groups_options_and_keys(tmp_path):
    assert "train-final" in _complete("nascli tr", 1)
    assert _complete("nascli search strategy=ev", 2) == ["strategy=evolution"]
    assert "strategy=" in _complete("nascli search strat", 2)
    assert "train.epochs=" in _complete("nascli train-final nasnet-a train.ep", 3)
    assert "strategy.population_size=" in _complete("nascli search strategy.pop", 2)
    proc = nascli_in(tmp_path, "search", "-sc", "install=bash")
    one_error_line(proc, "nascli --install-completion")


def test_a_missing_launcher_plugin_is_one_line_naming_the_package(tmp_path):
    import importlib.util

    assert importlib.util.find_spec("hydra_plugins.hydra_joblib_launcher")  # installed by default
    if importlib.util.find_spec("hydra_plugins.hydra_ray_launcher") is not None:
        pytest.skip("the Ray launcher is installed here")
    proc = nascli_in(tmp_path, "search", "-m", "hydra/launcher=ray", "seed=0,1")
    one_error_line(proc, "hydra/launcher=ray", "hydra-ray-launcher")


def test_train_final_trains_on_the_whole_training_set_with_json(tmp_path):
    proc = nascli_in(tmp_path, "train-final", "nasnet-a", *TINY_FINAL, "train.epochs=1",
                     "dataset.val_fraction=0", "--json")
    assert proc.returncode == 0, proc.stderr[-2000:]
    out = json.loads(proc.stdout)
    assert out["command"] == "train-final" and out["result"]["test_acc"] is not None
    assert out["result"]["history"][0]["val_acc"] is None  # nothing selected on test data
    for name in ("nasnet_cifar10_final", "darts_cifar10_final"):
        text = (ROOT / "configs" / "experiment" / f"{name}.yaml").read_text()
        assert "val_fraction: 0" in text, name


def test_the_readme_test_command_works_from_a_virtual_environment():
    """The wheel test builds its venv on the running environment's packages (a venv's, not the
    base interpreter's): checked here by where this interpreter's packages are."""
    import site

    assert any(Path(p).is_dir() for p in site.getsitepackages())
    assert sys.prefix in " ".join(site.getsitepackages())
