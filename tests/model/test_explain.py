"""TreeSHAP additivity, the reason groups each feature declares, and the plain-language sentences."""

from __future__ import annotations

import lightgbm as lgb
import numpy as np
import pandas as pd
import pytest

from targeting.config import FeatureConfig
from targeting.features.base import REASON_GROUPS, FrameTransformer
from targeting.features.build import build_features, feature_groups
from targeting.model.explain import SENTENCES, contributions, explain, grouped


@pytest.fixture(scope="module")
def groups(labelled) -> dict[str, str]:
    """Each feature's reason group, as the transformers of a fitted union declare them (with an extra
    numeric column, as the KCS protocol adds)."""
    x, y = labelled
    union = build_features(FeatureConfig(extra_numeric=("kcs_tax_rate",))).fit(x, y)
    return feature_groups(union)


def test_treeshap_contributions_add_up_to_the_raw_score_and_groups_keep_the_sum(groups) -> None:
    rng = np.random.default_rng(0)
    names = [
        "consignee_prior_hits",
        "consignee_tenure_days",
        "value_per_kg_vs_peer",
        "desc_text_score",
        "cat_mode",
    ]
    x = pd.DataFrame(rng.normal(size=(3000, 5)), columns=names)
    y = (x["consignee_prior_hits"] + 0.5 * x["desc_text_score"] + rng.normal(size=3000) > 1.5).astype(int)
    booster = lgb.train({"objective": "binary", "verbose": -1, "num_leaves": 15}, lgb.Dataset(x, y), 50)
    contrib = contributions(booster, x.head(200))
    raw = booster.predict(x.head(200), raw_score=True)
    np.testing.assert_allclose(contrib.sum(axis=1), raw, atol=1e-9)
    summed = grouped(contrib, names, groups)
    assert list(summed.columns) == ["value", "description", "consignee", "transport"]
    np.testing.assert_allclose(summed.sum(axis=1) + contrib[:, -1], raw, atol=1e-9)


def test_explain_gives_the_top_positive_groups_with_each_rows_own_sentences(groups) -> None:
    rng = np.random.default_rng(1)
    names = ["consignee_prior_decl", "consignee_prior_hits", "log_value_per_kg_peer", "desc_text_score",
             "phone_prior_decl", "phone_prior_hits"]  # fmt: skip
    x = pd.DataFrame(rng.normal(size=(2000, 6)).clip(0, None).round(1), columns=names)
    y = (x["consignee_prior_hits"] + x["phone_prior_hits"] + rng.normal(size=2000) > 1.2).astype(int)
    booster = lgb.train({"objective": "binary", "verbose": -1, "num_leaves": 7}, lgb.Dataset(x, y), 30)
    matrix = x.head(300).astype(np.float32)
    annotated = pd.DataFrame({
        "declaration_id": [f"D{i}" for i in range(300)],
        "filed_at": pd.date_range("2024-03-01", periods=300, freq="h", tz="UTC"),
        "hs_code": rng.choice(["090240", None], 300), "origin_country": "TH", "goods_desc": "tea",
        "declared_value_usd": 40.0, "gross_weight_kg": 50.0, "consignee_tenure_days": 9.0,
        "consignee_prior_insp": 1.0, "consignee_days_since_hit": 3.0, "phone_days_since_hit": 5.0,
        "h_consignee_prior_decl": -1.0,
    }, index=pd.RangeIndex(1000, 1300))  # fmt: skip
    full = explain(booster, annotated, matrix, groups, n_reasons=3, num_threads=2)
    short = explain(booster, annotated, matrix, groups, n_reasons=3, every_group=False)
    pd.testing.assert_frame_equal(full.reasons, short.reasons)
    assert full.reasons.index.equals(annotated.index) and len(short.groups) == 0
    per_group = grouped(contributions(booster, matrix), names, groups)
    records = annotated.drop(columns="h_consignee_prior_decl").to_dict("records")
    for i, (record, features) in enumerate(zip(records, matrix.to_dict("records"), strict=True)):
        row = {**record, **features}
        top = per_group.iloc[i].sort_values(ascending=False, kind="stable")
        top = top[top > 0].head(3)
        got = full.reasons.iloc[i]
        for k in range(3):
            if k < len(top):
                assert got[f"reason_{k + 1}"] == SENTENCES[top.index[k]](row)
                assert got[f"reason_{k + 1}_contribution"] == pytest.approx(top.iloc[k])
            else:
                assert pd.isna(got[f"reason_{k + 1}"]) and np.isnan(got[f"reason_{k + 1}_contribution"])
        mine = full.groups[full.groups["declaration_id"] == f"D{i}"]
        assert list(mine["group"]) == list(per_group.columns)
        assert list(mine["sentence"]) == [SENTENCES[g](row) for g in per_group.columns]
        np.testing.assert_allclose(mine["contribution"], per_group.iloc[i].to_numpy())
    assert full.reasons["reason_1"].notna().sum() > 100 and full.reasons["reason_3"].isna().any()


