"""Budgets, decisions with exploration, PSI, TreeSHAP additivity and the plain-language sentences."""

from __future__ import annotations

import os
from pathlib import Path

import lightgbm as lgb
import numpy as np
import pandas as pd
import pytest

from targeting.drift import profile, psi
from targeting.errors import ConfigError
from targeting.explain import SENTENCES, contributions, explain, group_of, grouped
from targeting.score import Budget, decide, parse_budgets, parse_share, rank_and_decide, summarise


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


def test_psi_is_near_zero_for_the_same_distribution_and_large_for_a_shift() -> None:
    rng = np.random.default_rng(0)
    ref = pd.DataFrame({"x": rng.normal(size=20_000), "cat_c": rng.integers(0, 5, 20_000).astype(float)})
    reference = profile(ref, rng.random(20_000), ["cat_c"])
    same = pd.DataFrame({"x": rng.normal(size=5000), "cat_c": rng.integers(0, 5, 5000).astype(float)})
    moved = pd.DataFrame({"x": rng.normal(1.0, size=5000), "cat_c": np.full(5000, 7.0)})
    calm = psi(reference, same, rng.random(5000)).set_index("column")["psi"]
    assert (calm < 0.02).all()
    shifted = psi(reference, moved, rng.random(5000) ** 4).set_index("column")
    assert (
        shifted.loc["x", "psi"] > 0.2
        and shifted.loc["cat_c", "psi"] > 0.2
        and shifted.loc["risk_score", "psi"] > 0.2
    )
    assert shifted["warning"].all()


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
def test_compiled_drift_bins_equal_numpys(dtype) -> None:
    from targeting.kernels import bin_counts

    rng = np.random.default_rng(3)
    x = rng.normal(size=20_000).round(1).astype(dtype)  # rounded: many values equal an edge
    x[::11], x[5::13], x[7::17] = np.nan, np.inf, -np.inf
    edges = np.array([-1.0, -0.5, -0.5000001, 0.0, 0.5, 1.0])[[0, 2, 1, 3, 4, 5]]
    wide = x.astype(np.float64)
    finite = np.isfinite(wide)
    expected = np.bincount(np.where(finite, 1 + np.searchsorted(edges, wide, side="right"), 0), minlength=8)
    assert (bin_counts(x, edges=edges) == expected).all()
    codes = np.array([0.0, 3.0, -1.0])  # most frequent first, as the reference keeps them
    ints = np.where(finite, rng.integers(-2, 5, len(x)), np.nan).astype(dtype)
    expected = [(~np.isfinite(ints)).sum(), *[(ints == c).sum() for c in codes]]
    expected.append(len(x) - sum(expected))
    assert bin_counts(ints, codes=codes).tolist() == expected
    assert bin_counts(np.zeros(0, dtype), edges=edges).tolist() == [0] * 8
    # a bin is the number of edges at or below the value, whatever their order or repeats
    shuffled = np.array([0.5, -1.0, 1.0, 0.0, 0.5, -0.5])
    expected = np.bincount(np.where(finite, 1 + np.searchsorted(np.sort(shuffled), wide, side="right"), 0),
                           minlength=8)  # fmt: skip
    assert (bin_counts(x, edges=shuffled) == expected).all()
    # a repeated code counts at its first place; an infinite code matches nothing (infinities are missing)
    ints[3::29] = np.inf
    got = bin_counts(ints, codes=np.array([0.0, 3.0, 0.0, np.inf])).tolist()
    zeros, threes = int((ints == 0).sum()), int((ints == 3).sum())
    missing = int((~np.isfinite(ints)).sum())
    assert got == [missing, zeros, threes, 0, 0, len(x) - missing - zeros - threes]


def test_as_of_history_state_moves_with_time_and_is_reported_without_warning() -> None:
    rng = np.random.default_rng(0)
    rates = rng.choice(
        [0.01, 0.021, 0.05], 5000
    )  # a route rate takes few values; new clean outcomes nudge them down
    ref = pd.DataFrame({"consignee_tenure_days": rng.uniform(0, 100, 5000), "origin_hit_rate": rates})
    later = pd.DataFrame(
        {"consignee_tenure_days": rng.uniform(0, 300, 5000), "origin_hit_rate": rates - 0.002}
    )
    out = psi(profile(ref, rng.random(5000), []), later, rng.random(5000)).set_index("column")
    assert out.loc["consignee_tenure_days", "psi"] > 0.2 and out.loc["origin_hit_rate", "psi"] > 0.2
    assert out.loc[["consignee_tenure_days", "origin_hit_rate"], "grows_with_time"].all()
    assert not out["warning"].any()


