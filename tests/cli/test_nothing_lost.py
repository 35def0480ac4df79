"""A run directory survives a second process, a new search pointed at it, damaged files,
conflicting resumes, SIGTERM, a full disk and hostile input; each refusal is one line."""

from __future__ import annotations

import json
import os
import resource
import shutil
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
import torch
from cli_helpers import TINY, TINY_ZC, one_error_line, run_dirs

from conftest import run_nascli
from nascli.engine.rundir import RunDir, read_history

FAST = [*TINY_ZC, "proxy=synflow"]


@pytest.fixture(scope="module")
def base_run(tmp_path_factory) -> Path:
    """A finished 3-evaluation synflow search, made once."""
    cwd = tmp_path_factory.mktemp("base")
    proc = run_nascli("search", *FAST, "budget.evaluations=3", cwd=cwd)
    assert proc.returncode == 0, proc.stderr
    (path,) = run_dirs(cwd)
    return path


@pytest.fixture
def run(nascli, base_run) -> Path:
    """A private copy of the finished search, inside this test's folder."""
    path = nascli.cwd / "outputs" / "search" / "copy" / "run"
    shutil.copytree(base_run, path)
    return path


def _snapshot(path: Path) -> dict[str, bytes]:
    files = [p for p in path.rglob("*") if p.is_file() and p.name != ".lock"]
    return {str(p.relative_to(path)): p.read_bytes() for p in files}


def test_a_new_search_never_writes_into_a_used_run_directory(nascli, run):
    before = _snapshot(run)
    proc = nascli("search", *FAST, "strategy=evolution", f"hydra.run.dir={run}")
    one_error_line(proc, str(run), "already holds a run", "resume=")
    assert _snapshot(run) == before  # Hydra's own .hydra/ files and the log too
    proc = nascli("search", f"resume={run}", "budget.evaluations=4")  # still resumable
    assert proc.returncode == 0, proc.stderr
    assert len(read_history(run / "history.jsonl")) == 4


def test_a_second_process_cannot_resume_a_run_in_use(nascli, run):
    holder = RunDir(run)
    holder.lock()
    try:
        proc = nascli("search", f"resume={run}", "budget.evaluations=5")
        one_error_line(proc, "in use by another nascli process", f"pid {os.getpid()}")
    finally:
        holder.unlock()
    assert len(read_history(run / "history.jsonl")) == 3
    # a lock left by a process that died is taken over
    (run / ".lock").write_text("999999\n")
    proc = nascli("search", f"resume={run}", "budget.evaluations=4")
    assert proc.returncode == 0, proc.stderr
    assert [r["id"] for r in read_history(run / "history.jsonl")] == [0, 1, 2, 3]


def test_two_concurrent_resumes_one_wins_the_other_exits_2(nascli, run):
    env = dict(os.environ, COLUMNS="200", PYTHONWARNINGS="ignore")
    cmd = [sys.executable, "-m", "nascli", "search", f"resume={run}", "budget.evaluations=12"]
    procs = [subprocess.Popen(cmd, cwd=nascli.cwd, env=env, stdout=subprocess.PIPE,
                              stderr=subprocess.PIPE, text=True) for _ in range(2)]
    results = [(p.wait(timeout=300), p.stderr.read()) for p in procs]
    codes = sorted(code for code, _ in results)
    assert codes == [0, 2], results
    loser = next(err for code, err in results if code == 2)
    assert "in use by another nascli process" in loser
    ids = [json.loads(line)["id"] for line in (run / "history.jsonl").read_text().splitlines()]
    assert ids == list(range(12))


@pytest.mark.parametrize("override", ["strategy=evolution", "proxy=snip", "seed=1",
                                      "dataset.val_fraction=0.3", "search_space.blocks=3"])
def test_resume_refuses_to_change_what_is_searched(nascli, run, override):
    before = _snapshot(run)
    key = override.split("=")[0]
    one_error_line(nascli("search", f"resume={run}", override), key, "resumed search keeps")
    assert _snapshot(run)["history.jsonl"] == before["history.jsonl"]


