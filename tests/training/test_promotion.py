"""Honest promotion: judged on days neither model saw, at the budget, by inverse-propensity estimated hits."""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import pandas as pd
import pytest
from sklearn.metrics import average_precision_score

from targeting.model.meta import ModelMeta
from targeting.scoring.decisions import parse_budgets
from targeting.training.promotion import compare, judge, selections

START = pd.Timestamp("2024-01-01", tz="UTC")
BUDGETS = parse_budgets("SEA=2%,AIR=2%")


def _windows(train_end: int, valid_end: int, test_end: int) -> dict[str, str]:
    day = lambda d: (START + pd.Timedelta(days=d)).isoformat()  # noqa: E731
    return {"train_window": f"[-inf, {day(train_end)})", "valid_window": f"[{day(train_end)}, {day(valid_end)})",
            "test_window": f"[{day(valid_end)}, {day(test_end)})"}  # fmt: skip


@dataclass
class Scores:
    """A model for `judge`: scores looked up by declaration id, and its recorded windows."""

    by_id: pd.Series
    meta: ModelMeta

    def predict_annotated(self, annotated: pd.DataFrame) -> np.ndarray:
        return self.by_id.loc[annotated["declaration_id"]].to_numpy(dtype=float)


@pytest.fixture(scope="module")
def world():
    """40 days x 3,000 declarations, a latent risk behind the hits; the champion's policy inspected its
    top 2 % of each day and mode (propensity 1) and explored 10 % of the rest uniformly (far more than a
    service would: the estimate's spread shrinks with the explored rows, and these tests check its
    centre and the decisions, not its spread)."""
    rng = np.random.default_rng(5)
    n_days, per_day = 40, 3000
    n = n_days * per_day
    day = np.repeat(np.arange(n_days), per_day)
    rows = pd.DataFrame({"declaration_id": [f"D{i:07d}" for i in range(n)],
                         "filed_at": START + pd.to_timedelta(day, unit="D") + pd.to_timedelta(rng.integers(0, 86_000, n), unit="s"),
                         "mode": np.where(rng.random(n) < 0.5, "SEA", "AIR")})  # fmt: skip
    risk = rng.normal(0, 1, n)
    truth = risk + rng.normal(0, 0.5, n) > 2.6  # about 1 % hits
    champion = risk + rng.normal(0, 1.5, n)  # a weaker view of the same risk
    chosen = selections(rows, champion, BUDGETS)
    explore_p = np.zeros(n)
    explored = np.zeros(n, bool)
    for _group, part in rows.groupby([day, rows["mode"]]):
        rest = part.index[~chosen[part.index]].to_numpy()
        k = int(0.1 * len(rest))
        explore_p[rest] = k / len(rest)
        explored[rng.choice(rest, k, replace=False)] = True
    inspected = chosen | explored
    rows["label"] = np.where(inspected, truth.astype(float), np.nan)
    rows["selection_propensity"] = np.where(chosen, 1.0, explore_p)
    return rows, risk, truth, champion


def test_inverse_propensity_weights_estimate_the_hits_in_all_traffic(world) -> None:
    rows, risk, truth, champion = world
    evidence = compare(rows, risk, champion, BUDGETS, "w", samples=200)
    table = evidence.table.set_index(["model", "slice"])
    for model, scores in (("challenger", risk), ("champion", champion)):
        true_found = truth[selections(rows, scores, BUDGETS)].sum()
        estimated = table.loc[(model, "ALL"), "hits_estimated"]
        assert estimated == pytest.approx(true_found, rel=0.25), model
    # the observed count favours the incumbent: it saw every hit it chose, the challenger only some
    assert table.loc[("champion", "ALL"), "hits_observed"] == truth[selections(rows, champion, BUDGETS)].sum()
    assert table.loc[("challenger", "ALL"), "hits_observed"] < truth[selections(rows, risk, BUDGETS)].sum() * 0.5
    assert table.loc[("challenger", "ALL"), "hits_estimated"] > table.loc[("champion", "ALL"), "hits_estimated"]


