"""``strategy=oneshot`` and ``strategy=darts`` end to end: supernet training, inheritance over
many candidates, re-ranking, ranking probes, a kill during supernet training, DARTS into
train-final."""

from __future__ import annotations

import json
import os
import subprocess
import sys

import pytest
import torch
from cli_helpers import TINY_FINAL, TINY_ZC, nascli_in, one_error_line, run_dirs

#: a tiny one-shot search: 2 supernet epochs of 3 steps, 40 candidates by inheritance
ONESHOT = [*TINY_ZC, "strategy=oneshot", "oneshot.epochs=2", "oneshot.max_steps=3",
           "oneshot.batch_size=16", "budget.evaluations=40", "proxy.val_batch_size=32",
           "proxy.bn_batch_size=16"]
#: stand-alone reference training for rerank and probe: two steps
REFERENCE = ["+oneshot.reference.max_steps=2", "+oneshot.reference.eval_batch_size=512"]


@pytest.fixture(scope="module")
def oneshot_run(tmp_path_factory):
    cwd = tmp_path_factory.mktemp("oneshot")
    proc = nascli_in(cwd, "search", *ONESHOT, "oneshot.probe=3", "oneshot.rerank_top_k=2",
                     *REFERENCE)
    assert proc.returncode == 0, proc.stderr[-3000:]
    (run,) = run_dirs(cwd)
    return run, proc


def test_oneshot_search_writes_everything(oneshot_run):
    run, _ = oneshot_run
    rows = [json.loads(x) for x in (run / "history.jsonl").read_text().splitlines()]
    assert len(rows) == 40 and all(r["status"] == "ok" for r in rows)
    assert all(0.0 <= r["score"] <= 1.0 and "inherited_acc" in r["metrics"] for r in rows)
    assert all(r["params"] > 0 and r["macs"] > 0 for r in rows)
    assert len({r["hash"] for r in rows}) == 40  # never the same architecture twice
    manifest = json.loads((run / "manifest.json").read_text())
    assert manifest["strategy"] == "oneshot" and manifest["proxy"] == "supernet"
    assert manifest["supernet_trained_here"] is True and manifest["supernet_epochs"] == 2
    ckpt = torch.load(run / "supernet.pt", map_location="cpu", weights_only=True)
    assert ckpt["finished"] and ckpt["epoch"] == 2 and len(ckpt["losses"]) == 2


def test_oneshot_probe_and_rerank(oneshot_run):
    run, _ = oneshot_run
    ranking = json.loads((run / "oneshot_ranking.json").read_text())
    assert ranking["probe"] == 3 and ranking["complete"] and len(ranking["rows"]) == 3
    assert ranking["pairs"] == 3
    constant = any(len({r[k] for r in ranking["rows"]}) == 1 for k in ("inherited", "standalone"))
    if constant:  # tiny training can leave every score equal: no rank correlation exists
        assert ranking["kendall_tau"] is None and "undefined" in ranking["note"]
    else:
        assert -1.0 <= ranking["kendall_tau"] <= 1.0 and -1.0 <= ranking["spearman_rho"] <= 1.0
    shares = ranking["param_free_share"]
    assert shares["uniform"] == pytest.approx(5 / 13) and 0.0 <= shares["best"] <= 1.0
    rerank = json.loads((run / "oneshot_rerank.json").read_text())
    assert rerank["complete"] and len(rerank["rows"]) == 2
    best = json.loads((run / "best.json").read_text())["meta"]
    winner = max(rerank["rows"], key=lambda r: (r["standalone"], -r["id"]))
    assert best["evaluation"] == winner["id"] and best["score"] == winner["standalone"]
    assert best["metrics"]["reranked_by"] == "train"


def test_report_shows_the_ranking(oneshot_run, tmp_path):
    run, _ = oneshot_run
    out = tmp_path / "report"
    proc = nascli_in(tmp_path, "report", str(run), "--out", str(out))
    assert proc.returncode == 0, proc.stderr[-3000:]
    summary = json.loads((out / "report.json").read_text())
    (part,) = summary["oneshot_ranking"]
    assert part["probes"] == 3 and part["plot"] == f"oneshot_ranking_{run.name}.png"
    assert (out / part["plot"]).stat().st_size > 1000
    assert "Kendall tau" in proc.stderr


