"""Every transformer keeps the sklearn contract, its state round-trips through JSON, and its per-value work equals the row-by-row rules."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest
from sklearn.base import clone
from sklearn.exceptions import NotFittedError

from targeting.features.build import build_features, union_from_state, union_state
from targeting.features.categorical import CategoricalCodes
from targeting.features.declaration import DeclarationFeatures
from targeting.features.party_history import HistoryFeatures
from targeting.features.text import TextScore

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
