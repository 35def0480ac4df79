"""Finding, reading and grouping the runs of a report (``nascli.report.runs``)."""

from __future__ import annotations

import pytest
from fake_runs import make_run, make_sweep

from nascli.report.runs import ReportError, group_runs, load_runs, read_overrides

KEYS = {"strategy.population_size": ["20", "5"], "dataset": ["synthetic", "digits"]}


def test_overrides_are_read_as_typed_without_hydra_keys(tmp_path):
    run = make_run(tmp_path / "r", ["+extra.flag=true", "~child_filter", "hydra.job.chdir=x",
                                    "hydra/launcher=joblib", "progress=off"], seed=3)
    assert read_overrides(run) == {"extra.flag": "true", "child_filter": "(deleted)",
                                   "seed": "3"}
    (run / ".hydra" / "overrides.yaml").write_text("{a: 1}\n")
    with pytest.raises(ReportError, match=r"overrides\.yaml: expected a list"):
        read_overrides(run)


def test_a_sweep_over_two_keys_gives_one_group_per_combination(tmp_path):
    runs = load_runs([make_sweep(tmp_path / "sweep", KEYS, seeds=(1, 0))])
    groups, common = group_runs(runs)
    assert [g.label for g in groups] == [
        "dataset=digits, strategy.population_size=5",
        "dataset=digits, strategy.population_size=20",  # numbers in numeric order
        "dataset=synthetic, strategy.population_size=5",
        "dataset=synthetic, strategy.population_size=20",
    ]
    assert groups[0].settings == {"dataset": "digits", "strategy.population_size": "5"}
    assert all([r.seed for r in g.runs] == [0, 1] for g in groups)  # seeds are averaged over
    assert common == {"device": "cpu"}


def test_a_key_missing_from_some_runs_takes_their_config_value(tmp_path):
    a = make_run(tmp_path / "a", ["strategy.population_size=20"], seed=0)
    b = make_run(tmp_path / "b", [], seed=0)  # its config.yaml says population_size: 10
    c = make_run(tmp_path / "c", ["budget.evaluations=6"], seed=0)
    groups, _ = group_runs(load_runs([a, b, c]))
    labels = {g.runs[0].path.name: g.label for g in groups}
    assert labels["a"] == "budget.evaluations=n/a, strategy.population_size=20"
    assert labels["b"] == "budget.evaluations=n/a, strategy.population_size=10"
    assert labels["c"] == "budget.evaluations=6, strategy.population_size=10"


def test_one_group_is_labelled_by_strategy_and_proxy(tmp_path):
    runs = load_runs([make_sweep(tmp_path / "s", {}, seeds=(0, 1))])
    (group,), _ = group_runs(runs)
    assert group.label == "evolution / train"
    summary = group.summary()
    finals = [r.best for r in group.runs]
    assert summary["final_best"]["n"] == 2 and summary["evaluations"] == [6, 6]
    assert summary["final_best"]["mean"] == pytest.approx(sum(finals) / 2)
    assert summary["final_best"]["std"] == pytest.approx(abs(finals[0] - finals[1]) / 2 ** 0.5)


def test_empty_runs(tmp_path):
    sweep = make_sweep(tmp_path / "s", {}, seeds=(0,))
    empty = sweep / "9"
    (empty / ".hydra").mkdir(parents=True)
    (empty / "history.jsonl").write_text("")
    assert [r.path for r in load_runs([sweep])] == [sweep / "0"]  # skipped inside a sweep
    with pytest.raises(ReportError, match="an empty run"):
        load_runs([empty])  # named on the command line: an error
    with pytest.raises(ReportError, match="not a run directory"):
        load_runs([empty / ".hydra"])