def test_oneshot_resume_reuses_the_supernet_and_adds_a_probe(oneshot_run, tmp_path):
    import shutil

    run, _ = oneshot_run
    copy = tmp_path / "run"
    shutil.copytree(run, copy, ignore=shutil.ignore_patterns(".lock"))
    before = (copy / "supernet.pt").stat().st_mtime_ns
    proc = nascli_in(tmp_path, "search", f"resume={copy}", "budget.evaluations=50",
                     "oneshot.probe=4", "progress=off")
    assert proc.returncode == 0, proc.stderr[-3000:]
    assert (copy / "supernet.pt").stat().st_mtime_ns == before  # not trained again
    assert len((copy / "history.jsonl").read_text().splitlines()) == 50
    ranking = json.loads((copy / "oneshot_ranking.json").read_text())
    assert len(ranking["rows"]) == 4  # the 3 earlier probes reused, one new


def test_kill_during_supernet_training_resumes(tmp_path):
    env = dict(os.environ, COLUMNS="200", PYTHONWARNINGS="ignore",
               NASCLI_FAULT="write:supernet.pt@2")  # SIGKILL while saving epoch 2
    args = [sys.executable, "-m", "nascli", "search", *ONESHOT, "budget.evaluations=5"]
    proc = subprocess.run(args, cwd=tmp_path, capture_output=True, text=True, env=env,
                          timeout=600)
    assert proc.returncode == -9, proc.stderr[-2000:]
    (run,) = run_dirs(tmp_path)
    ckpt = torch.load(run / "supernet.pt", map_location="cpu", weights_only=True)
    assert ckpt["epoch"] == 1 and not ckpt["finished"]
    proc = nascli_in(tmp_path, "search", f"resume={run}")
    assert proc.returncode == 0, proc.stderr[-3000:]
    ckpt = torch.load(run / "supernet.pt", map_location="cpu", weights_only=True)
    assert ckpt["epoch"] == 2 and ckpt["finished"]
    assert "resuming" in (run / "search.log").read_text()
    assert len((run / "history.jsonl").read_text().splitlines()) == 5


def test_bad_supernet_file_is_one_line(tmp_path):
    bad = tmp_path / "supernet.pt"
    bad.write_bytes(b"not a checkpoint")
    proc = nascli_in(tmp_path, "search", *ONESHOT, f"oneshot.supernet={bad}")
    one_error_line(proc, str(bad), "not a readable supernet checkpoint")
    proc = nascli_in(tmp_path, "search", *TINY_ZC, "proxy=params", "oneshot.probe=24")
    one_error_line(proc, "oneshot.probe=24", "strategy=oneshot or proxy=supernet")
    assert not run_dirs(tmp_path)  # nothing was recorded for a refused run


def test_darts_search_then_train_final(tmp_path):
    proc = nascli_in(tmp_path, "search", *TINY_ZC, "search_space=darts", "strategy=darts",
                     "strategy.epochs=2", "strategy.max_steps=2", "strategy.batch_size=16",
                     "proxy.max_steps=2", "proxy.eval_batch_size=512")
    assert proc.returncode == 0, proc.stderr[-3000:]
    (run,) = run_dirs(tmp_path)
    rows = [json.loads(x) for x in (run / "history.jsonl").read_text().splitlines()]
    assert len(rows) == 1 and rows[0]["status"] == "ok"
    alphas = json.loads((run / "darts_alphas.json").read_text())
    assert len(alphas["epochs"]) == 2
    for record in alphas["epochs"]:
        for row in record["normal"] + record["reduce"]:
            assert sum(row) == pytest.approx(1.0, abs=1e-4)
    assert rows[0]["genotype"] == alphas["epochs"][-1]["genotype"]
    proc = nascli_in(tmp_path, "report", str(run))
    assert proc.returncode == 0, proc.stderr[-3000:]
    assert (run / "report" / f"darts_alphas_{run.name}.png").stat().st_size > 1000
    assert (run / "report" / f"darts_alphas_{run.name}.svg").is_file()
    assert "DARTS op weights over 2 epochs" in proc.stderr
    proc = nascli_in(tmp_path, "train-final", str(run), *TINY_FINAL, "train.epochs=1")
    assert proc.returncode == 0, proc.stderr[-3000:]
    (final,) = run_dirs(tmp_path, "train_final")
    assert 0.0 <= json.loads((final / "final.json").read_text())["test_acc"] <= 1.0
