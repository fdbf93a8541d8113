"""The history's as-of answers as one relational query, for DuckDB on one machine and Spark on a cluster.

The same question `HistoryStore.as_of` answers, asked in SQL both engines accept (window functions over
the union of past events and query rows, partitioned by key, ordered by time):
- the declarations are the stored ones and the query's own (a repeated id counts once, the stored row
  first), so a batch's earlier rows count for its later ones;
- each inspected declaration has one outcome: positive if any exam found the target, known at the first
  exam that found it (else the last exam);
- per key value: declarations filed, outcomes known and hits known strictly before the query row's
  `filed_at` (a query row sorts before an event of the same second), first-seen and last-hit times (party
  keys), and at the consignee's address the senders first seen there in the 30 days before.

Inputs are three tables the engine registers (`STORED`, `EXAMS`, `QUERY`), with times as whole epoch
seconds (`filed_s`, `exam_s`) and key values as text; `QUERY` numbers its rows (`qrow`). The answer has
one row per `qrow` and the `h_<entity>_<what>` columns of `HistoryStore.as_of`.
"""

from __future__ import annotations

from collections.abc import Iterable
from typing import TYPE_CHECKING

import numpy as np
import pandas as pd

from targeting.config import Target
from targeting.contract.labels import POSITIVE_RESULTS, parse_target
from targeting.history.store import PARTY_KEYS, ROUTE_KEYS, WINDOW_DAYS, HistoryStore, _seconds, answer_parts

if TYPE_CHECKING:
    from pyspark.sql import DataFrame as SparkFrame
    from pyspark.sql import SparkSession

STORED, EXAMS, QUERY = "history_declarations", "history_exams", "query_rows"
#: every key column, in the order of the answer's columns
KEY_COLUMNS: dict[str, str] = {**PARTY_KEYS, **ROUTE_KEYS}
_ADDRESS, _SENDER = PARTY_KEYS["address"], PARTY_KEYS["consignor"]


def answer_columns(query_columns: Iterable[str]) -> list[str]:
    """The answer's columns for a query with these columns (keys it lacks are not answered)."""
    present = set(query_columns)
    columns = []
    for name, col in KEY_COLUMNS.items():
        if col in present:
            columns += [f"h_{name}_{part}" for part in answer_parts(name)]
    if _ADDRESS in present and _SENDER in present:
        columns.append("h_address_new_senders_30d")
    return columns


