"""The real command line end to end on tiny settings: search, multirun, resume, evaluate,
train-final, report."""

from __future__ import annotations

import importlib.util
import json

import pytest
import torch
from cli_helpers import TINY, TINY_ZC, run_dirs

from nascli.engine.rundir import read_history
from nascli.genotypes import load_genotype


def test_version_and_help(nascli):
    proc = nascli("--version")
    assert proc.returncode == 0 and proc.stdout.startswith("nascli ")
    proc = nascli("--help")
    for command in ("search", "evaluate", "train-final", "report", "show"):
        assert command in proc.stdout
    proc = nascli("search", "--help")
    assert proc.returncode == 0
    for group in ("search_space:",
                  "strategy: darts, evolution, nsga2, oneshot, ppo, random, reinforce",
                  "proxy:", "dataset:", "device: auto, cpu, cuda, mps", "experiment:",
                  "objective: mnas, pareto, score", "schedule: halving, none"):
        assert group in proc.stdout


def test_cfg_job_prints_the_composed_config(nascli):
    proc = nascli("search", "strategy=evolution", "strategy.population_size=20", "--cfg", "job")
    assert proc.returncode == 0, proc.stderr
    assert "population_size: 20" in proc.stdout
    assert "_target_: nascli.strategies.RegularizedEvolution" in proc.stdout


def test_search_writes_the_run_directory(nascli):
    proc = nascli("search", *TINY, "budget.evaluations=3", "seed=4")
    assert proc.returncode == 0, proc.stderr
    (run,) = run_dirs(nascli.cwd)
    rows = read_history(run / "history.jsonl")
    assert [r["id"] for r in rows] == [0, 1, 2]
    assert len({r["hash"] for r in rows}) == 3
    for r in rows:
        assert r["status"] == "ok" and 0.0 <= r["score"] <= 1.0
        assert r["params"] > 0 and r["macs"] > 0 and r["seconds"] > 0 and r["epochs"] > 0
        assert set(r["metrics"]) >= {"val_acc", "val_loss", "train_loss"}
    best_row = max(rows, key=lambda r: r["score"])
    genotype, space = load_genotype(run / "best.json")
    assert space.hash(genotype) == best_row["hash"]
    manifest = json.loads((run / "manifest.json").read_text())
    assert manifest["status"] == "finished" and manifest["seed"] == 4
    assert manifest["dataset"]["fingerprint"] and manifest["torch"] == torch.__version__
    assert manifest["started_at"] < manifest["ended_at"]
    assert "seed: 4" in (run / "config.yaml").read_text()
    log = (run / "search.log").read_text()
    assert "search finished: evaluation budget reached (3 evaluations" in log
    assert "top candidates" in proc.stderr + proc.stdout


def test_resume_continues_without_recounting(nascli):
    assert nascli("search", *TINY, "budget.evaluations=2").returncode == 0
    (run,) = run_dirs(nascli.cwd)
    first = read_history(run / "history.jsonl")
    proc = nascli("search", f"resume={run}", "budget.evaluations=4", "progress=off")
    assert proc.returncode == 0, proc.stderr
    rows = read_history(run / "history.jsonl")
    assert rows[:2] == first
    assert [r["id"] for r in rows] == [0, 1, 2, 3]
    assert len({r["hash"] for r in rows}) == 4
    assert "2 finished evaluations reused" in (run / "search.log").read_text()


def test_multirun_writes_one_directory_per_job(nascli):
    proc = nascli("search", "-m", *TINY, "budget.evaluations=1", "seed=0,1")
    assert proc.returncode == 0, proc.stderr
    runs = sorted(p.parent for p in (nascli.cwd / "multirun").rglob("manifest.json"))
    assert len(runs) == 2
    assert {json.loads((r / "manifest.json").read_text())["seed"] for r in runs} == {0, 1}


@pytest.mark.skipif(importlib.util.find_spec("hydra_plugins.hydra_joblib_launcher") is None,
                    reason="the joblib extra is not installed")
def test_multirun_with_the_joblib_launcher(nascli):
    proc = nascli("search", "-m", "hydra/launcher=joblib", "hydra.launcher.n_jobs=2", *TINY,
                  "budget.evaluations=1", "strategy=random,evolution")
    assert proc.returncode == 0, proc.stderr
    runs = sorted(p.parent for p in (nascli.cwd / "multirun").rglob("history.jsonl"))
    assert len(runs) == 2
    assert {json.loads((r / "manifest.json").read_text())["strategy"] for r in runs} == {
        "random", "evolution"}


