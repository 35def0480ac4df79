"""``nascli search`` with constraints, objectives and successive halving, end to end
(issue 14): every trained row fits the limits, pareto.json and the report's front, rungs that
continue after a resume, and one-line errors for bad settings."""

from __future__ import annotations

import json

from cli_helpers import TINY, TINY_ZC, nascli_in, one_error_line, run_dirs


def _rows(run):
    return [json.loads(x) for x in (run / "history.jsonl").read_text().splitlines() if x]


def test_a_constrained_search_trains_only_candidates_within_the_limits(tmp_path):
    proc = nascli_in(tmp_path, "search", *TINY, "constraints.max_params=15000",
                     "constraints.max_macs=2000000", "constraints.max_rejected_in_a_row=200",
                     "budget.evaluations=4", "--json")
    assert proc.returncode == 0, proc.stderr[-2000:]
    (run,) = run_dirs(tmp_path)
    rows = _rows(run)
    ok = [r for r in rows if r["status"] == "ok"]
    assert len(ok) == 4 and any(r["status"] == "rejected" for r in rows)
    for r in ok:  # the check of issue 14: no ok row over a limit
        assert r["costs"]["params"] <= 15000 and r["costs"]["macs"] <= 2000000
        assert r["metrics"]["steps"] >= 1  # trained
    for r in rows:
        if r["status"] == "rejected":
            assert r["seconds"] == 0 and r["metrics"] == {}
    assert json.loads(proc.stdout)["result"]["evaluation"] in {r["id"] for r in ok}
    manifest = json.loads((run / "manifest.json").read_text())
    assert manifest["evaluations"] == 4 and manifest["rejected"] == len(rows) - 4


def test_a_pareto_search_keeps_pareto_json_and_the_report_draws_its_front(tmp_path):
    proc = nascli_in(tmp_path, "search", *TINY_ZC, "proxy=params", "objective=pareto",
                     "objective.cost=macs", "strategy=nsga2", "strategy.population_size=4",
                     "budget.evaluations=10")
    assert proc.returncode == 0, proc.stderr[-2000:]
    (run,) = run_dirs(tmp_path)
    doc = json.loads((run / "pareto.json").read_text())
    assert doc["objectives"] == {"score": "max", "macs": "min"} and doc["evaluations"] == 10
    rows = {r["id"]: r for r in _rows(run)}
    for m in doc["front"]:
        assert m["macs"] == rows[m["id"]]["costs"]["macs"]
        assert not any(r["costs"]["macs"] <= m["macs"] and r["score"] > m["score"]
                       for r in rows.values())
    report = nascli_in(tmp_path, "report", str(run))
    assert report.returncode == 0, report.stderr[-2000:]
    front = json.loads((run / "report" / "report.json").read_text())["pareto"]
    assert [p["id"] for p in front] == [m["id"] for m in doc["front"]]
    assert all("macs" in p for p in front)


def test_halving_continues_its_rungs_after_a_resume(tmp_path):
    settings = [*TINY, "schedule=halving", "schedule.max_steps=9", "seed=3"]
    first = nascli_in(tmp_path, "search", *settings, "budget.evaluations=5")
    assert first.returncode == 0, first.stderr[-2000:]
    (run,) = run_dirs(tmp_path)
    more = nascli_in(tmp_path, "search", f"resume={run}", "budget.evaluations=13")
    assert more.returncode == 0, more.stderr[-2000:]
    rows = _rows(run)
    assert [r["fidelity"]["rung"] for r in rows] == [0] * 9 + [1] * 3 + [2]
    assert [r["metrics"]["steps"] for r in rows] == [1] * 9 + [3] * 3 + [9]
    top = sorted(rows[:9], key=lambda r: (-r["score"], r["id"]))[:3]
    assert [r["fidelity"]["parent"] for r in rows[9:12]] == [r["id"] for r in top]
    best = json.loads((run / "best.json").read_text())
    assert best["meta"]["evaluation"] == 12  # the only cell trained in full


def test_bad_objective_schedule_and_constraint_settings_are_one_line(tmp_path):
    cases = [
        (["objective=mnas"], "objective.target: missing value"),
        (["schedule=halving", "proxy=synflow"], "proxy=synflow"),
        (["constraints.max_params=-5"], "constraints.max_params=-5"),
        (["schedule=halving", "schedule.eta=1"], "schedule.eta=1 is invalid"),
        (["strategy=nsga2", "strategy.cost=flops"], "flops"),
    ]
    for extra, needle in cases:
        proc = nascli_in(tmp_path, "search", *TINY_ZC, *extra, "budget.evaluations=1")
        one_error_line(proc, needle)