def as_of_sql(query_columns: Iterable[str], positive_results: Iterable[str]) -> str:
    """The as-of query for a query table with these columns; `positive_results`: the exam results that count
    as a hit for the target. Every key column must be present in `STORED` and `QUERY` (NULL where absent)."""
    present = set(query_columns)
    names = [(name, col) for name, col in KEY_COLUMNS.items() if col in present]
    keys = ", ".join(KEY_COLUMNS.values())
    positive = ", ".join(f"'{r}'" for r in positive_results)
    # only the values some query row names: the other values' events cannot change an answer
    unpivot_events = "\n    UNION ALL\n".join(
        f"    SELECT '{name}' AS k, {col} AS v, t, kind, is_decl, is_insp, is_hit, hit_t, qrow FROM events "
        f"WHERE {col} IN (SELECT {col} FROM {QUERY})"
        for name, col in names
    )
    running = "(PARTITION BY k, v ORDER BY t, kind, qrow ROWS BETWEEN UNBOUNDED PRECEDING AND CURRENT ROW)"
    pivot = []
    for name, _col in names:  # the running columns are named as the answer's parts
        pivot += [f"CAST(MAX(CASE WHEN k = '{name}' THEN {part} END) AS DOUBLE) AS h_{name}_{part}"
                  for part in answer_parts(name)]  # fmt: skip
    senders = _ADDRESS in present and _SENDER in present
    sender_ctes = f""",
pairs AS (  -- each (address, sender) pair's first declaration
    SELECT {_ADDRESS} AS v, MIN(filed_s) AS t FROM declarations
    WHERE {_ADDRESS} IS NOT NULL AND {_SENDER} IS NOT NULL GROUP BY {_ADDRESS}, {_SENDER}
),
sender_events AS (  -- a query row, the same row {WINDOW_DAYS} days earlier (probe), and the pairs' first days
    SELECT v, t, 1 AS kind, CAST(NULL AS BIGINT) AS qrow, 0 AS probe FROM pairs
    UNION ALL SELECT {_ADDRESS}, filed_s, 0, qrow, 0 FROM {QUERY} WHERE {_ADDRESS} IS NOT NULL
    UNION ALL SELECT {_ADDRESS}, filed_s - {WINDOW_DAYS * 86_400}, 0, qrow, 1 FROM {QUERY} WHERE {_ADDRESS} IS NOT NULL
),
sender_counts AS (
    SELECT qrow, probe, SUM(kind) OVER (PARTITION BY v ORDER BY t, kind, qrow, probe
                                        ROWS BETWEEN UNBOUNDED PRECEDING AND CURRENT ROW) AS before
    FROM sender_events
),
new_senders AS (
    SELECT qrow, CAST(SUM(CASE WHEN probe = 0 THEN before ELSE -before END) AS DOUBLE) AS h_address_new_senders_30d
    FROM sender_counts WHERE qrow IS NOT NULL GROUP BY qrow
)""" if senders else ""  # fmt: skip
    select_senders = ", s.h_address_new_senders_30d" if senders else ""
    join_senders = "LEFT JOIN new_senders s ON s.qrow = q.qrow" if senders else ""
    answers = ", ".join(f"a.{c}" for c in answer_columns(present) if c != "h_address_new_senders_30d")
    return f"""
WITH declarations AS (  -- a repeated id counts once: the stored row (ids are unique there), else the query's first
    SELECT declaration_id, filed_s, {keys} FROM {STORED}
    UNION ALL
    SELECT declaration_id, filed_s, {keys} FROM (
        SELECT *, ROW_NUMBER() OVER (PARTITION BY declaration_id ORDER BY qrow) AS copy FROM {QUERY}
    ) numbered
    WHERE copy = 1 AND declaration_id NOT IN (SELECT declaration_id FROM {STORED})
),
outcomes AS (  -- one per inspected declaration: a hit if any exam found the target, known at the first that did
    SELECT declaration_id,
           MAX(CASE WHEN result IN ({positive}) THEN 1 ELSE 0 END) AS label,
           COALESCE(MIN(CASE WHEN result IN ({positive}) THEN exam_s END), MAX(exam_s)) AS known_s
    FROM {EXAMS} GROUP BY declaration_id
),
events AS (  -- kind 0: a query row; 1: a declaration filed; 2: an outcome known
    SELECT {keys}, filed_s AS t, 1 AS kind, 1 AS is_decl, 0 AS is_insp, 0 AS is_hit,
           CAST(NULL AS BIGINT) AS hit_t, CAST(NULL AS BIGINT) AS qrow FROM declarations
    UNION ALL
    SELECT {", ".join(f"d.{c}" for c in KEY_COLUMNS.values())}, o.known_s, 2, 0, 1, o.label,
           CASE WHEN o.label = 1 THEN o.known_s END, CAST(NULL AS BIGINT)
    FROM outcomes o JOIN declarations d ON d.declaration_id = o.declaration_id
    UNION ALL
    SELECT {keys}, filed_s, 0, 0, 0, 0, CAST(NULL AS BIGINT), qrow FROM {QUERY}
),
by_key AS (
{unpivot_events}
),
running AS (  -- at a query row: the events before it (it sorts first among its second's, and adds nothing)
    SELECT k, qrow,
           SUM(is_decl) OVER {running} AS decl,
           SUM(is_insp) OVER {running} AS insp,
           SUM(is_hit) OVER {running} AS hits,
           MIN(CASE WHEN is_decl = 1 THEN t END) OVER {running} AS first_seen_s,
           MAX(hit_t) OVER {running} AS last_hit_s
    FROM by_key
),
answers AS (
    SELECT qrow, {", ".join(pivot)}
    FROM running WHERE qrow IS NOT NULL GROUP BY qrow
){sender_ctes}
SELECT q.qrow{", " + answers if answers else ""}{select_senders}
FROM {QUERY} q LEFT JOIN answers a ON a.qrow = q.qrow {join_senders}
ORDER BY q.qrow
"""


