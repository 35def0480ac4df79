"""``nascli report`` over fake sweeps (history, manifest, config and ``.hydra/overrides.yaml``
as a search writes them): groups by swept keys, PNG and SVG figures, ``report.md``, output
folders that never touch the runs, one-line errors; and the p-values of ``nascli correlate``."""

from __future__ import annotations

import hashlib
import json
import sys
import xml.etree.ElementTree as ET
from pathlib import Path

import pytest
from cli_helpers import one_error_line

sys.path.insert(0, str(Path(__file__).parents[1] / "report"))  # the fake-run builder
from fake_runs import make_run, make_sweep

KEYS = {"strategy.population_size": ["5", "20"], "dataset": ["synthetic", "digits"]}
LABELS = ["dataset=digits, strategy.population_size=5",
          "dataset=digits, strategy.population_size=20",
          "dataset=synthetic, strategy.population_size=5",
          "dataset=synthetic, strategy.population_size=20"]
FIGURES = ("best_so_far", "best_so_far_time", "pareto", "best_cells")
SVG = "{http://www.w3.org/2000/svg}"


def snapshot(root: Path) -> dict[str, tuple[str, int]]:
    """Every path under ``root`` with its content hash and modification time."""
    return {str(p.relative_to(root)): (hashlib.sha256(p.read_bytes()).hexdigest()
                                       if p.is_file() else "dir", p.stat().st_mtime_ns)
            for p in sorted(root.rglob("*"))}


def xtick_labels(svg: Path) -> list[str]:
    """The x-axis tick labels of a matplotlib SVG (text kept as text)."""
    root = ET.parse(svg).getroot()
    return ["".join(t.itertext()).strip() for g in root.iter(f"{SVG}g")
            if g.get("id", "").startswith("xtick_") for t in g.iter(f"{SVG}text")]


def test_report_of_a_two_key_sweep_goes_to_out_only(nascli):
    sweep = make_sweep(nascli.cwd / "multirun" / "sweep", KEYS, seeds=(0, 1), evaluations=5)
    before = snapshot(sweep)
    out = nascli.cwd / "paper"
    proc = nascli("report", str(sweep), "--out", str(out))
    assert proc.returncode == 0, proc.stderr
    assert snapshot(sweep) == before  # nothing written, replaced or touched in the runs
    for stem in FIGURES:
        assert (out / f"{stem}.png").read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
        assert ET.parse(out / f"{stem}.svg").getroot().tag == f"{SVG}svg"
    ticks = xtick_labels(out / "best_so_far.svg")
    assert ticks and all(t.isdigit() for t in ticks)  # integer evaluation ticks
    summary = json.loads((out / "report.json").read_text())
    assert [g["label"] for g in summary["groups"]] == LABELS
    assert all(g["seeds"] == [0, 1] for g in summary["groups"])
    assert summary["common"] == {"device": "cpu"}
    md = (out / "report.md").read_text()
    for stem in FIGURES:
        assert f"]({stem}.png)" in md and f"[SVG]({stem}.svg)" in md
    assert "| group | seeds | evaluations | final best (mean ± std) | wall time (s) |" in md
    for group in summary["groups"]:
        best = group["final_best"]
        assert f"### {group['label']}\n" in md
        assert f"| {group['label']} | 2 | 5 | {best['mean']:.4g} ± {best['std']:.2g} |" in md
    assert md.count("| seed | evaluations | failed | final best |") == 4


def test_default_output_folders(nascli):
    a = make_run(nascli.cwd / "a", ["strategy=random"], seed=0)
    b = make_run(nascli.cwd / "b", ["strategy=evolution"], seed=0)
    before = snapshot(nascli.cwd)
    proc = nascli("report", str(a), str(b))  # several: a new folder under outputs/report
    assert proc.returncode == 0, proc.stderr
    (md,) = (nascli.cwd / "outputs" / "report").rglob("report.md")
    assert "### strategy=evolution" in md.read_text()
    assert {k: v for k, v in snapshot(nascli.cwd).items() if k.startswith(("a", "b"))} \
        == before
    from nascli.report import make_report

    make_report([a])  # one run: its report/ subfolder, next to the run's own files
    assert (a / "report" / "best_so_far.svg").is_file()
    assert {k: v for k, v in snapshot(a).items() if not k.startswith("report")} == \
        {k[2:]: v for k, v in before.items() if k.startswith("a/")}


@pytest.mark.parametrize(("case", "needle"), [
    ("missing", "no such directory"),
    ("folder", "not a run directory"),
    ("file", "not a run directory"),
    ("empty", "an empty run"),
    ("out_is_run", "holds a run"),
])
def test_bad_input_is_one_error_line(nascli, case, needle):
    run = make_run(nascli.cwd / "run", [], seed=0)
    if case == "folder":
        (nascli.cwd / "folder").mkdir()
    elif case == "empty":
        (nascli.cwd / "empty").mkdir()
        (nascli.cwd / "empty" / "history.jsonl").write_text("")
    args = {"missing": ["nowhere"], "folder": ["folder"], "file": [str(run / "history.jsonl")],
            "empty": ["empty"], "out_is_run": [str(run), "--out", str(run)]}[case]
    before = snapshot(run)
    one_error_line(nascli("report", *args), needle)
    assert snapshot(run) == before


def test_correlate_table_shows_p_values():
    from rich.console import Console
    from scipy import stats

    from nascli.commands.correlate import correlation_table, rank_correlations

    x, y = [1.0, 2.0, 3.0, 4.0, 5.0, 6.0], [0.1, 0.3, 0.2, 0.5, 0.4, 0.6]
    rows = {"synflow": rank_correlations(x, y), "params": rank_correlations([1.0] * 6, y)}
    console = Console(record=True, width=200)
    console.print(correlation_table(rows, "proxy vs accuracy"))
    text = console.export_text()
    assert "p (rho)" in text and "p (tau)" in text
    rho, p_rho = stats.spearmanr(x, y)
    tau, p_tau = stats.kendalltau(x, y)
    line = next(ln for ln in text.splitlines() if "synflow" in ln)
    for value in (f"{rho:+.3f}", f"{p_rho:.3f}", f"{tau:+.3f}", f"{p_tau:.3f}"):
        assert value in line
    assert rows["params"]["spearman"] is None  # constant proxy: no correlation, no p-value
    assert next(ln for ln in text.splitlines() if "params" in ln).count(" - ") == 4