def test_evaluate_with_a_proxy_and_with_training(nascli):
    proc = nascli("evaluate", "nasnet-a", "proxy=params", "device=cpu")
    assert proc.returncode == 0, proc.stderr
    (out,) = (nascli.cwd / "outputs" / "evaluate").rglob("evaluation.json")
    result = json.loads(out.read_text())
    assert result["estimator"] == "params" and result["score"] == result["params"] > 0
    proc = nascli("evaluate", "darts-v2", *TINY[:-1], "repeats=2")
    assert proc.returncode == 0, proc.stderr
    outs = sorted((nascli.cwd / "outputs" / "evaluate").rglob("evaluation.json"))
    result = json.loads(outs[-1].read_text())
    assert result["estimator"] == "train" and len(result["scores"]) == 2


def test_train_final_checkpoint_evaluate_and_resume(nascli):
    common = ["dataset=synthetic", "dataset.num_samples=240", "dataset.image_size=28",
              "dataset.channels=1", "train.channels=4", "train.cells_per_stage=1",
              "train.max_steps=2", "train.batch_size=16", "device=cpu"]
    proc = nascli("train-final", "nasnet-a", *common, "train.epochs=1")
    assert proc.returncode == 0, proc.stderr
    (run,) = run_dirs(nascli.cwd, "train_final")
    ckpt = torch.load(run / "checkpoint.pt", weights_only=True)
    assert ckpt["epoch"] == 1 and ckpt["genotype"]["space"] == "nasnet"
    final = json.loads((run / "final.json").read_text())
    assert 0.0 <= final["test_acc"] <= 1.0 and len(final["history"]) == 1
    proc = nascli("evaluate", str(run / "checkpoint.pt"), "device=cpu")
    assert proc.returncode == 0, proc.stderr
    (out,) = (nascli.cwd / "outputs" / "evaluate").rglob("evaluation.json")
    assert json.loads(out.read_text())["score"] == pytest.approx(final["test_acc"])
    # resume continues in the same folder, here up to a larger epoch count
    proc = nascli("train-final", f"resume={run}", "train.epochs=2")
    assert proc.returncode == 0, proc.stderr
    ckpt = torch.load(run / "checkpoint.pt", weights_only=True)
    assert ckpt["epoch"] == 2 and [h["epoch"] for h in ckpt["history"]] == [1, 2]


def test_report_and_show(nascli):
    assert nascli("search", "-m", *TINY, "budget.evaluations=2", "seed=0,1").returncode == 0
    (sweep,) = {p.parent.parent for p in (nascli.cwd / "multirun").rglob("history.jsonl")}
    proc = nascli("report", str(sweep))
    assert proc.returncode == 0, proc.stderr
    for name in ("best_so_far.png", "pareto.png", "best_cells.png", "report.json"):
        assert (sweep / "report" / name).is_file()
    summary = json.loads((sweep / "report" / "report.json").read_text())
    assert len(summary["runs"]) == 2 and summary["pareto"]
    proc = nascli("show", "nasnet-a")
    assert proc.returncode == 0 and "block0 = add(sep_conv_5x5(h_i), sep_conv_3x3(h_{i-1}))" \
        in proc.stdout


def test_correlate_reports_rank_correlations_with_baselines(nascli):
    proc = nascli("correlate", *TINY, "samples=4", "proxies=[synflow,naswot]")
    assert proc.returncode == 0, proc.stderr
    (out,) = (nascli.cwd / "outputs" / "correlate").rglob("correlation.json")
    result = json.loads(out.read_text())
    assert result["architectures"] == 4
    assert set(result["correlations"]) == {"synflow", "naswot", "params", "macs"}
    for row in result["correlations"].values():
        assert row["n"] == 4 and -1.0 <= row["spearman"] <= 1.0 and -1.0 <= row["kendall"] <= 1.0
    assert (out.parent / "scatter" / "synflow.png").is_file()
    # from an existing run's history: no training
    proc = nascli("correlate", *TINY, f"from_run={out.parent}", "proxies=[params]")
    assert proc.returncode == 0, proc.stderr
    outs = sorted((nascli.cwd / "outputs" / "correlate").rglob("correlation.json"))
    again = json.loads(outs[-1].read_text())
    assert again["accuracies"] == result["accuracies"]
    assert again["correlations"]["params"] == result["correlations"]["params"]


