"""Budgets and decisions with exploration: the top of each mode's budget, the explored share and its propensity, the summary."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from targeting.errors import ConfigError
from targeting.scoring.batch import summarise
from targeting.scoring.decisions import Budget, decide, parse_budgets, parse_share, rank_and_decide


def test_budgets_accept_percentages_and_counts() -> None:
    b = parse_budgets("SEA=2%, air=1%,POST=300")
    assert b == {"SEA": Budget(2.0, True), "AIR": Budget(1.0, True), "POST": Budget(300, False)}
    assert b["SEA"].capacity(1000) == 20 and b["SEA"].capacity(10) == 1  # max(1, floor(k N))
    assert b["POST"].capacity(1000) == 300 and b["POST"].capacity(120) == 120
    assert parse_share("10%") == pytest.approx(0.1) and parse_share("0.25") == 0.25


@pytest.mark.parametrize(("text", "message"), [("SEA=2", None), ("SEA:2%", "is not MODE=PERCENT%"),
                                               ("RAIL=1%", "unknown mode 'RAIL'"), ("SEA=120%", "more than 100"),
                                               ("POST=2.5", "whole number"), ("", "no budget given")])  # fmt: skip
def test_bad_budgets_are_one_clear_error(text: str, message: str | None) -> None:
    if message is None:
        assert parse_budgets(text)["SEA"].capacity(100) == 2
        return
    with pytest.raises(ConfigError, match=message):
        parse_budgets(text)


def _frame(n: int, mode: str = "SEA", seed: int = 0) -> pd.DataFrame:
    rng = np.random.default_rng(seed)
    return pd.DataFrame({"declaration_id": [f"{mode}{i:05d}" for i in range(n)], "mode": mode,
                         "risk_score": rng.random(n)})  # fmt: skip


def test_inspect_takes_the_top_and_explore_samples_the_rest_with_its_propensity() -> None:
    frame = _frame(1000)
    out = decide(frame, {"SEA": Budget(2.0, True)}, 0.1, np.random.default_rng(1))
    # capacity 20, exploration share 10 % -> exactly 2 explored (2.0 has no fraction), 18 inspected
    counts = out["decision"].value_counts()
    assert counts["INSPECT"] == 18 and counts["EXPLORE"] == 2 and counts["RELEASE"] == 980
    top18 = frame["risk_score"].rank(ascending=False) <= 18
    assert (out.loc[top18, "decision"] == "INSPECT").all()
    assert (out.loc[top18, "selection_propensity"] == 1.0).all()
    rest = ~top18
    assert np.allclose(out.loc[rest, "selection_propensity"], 2 / 982)


def test_exploration_count_is_right_on_average_for_small_modes() -> None:
    # capacity 3 and a 10 % share: 0.3 explorations expected; random rounding keeps the expectation
    frame = _frame(300, "POST")
    explored = [(decide(frame, {"POST": Budget(1.0, True)}, 0.1, np.random.default_rng(s))["decision"] == "EXPLORE").sum()
                for s in range(400)]  # fmt: skip
    assert set(explored) == {0, 1}
    assert np.mean(explored) == pytest.approx(0.3, abs=0.07)


def test_a_mode_without_budget_is_released_and_counts_do_not_exceed_rows() -> None:
    frame = pd.concat([_frame(5, "SEA"), _frame(50, "AIR")], ignore_index=True)
    out = decide(frame, {"SEA": Budget(10, False)}, 0.0, np.random.default_rng(0))
    assert (out.loc[frame["mode"] == "SEA", "decision"] == "INSPECT").all()  # 10 asked, 5 exist
    assert (out.loc[frame["mode"] == "AIR", "decision"] == "RELEASE").all()


def test_the_summary_from_the_decision_codes_equals_the_one_grouped_from_the_table() -> None:
    # three modes of different sizes, one without a budget, ties in the scores
    frame = pd.concat([_frame(400, "SEA", 1), _frame(90, "AIR", 2), _frame(7, "POST", 3)], ignore_index=True)
    frame.loc[::5, "risk_score"] = 0.5
    budgets = {"SEA": Budget(5.0, True), "AIR": Budget(4, False)}
    ranked, _, picked, counts = rank_and_decide(frame, frame["risk_score"].to_numpy(), budgets, 0.25, 7)
    no_drift = pd.DataFrame(columns=["column", "psi", "warning"])
    grouped = ranked.groupby(["mode", "decision"], sort=True).size().unstack(fill_value=0)
    pd.testing.assert_frame_equal(counts[grouped.columns], grouped, check_names=False, check_dtype=False)
    from_codes = summarise(ranked, budgets, 0.25, no_drift, counts)
    assert from_codes == summarise(ranked, budgets, 0.25, no_drift, grouped)
    by_mode = {m["mode"]: m for m in from_codes["per_mode"]}
    assert by_mode["SEA"]["INSPECT"] + by_mode["SEA"]["EXPLORE"] == 20 and by_mode["POST"]["RELEASE"] == 7
    assert by_mode["AIR"]["INSPECT"] + by_mode["AIR"]["EXPLORE"] == 4 and len(picked) == 24
