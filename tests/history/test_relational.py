"""The history's as-of answers as one relational query (`history/relational.py`) equal the reference
`HistoryStore.as_of`, on DuckDB and on Spark: late and out-of-order outcomes, a declaration inspected twice,
ties in time, stored rows scored again, repeated ids, values never seen, missing values, absent keys."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from targeting.history.relational import (
    KEY_COLUMNS,
    answer_columns,
    duckdb_as_of,
    duckdb_state,
    duckdb_state_as_of,
    spark_as_of,
    spark_state,
    spark_state_as_of,
)
from targeting.history.store import HistoryStore
from tests.history.test_living import _queries, _world


def _case(seed: int) -> tuple[HistoryStore, pd.DataFrame, pd.DataFrame]:
    """A store of the first 1,000 declarations, and a query: stored rows, new rows at new and old times,
    a repeated id, a value never seen, and later declarations of the same world (a batch's own history)."""
    decl, insp = _world(seed, n=1400, days=30)
    rng = np.random.default_rng(seed)
    store = HistoryStore.from_tables(decl.iloc[:1000], insp)
    query = pd.concat([_queries(decl.iloc[:1000], rng), decl.iloc[1000:]])
    query.index = np.arange(len(query)) * 3 + 7  # an index of its own, kept in the answer
    return store, insp, query


def _state_case(seed: int) -> tuple[pd.DataFrame, pd.DataFrame, pd.DataFrame]:
    """A history of the first 20 days (outcomes known by then; some arrive later and are not in it) and a
    batch after it: the later declarations, one id repeated, a value never seen, missing keys."""
    decl, insp = _world(seed, n=1400, days=30)
    cut = pd.Timestamp("2024-01-21", tz="UTC")
    history, outcomes = decl[decl["filed_at"] < cut], insp[insp["exam_at"] < cut]
    batch = decl[decl["filed_at"] >= cut].copy()
    batch.loc[batch.index[3], "consignee_id"] = "never-seen"
    batch.loc[batch.index[4], "consignor_id"] = None
    batch = pd.concat([batch, batch.iloc[[5]].assign(filed_at=batch["filed_at"].max())])  # a repeated id
    batch.index = np.arange(len(batch)) * 2 + 1
    return history, outcomes, batch


def _assert_equal(got: pd.DataFrame, expected: pd.DataFrame) -> None:
    assert list(got.columns) == list(expected.columns) and len(got) == len(expected)
    pd.testing.assert_frame_equal(got, expected, check_exact=True, check_dtype=False)


@pytest.mark.parametrize("seed", [1, 2, 3])
def test_duckdb_answers_equal_the_reference(seed) -> None:
    store, insp, query = _case(seed)
    expected = store.as_of(query)
    assert expected.notna().any().all() and expected["h_consignee_hits"].max() > 0
    _assert_equal(duckdb_as_of(store, insp, query), expected)


def test_keys_absent_from_the_query_or_the_store_are_answered_as_the_reference_does() -> None:
    store, insp, query = _case(4)
    query = query.drop(columns=["forwarder_id", "consignor_id"])  # optional keys a manifest may lack
    store.declarations = store.declarations.drop(columns=["forwarder_id"])
    got = duckdb_as_of(store, insp, query)
    assert "h_address_new_senders_30d" not in got and got.columns.tolist() == answer_columns(query.columns)
    expected = HistoryStore(store.declarations, store.outcomes).as_of(query)
    _assert_equal(got, expected)


@pytest.mark.parametrize("seed", [1, 2])
def test_duckdb_answers_from_the_state_equal_the_reference(seed) -> None:
    """The state (per key value, summed over the history) and a batch filed after it: the batch's as-of
    answers equal those of the whole history, its own earlier rows counted."""
    history, outcomes, batch = _state_case(seed)
    state = duckdb_state(history, outcomes)
    assert state.cutoff < batch["filed_at"].min().timestamp()
    assert len(state.keys) == sum(history[c].nunique() for c in KEY_COLUMNS.values() if c in history)
    expected = HistoryStore.from_tables(history, outcomes).as_of(batch)
    assert expected["h_consignee_hits"].max() > 0 and expected["h_address_new_senders_30d"].max() > 0
    _assert_equal(duckdb_state_as_of(state, batch), expected)
    # a manifest without the optional keys
    lean = batch.drop(columns=["forwarder_id", "consignee_email_hash"])
    _assert_equal(duckdb_state_as_of(state, lean), HistoryStore.from_tables(history, outcomes).as_of(lean))


@pytest.mark.slow
def test_spark_answers_equal_the_reference() -> None:
    from targeting.scoring.spark import session

    spark = session("local[2]", "targeting-as-of-test")
    for seed in (1, 2):
        store, insp, query = _case(seed)
        rows = spark.createDataFrame(query.reset_index(drop=True).assign(qrow=np.arange(len(query))))
        answer = spark_as_of(spark, spark.createDataFrame(store.declarations), spark.createDataFrame(insp),
                             rows).toPandas()  # fmt: skip
        got = answer.sort_values("qrow").drop(columns=["qrow"]).set_axis(query.index).astype("float64")
        _assert_equal(got, store.as_of(query))

    history, outcomes, batch = _state_case(1)
    state = spark_state(spark, spark.createDataFrame(history), spark.createDataFrame(outcomes))
    rows = spark.createDataFrame(batch.reset_index(drop=True).assign(qrow=np.arange(len(batch))))
    answer = spark_state_as_of(spark, state, rows).toPandas()
    got = answer.sort_values("qrow").drop(columns=["qrow"]).set_axis(batch.index).astype("float64")
    _assert_equal(got, HistoryStore.from_tables(history, outcomes).as_of(batch))
