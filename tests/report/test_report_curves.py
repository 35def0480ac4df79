"""Best-so-far curves (steps, mean ± std over seeds, evaluations and wall time) and the saved
figure files."""

from __future__ import annotations

import xml.etree.ElementTree as ET

import numpy as np
import pytest
from fake_runs import make_sweep

from nascli.report import figures
from nascli.report.curves import (
    best_so_far,
    by_evaluations,
    by_time,
    plot_best_so_far,
    time_unit,
)
from nascli.report.runs import Group, Run, group_runs, load_runs


def _run(scores: list[float | None], elapsed: list[float], seed: int = 0) -> Run:
    rows = [{"id": i, "status": "ok" if s is not None else "failed", "score": s,
             "elapsed": t} for i, (s, t) in enumerate(zip(scores, elapsed, strict=True))]
    return Run(path=None, rows=rows, overrides={}, manifest={}, seed=seed)  # type: ignore[arg-type]


def test_best_so_far_is_nan_until_the_first_success():
    run = _run([None, 0.3, 0.2, 0.5], [1, 2, 3, 4])
    np.testing.assert_array_equal(best_so_far(run.rows), [np.nan, 0.3, 0.3, 0.5])


def test_mean_and_sample_std_over_seeds_up_to_the_shortest():
    runs = [_run([0.1, 0.4, 0.4, 0.9], [1, 2, 3, 4]), _run([0.3, 0.2, 0.6], [1, 2, 3], 1)]
    c = by_evaluations(runs)
    np.testing.assert_array_equal(c.x, [1, 2, 3])
    np.testing.assert_allclose(c.mean, [0.2, 0.35, 0.5])
    np.testing.assert_allclose(c.std, np.std([[0.1, 0.4, 0.4], [0.3, 0.3, 0.6]], axis=0,
                                              ddof=1))
    assert c.n == 2
    assert by_evaluations(runs[:1]).std is None  # one seed: no band


def test_wall_time_curve_follows_finish_order_and_starts_when_every_seed_has_a_score():
    # seed 0: id 1 finishes first (parallel workers); seed 1 ends at 5 s (the horizon)
    runs = [_run([0.9, 0.5, 0.7], [4.0, 1.0, 8.0]), _run([0.2, 0.6], [2.0, 5.0], 1)]
    c = by_time(runs)
    np.testing.assert_array_equal(c.x, [2.0, 4.0, 5.0])
    np.testing.assert_allclose(c.mean, [(0.5 + 0.2) / 2, (0.9 + 0.2) / 2, (0.9 + 0.6) / 2])
    assert time_unit(90) == (1.0, "s") and time_unit(600) == (60.0, "min")
    assert time_unit(4 * 3600) == (3600.0, "h")


@pytest.fixture(scope="module")
def groups(tmp_path_factory):
    sweep = make_sweep(tmp_path_factory.mktemp("sweep"), {"strategy": ["random", "evolution"]},
                       seeds=(0, 1), evaluations=7)
    return group_runs(load_runs([sweep]))[0]


@pytest.mark.parametrize("axis", ["evaluations", "time"])
def test_curves_are_steps_with_a_band_per_group(groups: list[Group], axis):
    from matplotlib.collections import PolyCollection
    from matplotlib.ticker import MaxNLocator

    with figures.style():
        fig = plot_best_so_far(groups, axis)
    ax = fig.axes[0]
    curves, _ = ax.get_legend_handles_labels()
    assert [line.get_drawstyle() for line in curves] == ["steps-post"] * 2
    bands = [c for c in ax.collections if isinstance(c, PolyCollection)]
    assert len(bands) == 2  # mean ± std, one per group
    legend = [t.get_text() for t in ax.get_legend().get_texts()]
    assert legend == ["strategy=evolution (2 seeds)", "strategy=random (2 seeds)"]
    if axis == "evaluations":
        locator = ax.xaxis.get_major_locator()
        assert isinstance(locator, MaxNLocator) and locator._integer
        assert all(float(t).is_integer() for t in ax.get_xticks())
        assert ax.get_xlabel() == "evaluations"
    else:
        assert ax.get_xlabel() == "wall time (s)"
    assert ax.get_ylabel() == "best validation accuracy so far"
    import matplotlib.pyplot as plt

    plt.close(fig)


def test_saved_files_are_a_png_and_a_dateless_svg_with_text(tmp_path):
    import matplotlib.pyplot as plt

    with figures.style():
        fig, ax = plt.subplots()
        ax.plot([1, 2], [3, 4], label="steps")
        ax.legend()
        assert figures.save(fig, tmp_path, "f") == ["f.png", "f.svg"]
    assert (tmp_path / "f.png").read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    root = ET.parse(tmp_path / "f.svg").getroot()
    assert root.tag == "{http://www.w3.org/2000/svg}svg"
    text = (tmp_path / "f.svg").read_text()
    assert "<dc:date>" not in text and ">steps</text>" in text  # text stays text
