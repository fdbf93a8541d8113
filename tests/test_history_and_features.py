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
