"""Metrics at budget on hand-computed examples (evaluation.md §1)."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from targeting.metrics import at_budget, budget_table, n_selected, reliability, select_top


@pytest.mark.parametrize(("k", "n", "expected"), [(1, 50, 1), (1, 100, 1), (1, 250, 2), (5, 100, 5), (10, 9, 1),
                                                  (10, 100, 10), (2.5, 200, 5)])  # fmt: skip
def test_selected_count_is_floor_with_a_minimum_of_one(k, n, expected) -> None:
    assert n_selected(k, n) == expected


def test_ties_are_broken_by_declaration_id_ascending() -> None:
    scores = np.array([0.9, 0.5, 0.5, 0.5, 0.1])
    ids = np.array(["D5", "D3", "D1", "D2", "D4"])
    chosen = select_top(scores, ids, 40)  # 2 of 5
    assert list(ids[chosen]) == ["D5", "D1"]


def test_precision_recall_and_seized_kg_by_hand() -> None:
    y = np.array([1, 0, 1, 0, 0, 0, 0, 0, 0, 1], bool)
    scores = np.array([0.9, 0.8, 0.7, 0.6, 0.5, 0.4, 0.3, 0.2, 0.1, 0.05])
    ids = np.array([f"D{i:02d}" for i in range(10)])
    qty = np.array([10, 0, 30, 0, 0, 0, 0, 0, 0, 60.0])
    m = at_budget(y, scores, ids, 30, qty)  # top 3: hits at 0 and 2
    assert m["precision"] == pytest.approx(2 / 3)
    assert m["recall"] == pytest.approx(2 / 3)
    assert m["seized_kg"] == pytest.approx(40 / 100)


def test_budget_table_is_per_mode_and_pooled() -> None:
    frame = pd.DataFrame({"declaration_id": ["A", "B", "C", "D"], "mode": ["SEA", "SEA", "POST", "POST"],
                          "label": [True, False, False, True], "risk_score": [0.9, 0.1, 0.8, 0.2]})  # fmt: skip
    t = budget_table(frame, budgets=(50.0,)).set_index("slice")
    assert t.loc["ALL", "precision"] == pytest.approx(0.5)  # A, C
    assert t.loc["SEA", "precision"] == 1.0 and t.loc["POST", "precision"] == 0.0


def test_reliability_bins() -> None:
    t = reliability(np.array([0, 1, 1, 0]), np.array([0.05, 0.95, 0.91, 0.15]))
    assert t["n"].sum() == 4 and t.loc[9, "observed_rate"] == 1.0 and t.loc[0, "observed_rate"] == 0.0


def test_ranking_order_equals_a_full_lexsort_with_ties_and_missing_scores() -> None:
    """Sorting by score and re-sorting only tied runs by id gives the full (score desc, id asc) order."""
    from targeting.metrics import ranking_order

    rng = np.random.default_rng(0)
    for _ in range(200):
        n = int(rng.integers(1, 300))
        ids = np.array([f"D{i}" for i in rng.permutation(n)], dtype=object)
        scores = rng.integers(0, 5, n).astype(float)
        scores[rng.random(n) < 0.05] = np.nan
        expected = np.lexsort((ids, -scores))
        np.testing.assert_array_equal(ranking_order(scores, ids), expected)
        # ids held by Arrow (as the daily batch holds them) are ranked by Arrow's sort
        np.testing.assert_array_equal(ranking_order(scores, pd.Series(ids, dtype="str")), expected)
        # ids that ascend already (a manifest sorted by id): ties are ordered by position
        ascending = np.array([f"D{i:04d}" for i in range(n)], dtype=object)
        np.testing.assert_array_equal(ranking_order(scores, pd.Series(ascending, dtype="str")),
                                      np.lexsort((ascending, -scores)))  # fmt: skip