@pytest.mark.parametrize("strategy", ["evolution", "ppo", "reinforce"])
def test_search_with_each_learning_strategy(nascli, strategy):
    extra = {"evolution": ["strategy.population_size=2", "strategy.sample_size=2"],
             "ppo": ["strategy.batch_size=2"], "reinforce": ["strategy.batch_size=2"]}
    proc = nascli("search", *TINY, f"strategy={strategy}", *extra[strategy],
                  "budget.evaluations=4")
    assert proc.returncode == 0, proc.stderr
    (run,) = run_dirs(nascli.cwd)
    rows = read_history(run / "history.jsonl")
    assert len(rows) == 4 and len({r["hash"] for r in rows}) == 4
    state = torch.load(run / "state.pt", weights_only=True)
    inner = state["strategy"]["inner"]
    assert inner["strategy"] == strategy and inner["num_told"] == 4


def test_search_with_zero_cost_proxies_in_the_loop(nascli):
    # synflow as the estimator itself
    proc = nascli("search", *TINY_ZC, "proxy=synflow", "budget.evaluations=5")
    assert proc.returncode == 0, proc.stderr
    (run,) = run_dirs(nascli.cwd)
    rows = read_history(run / "history.jsonl")
    assert all(r["status"] == "ok" and "log_synflow" in r["metrics"] for r in rows)
    assert all(r["epochs"] == 0 for r in rows)


def _top_by_params(n: int, keep: int, seed: int = 0) -> list[str]:
    """Hashes of the ``keep`` largest of the ``n`` samples the warm start draws (TINY nets)."""
    import numpy as np

    from nascli.models import build_network, count_parameters
    from nascli.spaces import NASNetSpace

    space, rng, seen, scored = NASNetSpace(), np.random.default_rng(seed + 7919), set(), []
    while len(scored) < n:
        g = space.sample(rng)
        if space.hash(g) in seen:
            continue
        seen.add(space.hash(g))
        net = build_network(g, num_classes=10, in_channels=1, cells_per_stage=1, channels=4)
        scored.append((-count_parameters(net), len(scored), space.hash(g)))
    return [h for _, _, h in sorted(scored)[:keep]]


def test_proxy_warm_start_and_child_filter(nascli):
    proc = nascli("search", *TINY, "strategy=evolution", "strategy.population_size=3",
                  "strategy.sample_size=2", "prescreen.proxy=params",
                  "prescreen.samples=12", "prescreen.keep=3", "child_filter.proxy=params",
                  "child_filter.children=4", "budget.evaluations=5")
    assert proc.returncode == 0, proc.stderr
    (run,) = run_dirs(nascli.cwd)
    rows = read_history(run / "history.jsonl")
    assert len(rows) == 5
    log = (run / "search.log").read_text()
    assert "proxy params scored 12 samples; queueing the best 3" in log
    # the initial population is the best 3 of the 12 proxy-scored samples
    assert [r["hash"] for r in rows[:3]] == _top_by_params(12, 3)


def test_proxy_prescreening(nascli):
    proc = nascli("search", *TINY, "prescreen.proxy=params", "prescreen.samples=10",
                  "prescreen.keep=2", "budget.evaluations=3")
    assert proc.returncode == 0, proc.stderr
    (run,) = run_dirs(nascli.cwd)
    rows = read_history(run / "history.jsonl")
    assert [r["hash"] for r in rows[:2]] == _top_by_params(10, 2)
    assert len(rows) == 3


def test_evaluate_prints_a_proxy_score(nascli):
    proc = nascli("evaluate", "nasnet-a", "proxy=synflow", "device=cpu", *TINY_ZC[:4])
    assert proc.returncode == 0, proc.stderr
    (out,) = (nascli.cwd / "outputs" / "evaluate").rglob("evaluation.json")
    result = json.loads(out.read_text())
    assert result["estimator"] == "synflow" and result["score"] > 0
    assert "synflow" in proc.stdout + proc.stderr


def test_search_with_the_pool_executor(nascli):
    proc = nascli("search", *TINY, "executor=pool", "executor.workers=2", "budget.evaluations=3")
    assert proc.returncode == 0, proc.stderr
    (run,) = run_dirs(nascli.cwd)
    rows = read_history(run / "history.jsonl")
    assert sorted(r["id"] for r in rows) == [0, 1, 2]
    assert all(r["status"] == "ok" and r["worker"].startswith("pid") for r in rows)