def test_feature_names_map_to_the_groups_an_officer_recognises(groups) -> None:
    assert groups["consignee_tenure_days"] == "consignee"
    assert groups["phone_prior_hits"] == "phone"
    assert groups["address_new_senders_30d"] == "address"
    assert groups["transit_hit_rate"] == "route" and groups["cat_origin_country"] == "route"
    assert groups["value_per_kg_vs_peer"] == "value"
    assert groups["desc_text_score"] == "description"
    assert groups["extra_kcs_tax_rate"] == "other"


def test_every_feature_of_every_transformer_declares_a_known_reason_group(labelled, groups) -> None:
    """A new feature cannot land in a group silently: each transformer names its features' groups, and the
    union's features are exactly those named."""
    x, _ = labelled
    union = build_features(FeatureConfig(extra_numeric=("kcs_tax_rate",))).fit(x, labelled[1])
    assert set(groups) == set(union.get_feature_names_out()) and len(groups) > 80
    assert set(groups.values()) <= set(REASON_GROUPS)
    assert {"value", "packaging", "goods", "description", "timing", "route", "consignee", "phone", "email",
            "address", "transport"} <= set(groups.values())  # fmt: skip

    class Undeclared(FrameTransformer):
        def fit(self, X: pd.DataFrame, y: object = None) -> Undeclared:
            self.names_ = ["new_feature"]
            return self

    with pytest.raises(NotImplementedError, match="new_feature"):
        Undeclared().fit(x).reason_groups()


def test_sentences_carry_the_rows_own_values() -> None:
    row = {"filed_at": pd.Timestamp("2024-03-20T10:00:00Z"), "consignee_prior_decl": 2.0,
           "consignee_tenure_days": 9.2, "consignee_prior_insp": 0.0, "consignee_prior_hits": 0.0,
           "declared_value_usd": 40.0, "gross_weight_kg": 50.0, "log_value_per_kg_peer": np.log(14.2),
           "hs_code": "090240", "origin_country": "TH", "address_new_senders_30d": 4.0,
           "address_prior_decl": 6.0, "address_prior_hits": 0.0, "phone_prior_decl": 3.0,
           "phone_prior_hits": 1.0, "phone_days_since_hit": 18.0}  # fmt: skip
    assert SENTENCES["consignee"](row).startswith("consignee first seen 9 days ago, 2 earlier declarations")
    assert SENTENCES["value"](row) == (
        "0.80 USD/kg declared (40 USD for 50.0 kg) vs 14.20 USD/kg median for HS 090240 from TH"
    )
    assert SENTENCES["address"](row).startswith(
        "addressee received parcels from 4 different senders in 30 days"
    )
    assert SENTENCES["phone"](row) == "linked by phone to a consignee with a seizure on 2024-03-02"


def test_sentences_say_an_optional_value_is_missing_instead_of_printing_nan() -> None:
    row = {"gross_weight_kg": 20500.5, "declared_value_usd": float("nan"), "n_packages": float("nan"),
           "log_value_per_kg_peer": np.log(19.82), "hs_code": "080390", "origin_country": "EC"}  # fmt: skip
    for group in SENTENCES:
        if group in ("value", "packaging"):
            assert "nan" not in SENTENCES[group](row).lower(), SENTENCES[group](row)
    assert SENTENCES["value"](row).startswith("no value declared (20,500.5 kg) vs 19.82 USD/kg median")
    assert SENTENCES["packaging"](row) == "20,500.5 kg, number of packages not declared"