def test_a_truly_better_challenger_is_promoted_on_its_test_window(world) -> None:
    rows, risk, _truth, champion = world
    ids = rows["declaration_id"]
    new = Scores(pd.Series(risk, index=ids), ModelMeta(**_windows(10, 20, 40)))
    old = Scores(pd.Series(champion, index=ids), ModelMeta(**_windows(5, 10, 20)))
    evidence = judge(new, old, rows, BUDGETS)
    assert evidence.promote, evidence.reason
    assert evidence.lower_bound > 0 and evidence.interval[0] <= evidence.difference <= evidence.interval[1]


def test_a_challenger_that_memorised_its_validation_window_is_not_promoted(world) -> None:
    """It is perfect on its own validation window (where the old rule compared, it would win by far) and
    no better than the champion anywhere else: judged on its test window, it is not promoted."""
    rows, _risk, truth, champion = world
    ids = rows["declaration_id"]
    day = ((rows["filed_at"] - START).dt.days).to_numpy()
    in_valid = (day >= 10) & (day < 20)
    memorised = np.where(in_valid, truth.astype(float) + 10, champion)
    new = Scores(pd.Series(memorised, index=ids), ModelMeta(**_windows(10, 20, 40)))
    old = Scores(pd.Series(champion, index=ids), ModelMeta(**_windows(5, 10, 20)))
    valid = rows[in_valid & rows["label"].notna().to_numpy()]
    y = valid["label"].to_numpy(dtype=bool)
    assert average_precision_score(y, new.predict_annotated(valid)) > average_precision_score(y, old.predict_annotated(valid)) + 0.3
    evidence = judge(new, old, rows, BUDGETS)
    assert not evidence.promote
    assert evidence.difference == 0  # on the test window it selects exactly what the champion selects
    # asked to judge on a window the challenger was fitted on, it refuses rather than compares
    leaky = Scores(new.by_id, ModelMeta(**{**_windows(10, 20, 40), "test_window": _windows(10, 15, 20)["valid_window"]}))
    refused = judge(leaky, old, rows, BUDGETS)
    assert not refused.promote and "fitted on days of the window" in refused.reason


def test_a_champion_fitted_on_the_window_or_no_test_window_means_no_promotion(world) -> None:
    rows, risk, _truth, champion = world
    ids = rows["declaration_id"]
    new = Scores(pd.Series(risk, index=ids), ModelMeta(**_windows(10, 20, 40)))
    late = Scores(pd.Series(champion, index=ids), ModelMeta(**_windows(25, 30, 40)))
    assert "the champion was fitted on days" in judge(new, late, rows, BUDGETS).reason
    untested = Scores(new.by_id, ModelMeta(**{**_windows(10, 20, 40), "test_window": ""}))
    evidence = judge(untested, Scores(pd.Series(champion, index=ids), ModelMeta(**_windows(5, 10, 20))), rows, BUDGETS)
    assert not evidence.promote and "no test window" in evidence.reason
    first = judge(new, None, rows, BUDGETS)  # no champion yet: the first model is promoted
    assert first.promote and set(first.table["model"]) == {"challenger"}


def test_the_evidence_measures_how_much_the_two_selections_overlap(world) -> None:
    rows, risk, _truth, champion = world
    same = compare(rows, risk, risk.copy(), BUDGETS, "w", samples=50)
    assert same.overlap == 1.0
    a, b = selections(rows, risk, BUDGETS), selections(rows, champion, BUDGETS)
    other = compare(rows, risk, champion, BUDGETS, "w", samples=50)
    assert other.overlap == pytest.approx((a & b).sum() / (a | b).sum()) and 0 < other.overlap < 0.9
    assert np.isnan(compare(rows, risk, None, BUDGETS, "w").overlap)  # no champion: nothing to overlap
