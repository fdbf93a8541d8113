"""The history store is point-in-time; every transformer keeps the sklearn contract."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest
from sklearn.base import clone
from sklearn.exceptions import NotFittedError

from targeting.features.build import build_features, union_from_state, union_state
from targeting.features.categorical import CategoricalCodes
from targeting.features.declaration import DeclarationFeatures
from targeting.features.history import HistoryFeatures
from targeting.features.text import TextScore
from targeting.history import HistoryStore
from targeting.labels import labels
from targeting.model import annotate
from targeting.simulate.config import preset
from targeting.simulate.run import simulate


@pytest.fixture(scope="module")
def world(tmp_path_factory):
    run = simulate(preset("tiny", seed=5), tmp_path_factory.mktemp("tiny5"))
    return pd.read_parquet(run / "declarations.parquet"), pd.read_parquet(run / "inspections.parquet"), \
        pd.read_parquet(run / "ground_truth.parquet")  # fmt: skip


@pytest.fixture(scope="module")
def labelled(world):
    decl, insp, _ = world
    lab = labels(insp)
    rows = decl.merge(lab, on="declaration_id").sort_values("filed_at").reset_index(drop=True)
    return annotate(rows, HistoryStore.from_tables(decl, insp)), rows["label"].to_numpy(bool)


def test_prior_declarations_match_the_generators_counter(world) -> None:
    decl, insp, truth = world
    h = HistoryStore.from_tables(decl, insp).as_of(decl)
    # the store counts strictly earlier filings; the generator also counts an earlier row filed in the
    # same second, so rows sharing (consignee, second) are left out of the comparison
    tied = decl.duplicated(["consignee_id", "filed_at"], keep=False).to_numpy()
    assert tied.sum() < 0.01 * len(decl)
    assert (h["h_consignee_decl"].to_numpy()[~tied] == truth["consignee_prior_decl"].to_numpy()[~tied]).all()


def test_flipping_outcomes_after_a_cutoff_changes_no_earlier_feature(world) -> None:
    decl, insp, _ = world
    cutoff = decl["filed_at"].min() + pd.Timedelta(days=7)
    flipped = insp.copy()
    later = flipped["exam_at"] >= cutoff
    flipped.loc[later, "result"] = np.where(
        flipped.loc[later, "result"] == "NO_FINDING", "DRUG", "NO_FINDING"
    )
    before = decl[decl["filed_at"] < cutoff]
    a = HistoryStore.from_tables(decl, insp).as_of(before)
    b = HistoryStore.from_tables(decl, flipped).as_of(before)
    pd.testing.assert_frame_equal(a, b)
    after = decl[decl["filed_at"] >= cutoff + pd.Timedelta(days=3)]
    assert (
        not HistoryStore.from_tables(decl, insp)
        .as_of(after)
        .equals(HistoryStore.from_tables(decl, flipped).as_of(after))
    )


def test_a_seizure_today_counts_for_tomorrows_linked_rows(world) -> None:
    decl, insp, _ = world
    hit = insp[insp["result"].isin(["DRUG", "PRECURSOR"])].iloc[0]
    row = decl[decl["declaration_id"] == hit["declaration_id"]].iloc[0]
    later = row.copy()
    later["declaration_id"] = "NEW-1"
    later["consignee_id"] = "NEW-CONSIGNEE"  # a new name, the same phone
    later["filed_at"] = hit["exam_at"] + pd.Timedelta(hours=1)
    h = HistoryStore.from_tables(decl, insp).as_of(pd.DataFrame([later]))
    assert h["h_phone_hits"].iloc[0] >= 1
    assert h["h_consignee_decl"].iloc[0] == 0


TRANSFORMERS = [DeclarationFeatures(), HistoryFeatures(), CategoricalCodes(), TextScore(n_features=2**10)]


@pytest.mark.parametrize("transformer", TRANSFORMERS, ids=lambda t: type(t).__name__)
def test_transformer_contract(transformer, labelled) -> None:
    X, y = labelled
    fresh = clone(transformer)
    with pytest.raises(NotFittedError):
        fresh.transform(X)
    before = X.copy()
    X_shuffled = X.sample(frac=1.0, random_state=1)
    out = fresh.fit(X, y).transform(X_shuffled)
    pd.testing.assert_frame_equal(X, before)  # no mutation
    assert list(out.columns) == list(fresh.get_feature_names_out())
    assert out.index.equals(X_shuffled.index)
    restored = type(fresh).from_state(fresh.to_state())
    pd.testing.assert_frame_equal(restored.transform(X), fresh.transform(X))


def test_union_state_round_trips_through_json(labelled) -> None:
    import json

    X, y = labelled
    union = build_features()
    a = union.fit_transform(X, y)
    b = union_from_state(json.loads(json.dumps(union_state(union)))).transform(X)
    assert list(a.columns) == list(b.columns)
    np.testing.assert_allclose(union.transform(X).to_numpy(), b.to_numpy(), equal_nan=True)


def test_categorical_codes_read_a_numeric_level_the_same_as_int_or_float_and_unseen_as_rare() -> None:
    from targeting.features.categorical import CategoricalCodes

    train = pd.DataFrame({"office": [10] * 30 + [20] * 25 + [30] * 5})
    codes = CategoricalCodes(columns=("office",), min_count=20).fit(train)
    assert codes.vocab_["office"] == ["10", "20", "__rare__"]
    later = pd.DataFrame({"office": [10.0, 20.0, 30.0, 99.0, np.nan]})  # a missing value makes it float
    np.testing.assert_array_equal(codes.transform(later)["cat_office"].to_numpy(), [0, 1, 2, 2, np.nan])


def test_declaration_features_per_distinct_value_match_row_by_row_rules() -> None:
    """Peer medians (HS6 x origin, else HS6, else all), HS chapter, transit count, lead days and hour are
    computed once per distinct value and gathered back: each row gets what its own values say."""
    train = pd.DataFrame({
        "hs_code": ["090240"] * 25 + ["300490"] * 25, "origin_country": ["TH"] * 25 + ["NL"] * 25,
        "declared_value_usd": [100.0] * 25 + [1000.0] * 25, "gross_weight_kg": [10.0] * 50,
    })  # fmt: skip
    fitted = DeclarationFeatures(min_peers=20).fit(train)
    rows = pd.DataFrame({
        "hs_code": pd.Series(["090240", "090240", "300490", None, "999999"], dtype="str"),
        "origin_country": pd.Series(["TH", "CN", "NL", "TH", None], dtype="str"),
        "declared_value_usd": [100.0, 100.0, 1000.0, 5.0, 5.0], "gross_weight_kg": [10.0] * 5,
        "transit_locs": pd.Series(["", None, "NLRTM", "NLRTM;BEANR", "NLRTM"], dtype="str"),
        "filed_at": pd.to_datetime(["2024-03-01T23:30:00Z", "2024-03-02T00:10:00Z", "2024-03-02T05:00:00Z",
                                    "2024-03-02T05:00:00Z", "2024-03-02T05:00:00Z"], utc=True),
        "arrival_date": pd.Series(pd.to_datetime(["2024-03-05", "2024-03-02", None, "2024-03-01", "2024-03-09"]).date,
                                  dtype=object),
    })  # fmt: skip
    out = fitted.transform(rows)
    tea, pharma = np.log1p(100.0) - np.log(10.0), np.log1p(1000.0) - np.log(10.0)
    np.testing.assert_allclose(out["log_value_per_kg_peer"], [round(tea, 6), round(tea, 6), round(pharma, 6),
                                                              fitted.peer_all_, fitted.peer_all_])  # fmt: skip
    np.testing.assert_array_equal(out["hs_chapter"], [9, 9, 30, np.nan, 99])
    np.testing.assert_array_equal(out["hs_missing"], [0, 0, 0, 1, 0])
    np.testing.assert_array_equal(out["n_transit"], [0, 0, 1, 2, 1])
    np.testing.assert_array_equal(out["lead_days"], [4, 0, np.nan, -1, 7])
    np.testing.assert_array_equal(out["filed_hour"], [23, 0, 5, 5, 5])


def test_the_model_matrix_is_the_union_output_in_booster_order_as_float32(labelled, monkeypatch) -> None:
    """Scoring builds the matrix from each transformer's columns straight into one float32 block; it must
    hold what training fed the booster: the union's output, cast to float32."""
    import lightgbm as lgb

    from targeting.model import TargetingModel

    X, y = labelled
    union = build_features()
    train = union.fit_transform(X, y)
    shuffled = list(train.columns[::-1])  # a booster order that differs from the union's
    booster = lgb.train({"objective": "binary", "verbose": -1, "num_leaves": 4}, lgb.Dataset(
        train[shuffled].to_numpy(np.float32), y.astype(int), feature_name=shuffled), num_boost_round=2)  # fmt: skip
    model = TargetingModel(union, booster, (1.0, 0.0), {})
    matrix = model.matrix(X)
    assert list(matrix.columns) == shuffled and (matrix.dtypes == np.float32).all()
    np.testing.assert_array_equal(matrix.to_numpy(), union.transform(X)[shuffled].to_numpy(np.float32))
    # built with the categorical codes on a second thread: the same block
    assert any(getattr(t, "releases_gil", False) for _, t in union.transformer_list)
    import targeting.model as model_module

    monkeypatch.setattr(model_module, "SIDE_THREAD_ROWS", 0)
    np.testing.assert_array_equal(model.matrix(X, threads=2).to_numpy(), matrix.to_numpy())