def test_treeshap_contributions_add_up_to_the_raw_score_and_groups_keep_the_sum() -> None:
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
    groups = grouped(contrib, names)
    assert list(groups.columns) == ["value", "description", "consignee", "transport"]
    np.testing.assert_allclose(groups.sum(axis=1) + contrib[:, -1], raw, atol=1e-9)


def test_explain_gives_the_top_positive_groups_with_each_rows_own_sentences() -> None:
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
    full = explain(booster, annotated, matrix, n_reasons=3, num_threads=2)
    short = explain(booster, annotated, matrix, n_reasons=3, every_group=False)
    pd.testing.assert_frame_equal(full.reasons, short.reasons)
    assert full.reasons.index.equals(annotated.index) and len(short.groups) == 0
    per_group = grouped(contributions(booster, matrix), names)
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


def test_feature_names_map_to_the_groups_an_officer_recognises() -> None:
    assert group_of("consignee_tenure_days") == "consignee"
    assert group_of("phone_prior_hits") == "phone"
    assert group_of("address_new_senders_30d") == "address"
    assert group_of("transit_hit_rate") == "route" and group_of("cat_origin_country") == "route"
    assert group_of("value_per_kg_vs_peer") == "value"
    assert group_of("desc_text_score") == "description"
    assert group_of("extra_kcs_tax_rate") == "other"


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


def test_score_refuses_an_unknown_engine_before_reading_anything(tmp_path) -> None:
    from typer.testing import CliRunner

    from targeting.cli import app

    result = CliRunner().invoke(app, ["score", str(tmp_path / "missing.csv"), "--engine", "flink",
                                      "--out", str(tmp_path / "out")])  # fmt: skip
    assert result.exit_code == 1 and "--engine 'flink': choose pandas or spark" in result.output
    assert not (tmp_path / "out").exists()


def test_report_waterfalls_drawn_by_worker_processes_equal_those_drawn_in_process(monkeypatch) -> None:
    """From PARALLEL_CARDS cards on, two spawned processes draw the waterfalls: the same pictures, in card
    order, with None kept for a card without explanations."""
    import targeting.report as report

    rng = np.random.default_rng(0)
    labels = ["consignee history", "route and origin", "declared value vs peers", "goods description"]
    per_card = [pd.DataFrame({"label": labels, "contribution": rng.normal(size=4)}) for _ in range(17)]
    per_card[3] = None
    parallel = report.waterfalls(per_card, -3.0)
    monkeypatch.setattr(report, "PARALLEL_CARDS", 10**6)
    serial = report.waterfalls(per_card, -3.0)
    assert parallel[3] is None and all(
        p.startswith("data:image/png;base64,") for i, p in enumerate(parallel) if i != 3
    )
    assert parallel == serial


def _rss_bytes() -> int:
    with open("/proc/self/statm") as fh:
        return int(fh.read().split()[1]) * os.sysconf("SC_PAGE_SIZE")


def _rss_given_back_by_freeing_64_mib() -> int:
    block = np.ones(64 * 2**20 // 8)  # 64 MiB, above glibc's largest mmap threshold, touched
    with_block = _rss_bytes()
    del block
    return with_block - _rss_bytes()


@pytest.mark.skipif(not Path("/proc/self/statm").exists(), reason="reads RSS from Linux's /proc")
def test_the_batch_keeps_the_memory_it_frees_and_restores_the_allocators_after() -> None:
    """Inside the block a freed 64 MiB stays in the process. (Whether it goes back outside depends on what
    the heap already holds in this test process, so only the allocators' settings are checked there.)"""
    import pyarrow as pa

    from targeting.memory import _glibc, retained_memory

    pool = pa.default_memory_pool().backend_name
    hugepage = np._core.multiarray._set_madvise_hugepage(True)
    with retained_memory():
        assert pa.default_memory_pool().backend_name == "system"  # Arrow allocates through malloc
        assert np._core.multiarray._set_madvise_hugepage(False) is False  # no huge pages inside
        if _glibc() is not None:
            assert _rss_given_back_by_freeing_64_mib() < 16 * 2**20  # kept for the next allocation
    assert pa.default_memory_pool().backend_name == pool
    assert np._core.multiarray._set_madvise_hugepage(hugepage) is True


def test_the_batch_keeps_the_collector_off_what_existed_before_it() -> None:
    import gc

    from targeting.memory import frozen_gc

    assert gc.get_freeze_count() == 0
    with frozen_gc():
        assert gc.get_freeze_count() > 0  # the imports' objects, set aside
    assert gc.get_freeze_count() == 0
