"""``nascli correlate`` with a reference estimator (``reference.*``): the search score, the
proxies and the baselines ranked against a longer training of the same networks."""

from __future__ import annotations

import json

from cli_helpers import TINY, one_error_line

from nascli.engine.rundir import read_history

SAMPLES = 5


def _result(proc) -> dict:
    assert proc.returncode == 0, proc.stderr
    return json.loads(proc.stdout)


def test_reference_equal_to_the_proxy_ranks_exactly_like_the_search_score(nascli):
    # the reference is the proxy's own recipe (TINY caps it at 2 steps): same networks, same
    # seeds, so the same accuracies and a perfect rank correlation
    summary = _result(nascli("correlate", *TINY, f"samples={SAMPLES}", "proxies=[synflow]",
                             "reference.max_steps=2", "--json"))
    result, run = summary["result"], summary["run_dir"]
    ref = result["reference"]
    assert ref["options"]["max_steps"] == 2 and ref["options"]["eval_batch_size"] == 512
    assert ref["accuracies"] == result["accuracies"]
    assert len(set(ref["accuracies"])) > 1  # a ranking to compare, not all ties
    assert set(ref["correlations"]) == {"search_score", "synflow", "params", "macs"}
    for row in ref["correlations"].values():
        assert row["n"] == SAMPLES and row["seconds"] > 0
        assert -1.0 <= row["spearman"] <= 1.0 and -1.0 <= row["kendall"] <= 1.0
    assert ref["correlations"]["search_score"]["spearman"] == 1.0
    assert abs(ref["correlations"]["search_score"]["kendall"] - 1.0) < 1e-12
    assert ref["seconds"] > 0 and ref["failed"] == 0
    lines = (nascli.cwd / run / "reference.jsonl").read_text().splitlines()
    records = [json.loads(line) for line in lines]
    history = read_history(nascli.cwd / run / "history.jsonl")
    assert [r["hash"] for r in records] == [r["hash"] for r in history]
    assert [r["seed"] for r in records] == [r["metrics"]["seed"] for r in history]

    # from_run: the run's architectures trained by a longer reference (all of the train split,
    # options merged over the proxy's), then the same reference again reuses what it scored
    summary = _result(nascli("correlate", *TINY, f"from_run={run}", "proxies=[]",
                             "reference.data_fraction=1.0", "reference.max_steps=4", "--json"))
    longer = summary["result"]["reference"]
    assert longer["options"]["data_fraction"] == 1.0 and longer["options"]["max_steps"] == 4
    assert longer["options"]["lr"] == 0.2  # the proxy's
    assert {r["n"] for r in longer["correlations"].values()} == {SAMPLES}
    proc = nascli("correlate", *TINY, f"from_run={run}", "proxies=[]", "reference.max_steps=2",
                  "--json")
    again = _result(proc)["result"]["reference"]
    assert again["accuracies"] == ref["accuracies"]
    assert proc.stderr.count("(from from_run)") == SAMPLES


def test_bad_reference_key_or_value_is_one_line(nascli):
    line = one_error_line(nascli("correlate", *TINY, "samples=3", "reference.epoch=3"),
                          "reference.epoch: unknown key")
    assert "epochs" in line and "data_fraction" in line  # the valid keys
    one_error_line(nascli("correlate", *TINY, "samples=3", "reference.data_fraction=2"),
                   "reference.data_fraction=2.0 is invalid")
    one_error_line(nascli("correlate", *TINY, "samples=3", "reference=3"), "reference=3")
    # refused before anything was trained
    assert not list((nascli.cwd / "outputs").rglob("history.jsonl"))
