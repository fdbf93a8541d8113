"""`targeting monitor`'s figures on hand-made outcomes: channel hit rates, inverse-propensity estimates, the
warning when the model's hit rate falls towards exploration's."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from targeting.monitoring.performance import monitor

START = pd.Timestamp("2024-01-01", tz="UTC")


def _history(model_rate: float, random_rate: float, weeks: int = 6, seed: int = 0) -> tuple[pd.DataFrame, pd.DataFrame]:
    """Per day: 1,000 declarations, 20 chosen by the model (propensity 1), 5 explored (propensity 5/980)."""
    rng = np.random.default_rng(seed)
    decl, insp = [], []
    for day in range(7 * weeks):
        ids = [f"D{day:03d}-{i:04d}" for i in range(1000)]
        filed = START + pd.Timedelta(days=day, hours=8)
        decl.append(pd.DataFrame({"declaration_id": ids, "mode": "AIR", "filed_at": filed,
                                  "origin_country": np.where(np.arange(1000) < 500, "NL", "DE"), "consignee_type": "ORG"}))  # fmt: skip
        for i, (reason, rate, p) in enumerate([("MODEL", model_rate, 1.0)] * 20 + [("RANDOM", random_rate, 5 / 980)] * 5):
            insp.append({"declaration_id": ids[i], "selection_reason": reason, "selection_propensity": p,
                         "exam_at": filed + pd.Timedelta(hours=5),
                         "result": "DRUG" if rng.random() < rate else "NO_FINDING"})  # fmt: skip
    return pd.concat(decl, ignore_index=True), pd.DataFrame(insp)


def test_channel_hit_rates_and_the_inverse_propensity_estimate() -> None:
    decl, insp = _history(0.3, 0.02)
    result = monitor(decl, insp, None)
    pooled = result.weekly.groupby("channel")[["inspected", "hits"]].sum()
    assert pooled.loc["MODEL", "inspected"] == 20 * 42 and pooled.loc["RANDOM", "inspected"] == 5 * 42
    assert pooled.loc["MODEL", "hits"] / pooled.loc["MODEL", "inspected"] == pytest.approx(0.3, abs=0.05)
    # all traffic: the model's 20 rows at 30 % + 980 rows at 2 % = 6 + 19.6 hits a day
    total = result.estimates["estimated_hits_all_traffic"].sum() / 42
    assert total == pytest.approx(6 + 19.6, rel=0.35)
    assert result.lift > 5 and result.warnings == []
    audit = result.audit.set_index("value")
    assert audit.loc["NL", "selection_rate"] == pytest.approx(20 / 500)  # the model's 20 a day are all from NL
    assert audit.loc["DE", "selection_rate"] == 0


def test_a_warning_when_the_models_hit_rate_falls_towards_explorations() -> None:
    decl, insp = _history(0.05, 0.04)
    result = monitor(decl, insp, None)
    assert result.lift < 2
    assert len(result.warnings) == 1 and "has fallen towards exploration's" in result.warnings[0]


def test_calibration_by_score_bin_from_the_scoring_runs_scores() -> None:
    decl, insp = _history(0.3, 0.02)
    scores = pd.DataFrame({"declaration_id": decl["declaration_id"],
                           "risk_score": np.where(decl["declaration_id"].str[-4:].astype(int) < 20, 0.3, 0.02)})  # fmt: skip
    table = monitor(decl, insp, scores).calibration.set_index("bin")
    high = table[table["mean_score"] == 0.3].iloc[0]
    assert high["hit_rate_model_rows"] == pytest.approx(0.3, abs=0.05)
    low = table[table["mean_score"] == 0.02].iloc[0]
    assert low["inspected"] == 5 * 42 and np.isnan(low["hit_rate_model_rows"])


def test_promotion_decisions_show_the_overlap_of_consecutive_champions() -> None:
    decl, insp = _history(0.3, 0.02, weeks=2)
    log = pd.DataFrame({"decided": ["2024-01-15", "2024-01-08", "2024-01-22"], "version": [2, 1, 2],
                        "promoted": ["True", "True", "False"], "overlap": [0.4, np.nan, 0.9],
                        "difference": [12.0, np.nan, 1.0], "lower_bound": [3.0, np.nan, -2.0]})  # fmt: skip
    table = monitor(decl, insp, None, promotions=log).champions
    assert table["decided"].tolist() == ["2024-01-08", "2024-01-15", "2024-01-22"]
    assert table["promoted"].tolist() == [True, True, False]
    # the overlap of consecutive champions: only where the list actually changed hands
    assert table["champion_overlap"].tolist()[1] == 0.4 and table["champion_overlap"].isna().tolist() == [True, False, True]
    assert monitor(decl, insp, None).champions.empty
