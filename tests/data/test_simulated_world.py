"""Acceptance checks of the simulated world (domain-research.md §4.10) on the `small` preset.

Two worlds, both seed 7: `prevalence_multiplier=5` (the reference point §4.10 gives for the rule's hit
rates) and `=12` for the per-pattern checks, which need enough positives of the rarer patterns for an
AUC to mean something (a binary indicator's AUC on 15 positives has a standard error near 0.06).
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from targeting.simulate import trade
from targeting.simulate.config import preset
from targeting.simulate.patterns import NPS_KEYWORDS, PATTERNS
from targeting.simulate.run import simulate
from targeting.simulate.separability import binary_feature_aucs, gbdt_auc
from targeting.simulate.stats import world_stats

pytestmark = pytest.mark.slow


@pytest.fixture(scope="module")
def world5(tmp_path_factory) -> Path:
    return simulate(preset("small", seed=7, prevalence_multiplier=5), tmp_path_factory.mktemp("small5"))


@pytest.fixture(scope="module")
def world12(tmp_path_factory) -> Path:
    return simulate(preset("small", seed=7, prevalence_multiplier=12), tmp_path_factory.mktemp("small12"))


def _load(run: Path) -> tuple[pd.DataFrame, pd.DataFrame]:
    return pd.read_parquet(run / "declarations.parquet"), pd.read_parquet(run / "ground_truth.parquet")


def test_rule_lifts_hit_rate_five_fold_over_random_in_every_mode(world5: Path) -> None:
    rule = world_stats(world5).rule.set_index("mode")
    assert set(rule.index) == {"SEA", "AIR", "EXPRESS", "POST"}
    assert (rule["lift"] >= 5).all(), rule


def test_rule_hit_rates_at_prevalence_five_are_in_the_stated_ranges(world5: Path) -> None:
    sel = world_stats(world5).selection
    rule = sel[sel["selection_reason"] == "RULE"].set_index("mode")["hit_rate"]
    assert 0.005 <= rule["SEA"] <= 0.05, rule
    for mode in ("POST", "EXPRESS"):
        assert 0.005 <= rule[mode] <= 0.03, rule


def test_intel_tips_bring_at_least_30_percent_of_sea_drug_positives(world5: Path) -> None:
    sel = world_stats(world5).selection
    sea = sel[sel["mode"] == "SEA"].set_index("selection_reason")["hits"]
    assert sea.sum() >= 10
    assert sea.get("INTEL_TIP", 0) / sea.sum() >= 0.30, sea


def test_no_single_binary_indicator_separates_any_pattern(world12: Path) -> None:
    decl, truth = _load(world12)
    worst = {}
    for pid in PATTERNS:
        aucs = binary_feature_aucs(decl, truth, pid)
        assert len(aucs), f"{pid}: no positives in its goods"
        worst[pid] = (aucs.index[0], round(float(aucs.iloc[0]), 3))
    assert all(auc <= 0.75 for _, auc in worst.values()), worst


def test_gradient_boosting_on_observable_columns_is_good_but_not_perfect(world5: Path) -> None:
    decl, truth = _load(world5)
    aucs = gbdt_auc(decl, truth)
    assert 0.85 <= aucs["overall"] <= 0.95, aucs


def test_d1_port_crackdown_moves_p01_away_from_busan(world12: Path) -> None:
    decl, truth = _load(world12)
    cfg = preset("small")
    day = (decl["filed_at"] - pd.Timestamp(cfg.start_date, tz="UTC")).dt.days
    p01 = (truth["pattern_id"] == "P01").to_numpy()
    before = p01 & (day < cfg.drift_day(cfg.d1_start)).to_numpy()
    during = p01 & ((day >= cfg.drift_day(cfg.d1_start)) & (day < cfg.drift_day(cfg.d1_end))).to_numpy()
    assert before.sum() >= 15 and during.sum() >= 15
    share_before = (decl.loc[before, "discharge_loc"] == "KRPUS").mean()
    share_during = (decl.loc[during, "discharge_loc"] == "KRPUS").mean()
    assert share_during <= 0.6 * share_before, (share_before, share_during)


def test_d3_vocabulary_rotation_defeats_a_keyword_detector(world12: Path) -> None:
    decl, truth = _load(world12)
    cfg = preset("small")
    period = cfg.drift_day(cfg.d3_period)
    day = (decl["filed_at"] - pd.Timestamp(cfg.start_date, tz="UTC")).dt.days.to_numpy()
    detector = decl["goods_desc"].str.contains("|".join(NPS_KEYWORDS[0]), regex=True).to_numpy(dtype=bool)
    p08 = (truth["pattern_id"] == "P08").to_numpy()
    first, later = p08 & (day < period), p08 & (day >= period)
    assert first.sum() >= 30 and later.sum() >= 30
    recall_first, recall_later = detector[first].mean(), detector[later].mean()
    assert recall_later <= 0.7 * recall_first, (recall_first, recall_later)


def test_value_per_kg_follows_each_lines_lognormal(world5: Path) -> None:
    decl, truth = _load(world5)
    legit = ~truth["is_smuggling"].fillna(False).to_numpy(dtype=bool)
    goods = decl[legit & decl["mode"].isin(["SEA", "AIR"]).to_numpy() & decl["hs_code"].notna().to_numpy()]
    usd = pd.Series(trade.LINE_USD, index=trade.LINE_HS)
    usd = usd[~usd.index.duplicated()]
    top = goods["hs_code"].value_counts().index[:5]
    sigma = float(np.hypot(trade.UNIT_SIGMA, trade.VALUE_SIGMA))
    for hs6 in top:
        rows = goods[goods["hs_code"] == hs6]
        log_ratio = np.log(rows["declared_value_usd"] / rows["gross_weight_kg"]) - np.log(usd[hs6])
        assert abs(log_ratio.mean()) < 0.1, (hs6, log_ratio.mean())
        assert abs(log_ratio.std() - sigma) < 0.08, (hs6, log_ratio.std(), sigma)


def test_post_item_category_mix_as_configured(world5: Path) -> None:
    decl, truth = _load(world5)
    legit = ~truth["is_smuggling"].fillna(False).to_numpy(dtype=bool)
    post = decl[legit & (decl["mode"] == "POST").to_numpy()]
    share = post["item_category"].value_counts(normalize=True)
    for category, expected in zip(trade.POST_CATEGORIES, trade.POST_CATEGORY_MIX, strict=True):
        assert abs(share.get(category, 0.0) - expected) < 0.015, (category, share.get(category), expected)