def test_resume_records_itself_and_keeps_the_original_command(nascli, run):
    first = json.loads((run / "manifest.json").read_text())
    proc = nascli("search", f"resume={run}", "budget.evaluations=5", "progress=off")
    assert proc.returncode == 0, proc.stderr
    manifest = json.loads((run / "manifest.json").read_text())
    assert manifest["command"] == first["command"]
    assert manifest["started_at"] == first["started_at"]
    assert len(manifest["resumes"]) == 1 and "budget.evaluations=5" in \
        manifest["resumes"][0]["command"]
    assert manifest["status"] == "finished" and manifest["evaluations"] == 5
    assert "3 finished evaluations reused, 0 to re-run" in (run / "search.log").read_text()


def test_resuming_a_train_final_directory_says_so(nascli):
    proc = nascli("train-final", "nasnet-a", *TINY[:4], "train.epochs=1", "train.max_steps=1",
                  "train.channels=4", "train.cells_per_stage=1", "device=cpu")
    assert proc.returncode == 0, proc.stderr
    (final,) = run_dirs(nascli.cwd, "train_final")
    one_error_line(nascli("search", f"resume={final}"), "train-final run directory")


@pytest.mark.parametrize(("name", "content", "needle"), [
    ("state.pt", b"garbage", "state.pt: unreadable state file"),
    ("state.pt", b"", "state.pt: unreadable state file"),
    ("state.pt", None, "state.pt: unreadable state file"),  # truncated
    ("manifest.json", b"{not json", "manifest.json: not valid JSON"),
    ("config.yaml", b"seed: [unclosed", "config.yaml: not a readable config"),
    ("history.jsonl", b'{"id": 0, "genotype": {}, "status": "ok", "score": 1}\n',
     "field 'hash'"),
    ("history.jsonl", b"[1, 2]\n", "must be a JSON object"),
    ("history.jsonl", None, "field 'score'"),  # a string score
])
def test_damaged_run_files_giveone_error_line(nascli, run, name, content, needle):
    path = run / name
    if content is None and name == "state.pt":
        content = path.read_bytes()[: len(path.read_bytes()) // 2]
    elif content is None:
        row = json.loads(path.read_text().splitlines()[0])
        row["score"] = "0.5"
        content = (json.dumps(row) + "\n").encode()
    path.write_bytes(content)
    one_error_line(nascli("search", f"resume={run}", "budget.evaluations=4"), needle)


def test_report_on_a_damaged_manifest_givesone_error_line(nascli, run):
    (run / "manifest.json").write_text("[[[")
    one_error_line(nascli("report", str(run)), "manifest.json")


@pytest.mark.parametrize(("override", "needle"), [
    ("seed=abc", "seed"), ("seed=-1", "seed=-1"), ("seed=1e23", "seed"), ("seed=1.5", "seed"),
    ("device.threads=-2", "device.threads=-2"), ("proxy.max_steps=0", "proxy.max_steps=0"),
    ("proxy.max_steps=-5", "proxy.max_steps=-5"), ("proxy.lr=-1", "proxy.lr=-1"),
    ("search_space.blocks=100000", "blocks"), ("budget.evaluations=0", "budget.evaluations"),
])
def test_bad_command_line_values_giveone_error_line(nascli, override, needle):
    proc = nascli("search", *TINY, override)
    line = one_error_line(proc, needle, code=proc.returncode)
    assert proc.returncode in (1, 2), line
    assert not run_dirs(nascli.cwd) or not (run_dirs(nascli.cwd)[0] / "history.jsonl").exists()


def test_grad_clip_null_is_accepted(nascli):
    proc = nascli("search", *TINY, "proxy.grad_clip=null", "budget.evaluations=1")
    assert proc.returncode == 0, proc.stderr


@pytest.mark.parametrize("override", ["train.max_steps=0", "train.lr=-1", "train.momentum=-1",
                                      "train.weight_decay=-1", "train.channels=0"])
def test_bad_train_final_values_giveone_error_line(nascli, override):
    one_error_line(nascli("train-final", "nasnet-a", *TINY[:4], override), override.split("=")[0])


def test_a_search_where_every_candidate_fails_exits_non_zero_with_the_reasons(nascli):
    proc = nascli("search", *TINY, "proxy.lr=1e30", "proxy.grad_clip=null",
                  "budget.evaluations=2")
    one_error_line(proc, "every one of the 2 evaluations failed", "diverged")
    (path,) = run_dirs(nascli.cwd)
    manifest = json.loads((path / "manifest.json").read_text())
    assert manifest["failed"] == 2 and manifest["best"] is None


def test_an_output_folder_that_cannot_be_written_givesone_error_line(nascli):
    proc = nascli("search", *FAST, "hydra.run.dir=/proc/nascli-cannot-write-here")
    one_error_line(proc, "/proc/nascli-cannot-write-here", code=1)


def test_a_full_disk_gives_one_line_naming_the_log_and_leaves_no_temporary_files(nascli):
    env = dict(os.environ, COLUMNS="200", PYTHONWARNINGS="ignore",
               NASCLI_FAULT="write:state.pt@3:enospc")
    proc = subprocess.run([sys.executable, "-m", "nascli", "search", *FAST,
                           "budget.evaluations=4"], cwd=nascli.cwd, env=env,
                          capture_output=True, text=True, timeout=300)
    line = one_error_line(proc, "No space left on device", "log:", code=1)
    assert line.count("nascli: error:") == 1
    (path,) = run_dirs(nascli.cwd)
    assert not list(path.glob(".*.tmp"))
    proc = nascli("search", f"resume={path}")  # what was saved resumes
    assert proc.returncode == 0, proc.stderr
    assert [r["id"] for r in read_history(path / "history.jsonl")] == [0, 1, 2, 3]


def _wait_for_rows(path_glob: Path, n: int, timeout: float = 120) -> Path:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        for h in path_glob.rglob("history.jsonl"):
            if len(h.read_text().splitlines()) >= n:
                return h.parent
        time.sleep(0.2)
    raise AssertionError("the search wrote no rows in time")


def _children(pid: int) -> set[int]:
    out = set()
    for stat in Path("/proc").glob("[0-9]*/stat"):
        try:
            fields = stat.read_text().rsplit(")", 1)[1].split()
        except (OSError, IndexError):
            continue
        if int(fields[1]) == pid:
            out.add(int(stat.parent.name))
    return out


def _start(cwd: Path, *args: str) -> subprocess.Popen:
    env = dict(os.environ, COLUMNS="200", PYTHONWARNINGS="ignore")
    return subprocess.Popen([sys.executable, "-m", "nascli", "search", *args], cwd=cwd,
                            env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)


def test_sigterm_saves_the_state_marks_the_run_and_exits_143(nascli):
    proc = _start(nascli.cwd, *FAST, "budget.evaluations=100000")
    run = _wait_for_rows(nascli.cwd / "outputs", 3)
    proc.send_signal(signal.SIGTERM)
    assert proc.wait(timeout=120) == 143, proc.stderr.read()
    assert "Traceback" not in proc.stderr.read()
    manifest = json.loads((run / "manifest.json").read_text())
    assert manifest["status"] == "terminated"
    assert "terminated (SIGTERM)" in (run / "search.log").read_text()
    done = len(read_history(run / "history.jsonl"))
    proc = run_nascli("search", f"resume={run}", f"budget.evaluations={done + 1}",
                      cwd=nascli.cwd)
    assert proc.returncode == 0, proc.stderr


def test_pool_double_ctrl_c_stops_quickly_without_orphans(nascli):
    proc = _start(nascli.cwd, *TINY, "executor=pool", "executor.workers=2",
                  "budget.evaluations=200")
    run = _wait_for_rows(nascli.cwd / "outputs", 1)
    workers = _children(proc.pid)
    assert workers
    proc.send_signal(signal.SIGINT)
    time.sleep(0.1)
    proc.send_signal(signal.SIGINT)
    assert proc.wait(timeout=60) == 130, proc.stderr.read()
    manifest = json.loads((run / "manifest.json").read_text())
    assert manifest["status"] == "interrupted"
    deadline = time.monotonic() + 10
    while time.monotonic() < deadline and any(Path(f"/proc/{w}").exists() and
                                              "Z" not in Path(f"/proc/{w}/stat").read_text()
                                              .rsplit(")", 1)[1].split()[0] for w in workers):
        time.sleep(0.2)
    alive = [w for w in workers if Path(f"/proc/{w}").exists()
             and Path(f"/proc/{w}/stat").read_text().rsplit(")", 1)[1].split()[0] != "Z"]
    assert not alive


def test_a_tiny_genotype_file_asking_for_ten_million_blocks(nascli):
    normal = {"blocks": [{"inputs": [0, 1], "ops": ["identity", "identity"]}], "concat": [2]}
    data = {"format": 1, "space": "nasnet", "space_config": {"blocks": 10_000_000},
            "normal": normal, "reduce": normal}
    path = nascli.cwd / "huge.json"
    path.write_text(json.dumps(data))
    assert path.stat().st_size < 1024
    before = resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss
    for command in (("show", str(path)), ("evaluate", str(path), "proxy=params")):
        one_error_line(nascli(*command), "blocks", "limit")
    peak_kib = resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss
    assert max(before, peak_kib) < 1_500_000  # < 1.5 GiB: torch's import, nothing more


def test_a_checkpoint_is_never_unpickled(tmp_path):
    class Evil:
        def __reduce__(self):
            return (os.system, ("touch pwned",))

    torch.save({"format": 1, "x": Evil()}, tmp_path / "evil.pt")
    proc = run_nascli("evaluate", str(tmp_path / "evil.pt"), cwd=tmp_path)
    one_error_line(proc, "evil.pt")
    assert not (tmp_path / "pwned").exists()


def test_a_search_needs_validation_images(nascli):
    one_error_line(nascli("search", *FAST, "dataset.val_fraction=0"), "val_fraction=0")


def test_train_final_resume_with_more_epochs_continues_the_cosine_schedule():
    from nascli.commands.train_final import stretch_cosine

    model = torch.nn.Linear(2, 2)
    opt = torch.optim.SGD(model.parameters(), lr=1.0)
    sched = torch.optim.lr_scheduler.CosineAnnealingLR(opt, T_max=4)
    for _ in range(2):
        opt.step()
        sched.step()
    state = sched.state_dict()
    fresh = torch.optim.lr_scheduler.CosineAnnealingLR(opt, T_max=4)
    fresh.load_state_dict(state)
    stretch_cosine(fresh, 8)  # resumed with twice the epochs: step 2 of 8
    lrs = []
    for _ in range(6):
        opt.step()
        fresh.step()
        lrs.append(opt.param_groups[0]["lr"])
    import math

    expected = [0.5 * (1 + math.cos(math.pi * s / 8)) for s in range(3, 9)]
    assert lrs == pytest.approx(expected, abs=1e-9)
    assert lrs == sorted(lrs, reverse=True)  # never climbs back up


def test_the_real_command_killed_mid_row_resumes_to_the_same_synflow_scores(tmp_path):
    """End to end: the CLI SIGKILLed half-way through writing a row (seed-dependent synflow,
    evolution), resumed, against an uninterrupted run of the same command."""
    args = [*FAST, "strategy=evolution", "strategy.population_size=3", "strategy.sample_size=2",
            "budget.evaluations=6", "seed=3"]
    ref, cut = tmp_path / "ref", tmp_path / "cut"
    ref.mkdir()
    cut.mkdir()
    assert run_nascli("search", *args, cwd=ref).returncode == 0
    env = dict(os.environ, COLUMNS="200", PYTHONWARNINGS="ignore", NASCLI_FAULT="history:torn@4")
    proc = subprocess.run([sys.executable, "-m", "nascli", "search", *args], cwd=cut, env=env,
                          capture_output=True, text=True, timeout=300)
    assert proc.returncode == -signal.SIGKILL
    (run,) = run_dirs(cut)
    assert len(read_history(run / "history.jsonl")) == 3
    assert run_nascli("search", f"resume={run}", cwd=cut).returncode == 0
    (reference,) = run_dirs(ref)

    def rows(path: Path) -> list[tuple]:
        return [(r["id"], r["hash"], r["score"]) for r in read_history(path / "history.jsonl")]

    assert rows(run) == rows(reference)
    assert json.loads((run / "best.json").read_text())["hash"] == \
        json.loads((reference / "best.json").read_text())["hash"]
