"""Ranking metrics used by the predictor benchmarks."""

from __future__ import annotations

import numpy as np
import pytest

from nasassist_plugins.predictor.metrics import ndcg_at_k, precision_at_top, ranking_metrics


def test_perfect_and_reversed_rankings():
    true = np.linspace(50, 95, 40)
    assert ranking_metrics(true, true)["spearman"] == pytest.approx(1.0)
    assert ranking_metrics(-true, true)["kendall"] == pytest.approx(-1.0)
    assert ndcg_at_k(true, true, 10) == pytest.approx(1.0)
    assert ndcg_at_k(-true, true, 10) < 1.0
    assert precision_at_top(true, true, 0.1) == 1.0
    assert precision_at_top(-true, true, 0.1) == 0.0


def test_ndcg_stays_in_unit_interval_for_negative_targets():
    true = np.array([-1.1, -0.9, -0.8, -0.7, -0.6])  # e.g. negative L2 error
    predicted = np.array([0.5, 0.1, 0.2, 0.3, 0.4])
    value = ndcg_at_k(predicted, true, 3)
    assert 0.0 <= value <= 1.0
    assert ndcg_at_k(true, true, 3) == pytest.approx(1.0)