def _prepared(frame: pd.DataFrame, time_column: str, time_name: str, columns: Iterable[str]) -> pd.DataFrame:
    """`frame`'s columns as the query reads them: the time as whole epoch seconds, every other column as
    text (NULL where missing or absent)."""
    out = pd.DataFrame({time_name: _seconds(frame[time_column])}, index=frame.index)
    for col in columns:
        out[col] = frame[col].astype("str") if col in frame else pd.Series(None, index=frame.index, dtype="str")
    return out.reset_index(drop=True)


def duckdb_as_of(store: HistoryStore, inspections: pd.DataFrame, query: pd.DataFrame,
                 target: Target | str = Target.HIT) -> pd.DataFrame:  # fmt: skip
    """`HistoryStore.as_of(query)` computed by DuckDB from the store's declarations and the raw inspections
    (index of `query` kept)."""
    import duckdb

    keys = list(KEY_COLUMNS.values())
    tables = {
        STORED: _prepared(store.declarations, "filed_at", "filed_s", ["declaration_id", *keys]),
        EXAMS: _prepared(inspections, "exam_at", "exam_s", ["declaration_id", "result"]),
        QUERY: _prepared(query, "filed_at", "filed_s", ["declaration_id", *keys]).assign(
            qrow=np.arange(len(query), dtype=np.int64)),
    }  # fmt: skip
    sql = as_of_sql([c for c in query.columns if c in keys], POSITIVE_RESULTS[parse_target(target)])
    with duckdb.connect() as con:
        for name, frame in tables.items():
            con.register(name, frame)
        answer = con.execute(sql).fetch_df()
    answer = answer.drop(columns=["qrow"]).astype("float64")
    answer.index = query.index.copy()
    return answer


def spark_as_of(spark: SparkSession, declarations: SparkFrame, inspections: SparkFrame, query: SparkFrame,
                target: Target | str = Target.HIT) -> SparkFrame:  # fmt: skip
    """The same answers computed by Spark from Spark tables (the stored declarations, unique by id; the raw
    inspections; the query rows): one row per query row, its `qrow` (a unique row number) and the
    `h_<entity>_<what>` columns. Nothing is collected to the driver."""
    from pyspark.sql import functions as F

    keys = list(KEY_COLUMNS.values())

    def prepared(frame: SparkFrame, time_column: str, time_name: str, columns: list[str]) -> SparkFrame:
        return frame.select(F.unix_seconds(F.col(time_column)).alias(time_name),
                            *(F.col(c).cast("string").alias(c) if c in frame.columns else F.lit(None).cast("string").alias(c)
                              for c in columns))  # fmt: skip

    prepared(declarations, "filed_at", "filed_s", ["declaration_id", *keys]).createOrReplaceTempView(STORED)
    prepared(inspections, "exam_at", "exam_s", ["declaration_id", "result"]).createOrReplaceTempView(EXAMS)
    rows = prepared(query, "filed_at", "filed_s", ["declaration_id", *keys])
    rows.withColumn("qrow", F.monotonically_increasing_id()).createOrReplaceTempView(QUERY)
    return spark.sql(as_of_sql([c for c in query.columns if c in keys], POSITIVE_RESULTS[parse_target(target)]))
