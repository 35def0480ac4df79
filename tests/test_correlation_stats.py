"""Rank correlations used by ``nascli correlate``."""

from __future__ import annotations

import pytest

from nascli.commands.correlate import rank_correlations


def test_perfect_and_reversed_rankings():
    acc = [0.1, 0.4, 0.2, 0.9]
    assert rank_correlations([1, 4, 2, 9], acc)["spearman"] == pytest.approx(1.0)
    assert rank_correlations([-1, -4, -2, -9], acc)["kendall"] == pytest.approx(-1.0)


def test_failed_scores_are_left_out():
    r = rank_correlations([1.0, None, float("nan"), 3.0, 2.0], [0.1, 0.5, 0.6, 0.3, 0.2])
    assert r["n"] == 3 and r["spearman"] == pytest.approx(1.0)
    assert rank_correlations([1.0, 1.0, 1.0], [0.1, 0.2, 0.3])["spearman"] is None
