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
from dataclasses import dataclass
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
STATE_KEYS, STATE_PAIRS = "state_keys", "state_pairs"
#: the cutoff of a history without events: every query row is after it
_NO_EVENTS = -(2**62)
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


def _events(keys: list[str], positive: str, stored: bool, with_query: bool) -> str:
    """CTEs `declarations`, `outcomes` and `events` (kind 0: a query row; 1: anything that counts)."""
    key_list = ", ".join(keys)
    if stored:  # a repeated id counts once: the stored row (ids are unique there), else the query's first
        declarations = f"""SELECT declaration_id, filed_s, {key_list} FROM {STORED}
    UNION ALL
    SELECT declaration_id, filed_s, {key_list} FROM query_first
    WHERE declaration_id NOT IN (SELECT declaration_id FROM {STORED})""" if with_query else \
            f"SELECT declaration_id, filed_s, {key_list} FROM {STORED}"
        outcomes = f""",
outcomes AS (  -- one per inspected declaration: a hit if any exam found the target, known at the first that did
    SELECT declaration_id,
           MAX(CASE WHEN result IN ({positive}) THEN 1 ELSE 0 END) AS label,
           COALESCE(MIN(CASE WHEN result IN ({positive}) THEN exam_s END), MAX(exam_s)) AS known_s
    FROM {EXAMS} GROUP BY declaration_id
)"""
        outcome_events = f"""
    UNION ALL
    SELECT {", ".join(f"d.{c}" for c in keys)}, o.known_s, 1, 0, 1, o.label, CAST(NULL AS BIGINT),
           CASE WHEN o.label = 1 THEN o.known_s END, CAST(NULL AS BIGINT)
    FROM outcomes o JOIN declarations d ON d.declaration_id = o.declaration_id"""
    else:  # the query's own declarations only (the past comes from the state)
        declarations, outcomes, outcome_events = f"SELECT declaration_id, filed_s, {key_list} FROM query_first", "", ""
    query_first = f"""query_first AS (  -- a query's repeated id counts once: its first row
    SELECT * FROM (SELECT *, ROW_NUMBER() OVER (PARTITION BY declaration_id ORDER BY qrow) AS copy FROM {QUERY}) n
    WHERE copy = 1
),
""" if with_query else ""
    query_events = f"""
    UNION ALL
    SELECT {key_list}, filed_s, 0, 0, 0, 0, CAST(NULL AS BIGINT), CAST(NULL AS BIGINT), qrow FROM {QUERY}""" \
        if with_query else ""
    return f"""{query_first}declarations AS (
    {declarations}
){outcomes},
events AS (  -- what each event adds: declarations, outcomes known, hits, its first-seen and hit times
    SELECT {key_list}, filed_s AS t, 1 AS kind, 1 AS decl, 0 AS insp, 0 AS hits, filed_s AS first_s,
           CAST(NULL AS BIGINT) AS hit_s, CAST(NULL AS BIGINT) AS qrow FROM declarations{outcome_events}{query_events}
)"""


def _by_key(names: list[tuple[str, str]], state_cutoff: int | None) -> str:
    """CTE `by_key`: the events once per key they name, only for values some query row names (the others
    cannot change an answer); with a state, its rows as one event each at the state's cutoff."""
    columns = "t, kind, decl, insp, hits, first_s, hit_s, qrow"
    parts = [f"    SELECT '{name}' AS k, {col} AS v, {columns} FROM events WHERE {col} IN (SELECT {col} FROM {QUERY})"
             for name, col in names]  # fmt: skip
    if state_cutoff is not None:
        parts += [f"    SELECT k, v, CAST({state_cutoff} AS BIGINT), 1, decl, insp, hits, first_seen_s, last_hit_s, "
                  f"CAST(NULL AS BIGINT) FROM {STATE_KEYS} WHERE k = '{name}' AND v IN (SELECT {col} FROM {QUERY})"
                  for name, col in names]  # fmt: skip
    return "by_key AS (\n" + "\n    UNION ALL\n".join(parts) + "\n)"


def _answers(names: list[tuple[str, str]], pairs: str | None) -> str:
    """The CTEs from `by_key` (and the `pairs` body: address `v`, first time `t`) to the final SELECT."""
    running = "(PARTITION BY k, v ORDER BY t, kind, qrow ROWS BETWEEN UNBOUNDED PRECEDING AND CURRENT ROW)"
    pivot = []
    for name, _col in names:  # the running columns are named as the answer's parts
        pivot += [f"CAST(MAX(CASE WHEN k = '{name}' THEN {part} END) AS DOUBLE) AS h_{name}_{part}"
                  for part in answer_parts(name)]  # fmt: skip
    sender_ctes = f""",
pairs AS (  -- each (address, sender) pair's first declaration, at the addresses some query row names
    {pairs}
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
)""" if pairs else ""  # fmt: skip
    select_senders = ", s.h_address_new_senders_30d" if pairs else ""
    join_senders = "LEFT JOIN new_senders s ON s.qrow = q.qrow" if pairs else ""
    answers = ", ".join(f"a.h_{name}_{part}" for name, _col in names for part in answer_parts(name))
    return f"""running AS (  -- at a query row: the events before it (it sorts first among its second's, and adds nothing)
    SELECT k, qrow,
           SUM(decl) OVER {running} AS decl,
           SUM(insp) OVER {running} AS insp,
           SUM(hits) OVER {running} AS hits,
           MIN(first_s) OVER {running} AS first_seen_s,
           MAX(hit_s) OVER {running} AS last_hit_s
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


def _names(query_columns: Iterable[str]) -> tuple[list[tuple[str, str]], bool]:
    present = set(query_columns)
    return [(n, c) for n, c in KEY_COLUMNS.items() if c in present], _ADDRESS in present and _SENDER in present


def _pairs_of(source: str) -> str:
    return (f"SELECT {_ADDRESS} AS address, {_SENDER} AS sender, MIN(filed_s) AS t FROM {source} "
            f"WHERE {_ADDRESS} IS NOT NULL AND {_SENDER} IS NOT NULL GROUP BY {_ADDRESS}, {_SENDER}")  # fmt: skip


def as_of_sql(query_columns: Iterable[str], positive_results: Iterable[str]) -> str:
    """The as-of query from the whole history (`STORED`, `EXAMS`) for a query table with these columns;
    `positive_results`: the exam results that count as a hit for the target. Exact for query rows at any
    time (a stored row asked again is answered with what was known before it). Every key column must be
    present in `STORED` and `QUERY` (NULL where absent)."""
    names, senders = _names(query_columns)
    keys = list(KEY_COLUMNS.values())
    pairs = (f"SELECT address AS v, t FROM ({_pairs_of('declarations')}) p "
             f"WHERE address IN (SELECT {_ADDRESS} FROM {QUERY})") if senders else None  # fmt: skip
    return f"WITH {_events(keys, _positive(positive_results), True, True)},\n{_by_key(names, None)},\n" \
           f"{_answers(names, pairs)}"


def state_keys_sql(positive_results: Iterable[str]) -> str:
    """The history's state per key value (`k` the entity, `v` the value): declarations, outcomes known and
    hits, first-seen and last-hit times, summed over the whole history (`STORED`, `EXAMS`): the same
    events `as_of_sql` runs over, aggregated instead of run."""
    keys = list(KEY_COLUMNS.values())
    unpivot = "\n    UNION ALL\n".join(
        f"    SELECT '{name}' AS k, {col} AS v, decl, insp, hits, first_s, hit_s FROM events WHERE {col} IS NOT NULL"
        for name, col in KEY_COLUMNS.items())  # fmt: skip
    return f"""WITH {_events(keys, _positive(positive_results), True, False)},
by_key AS (
{unpivot}
)
SELECT k, v, SUM(decl) AS decl, SUM(insp) AS insp, SUM(hits) AS hits, MIN(first_s) AS first_seen_s,
       MAX(hit_s) AS last_hit_s
FROM by_key GROUP BY k, v
"""


def state_pairs_sql() -> str:
    """The history's (address, sender) pairs and the time each was first declared."""
    return _pairs_of(STORED)


def state_cutoff_sql(positive_results: Iterable[str]) -> str:
    """The time of the history's last event (a declaration filed or an outcome known): the state answers
    exactly for query rows filed after it."""
    keys = list(KEY_COLUMNS.values())
    return f"WITH {_events(keys, _positive(positive_results), True, False)}\nSELECT MAX(t) AS cutoff FROM events"


def state_as_of_sql(query_columns: Iterable[str], cutoff: int) -> str:
    """The as-of query from the history's state (`STATE_KEYS`, `STATE_PAIRS`, as of `cutoff`) and the
    query's own declarations (a batch's earlier rows count for its later ones). Equal to `as_of_sql` for
    query rows filed after `cutoff` whose ids are not stored."""
    names, senders = _names(query_columns)
    keys = list(KEY_COLUMNS.values())
    pairs = (f"""SELECT address AS v, MIN(t) AS t FROM (
        SELECT address, sender, t FROM {STATE_PAIRS} WHERE address IN (SELECT {_ADDRESS} FROM {QUERY})
        UNION ALL {_pairs_of('query_first')}
    ) p GROUP BY address, sender""") if senders else None  # fmt: skip
    return f"WITH {_events(keys, '', False, True)},\n{_by_key(names, cutoff)},\n{_answers(names, pairs)}"


def _positive(results: Iterable[str]) -> str:
    return ", ".join(f"'{r}'" for r in results)


def _prepared(frame: pd.DataFrame, time_column: str, time_name: str, columns: Iterable[str]) -> pd.DataFrame:
    """`frame`'s columns as the query reads them: the time as whole epoch seconds, every other column as
    text (NULL where missing or absent)."""
    out = pd.DataFrame({time_name: _seconds(frame[time_column])}, index=frame.index)
    for col in columns:
        out[col] = frame[col].astype("str") if col in frame else pd.Series(None, index=frame.index, dtype="str")
    return out.reset_index(drop=True)


@dataclass
class HistoryState:
    """The history's state as tables: per key value (`STATE_KEYS`), the (address, sender) pairs
    (`STATE_PAIRS`), and the time of the last event it covers."""

    keys: pd.DataFrame
    pairs: pd.DataFrame
    cutoff: int


def _history_tables(declarations: pd.DataFrame, inspections: pd.DataFrame) -> dict[str, pd.DataFrame]:
    keys = list(KEY_COLUMNS.values())
    return {STORED: _prepared(declarations, "filed_at", "filed_s", ["declaration_id", *keys]),
            EXAMS: _prepared(inspections, "exam_at", "exam_s", ["declaration_id", "result"])}  # fmt: skip


def _query_table(query: pd.DataFrame) -> pd.DataFrame:
    prepared = _prepared(query, "filed_at", "filed_s", ["declaration_id", *KEY_COLUMNS.values()])
    return prepared.assign(qrow=np.arange(len(query), dtype=np.int64))


def _duckdb(tables: dict[str, pd.DataFrame], sql: str) -> pd.DataFrame:
    import duckdb

    with duckdb.connect() as con:
        for name, frame in tables.items():
            con.register(name, frame)
        return con.execute(sql).fetch_df()


def _answer(answer: pd.DataFrame, query: pd.DataFrame) -> pd.DataFrame:
    answer = answer.drop(columns=["qrow"]).astype("float64")
    answer.index = query.index.copy()
    return answer


def duckdb_as_of(store: HistoryStore, inspections: pd.DataFrame, query: pd.DataFrame,
                 target: Target | str = Target.HIT) -> pd.DataFrame:  # fmt: skip
    """`HistoryStore.as_of(query)` computed by DuckDB from the store's declarations and the raw inspections
    (index of `query` kept)."""
    tables = {**_history_tables(store.declarations, inspections), QUERY: _query_table(query)}
    sql = as_of_sql([c for c in query.columns if c in KEY_COLUMNS.values()], POSITIVE_RESULTS[parse_target(target)])
    return _answer(_duckdb(tables, sql), query)


def duckdb_state(declarations: pd.DataFrame, inspections: pd.DataFrame,
                 target: Target | str = Target.HIT) -> HistoryState:  # fmt: skip
    """The state of a history (its declarations, unique by id, and raw inspections), computed by DuckDB."""
    positive = POSITIVE_RESULTS[parse_target(target)]
    tables = _history_tables(declarations, inspections)
    cutoff = _duckdb(tables, state_cutoff_sql(positive))["cutoff"].iloc[0]
    return HistoryState(_duckdb(tables, state_keys_sql(positive)), _duckdb(tables, state_pairs_sql()),
                        int(cutoff) if pd.notna(cutoff) else _NO_EVENTS)  # fmt: skip


def duckdb_state_as_of(state: HistoryState, query: pd.DataFrame) -> pd.DataFrame:
    """The as-of answers of query rows filed after the state's cutoff, from the state and the query's own
    rows (index of `query` kept)."""
    tables = {STATE_KEYS: state.keys, STATE_PAIRS: state.pairs, QUERY: _query_table(query)}
    sql = state_as_of_sql([c for c in query.columns if c in KEY_COLUMNS.values()], state.cutoff)
    return _answer(_duckdb(tables, sql), query)


@dataclass
class SparkState:
    """`HistoryState` as Spark tables (nothing on the driver but the cutoff)."""

    keys: SparkFrame
    pairs: SparkFrame
    cutoff: int


def _spark_prepared(frame: SparkFrame, time_column: str, time_name: str, columns: list[str],
                    numbered: bool = False) -> SparkFrame:  # fmt: skip
    """`_prepared` on Spark (with `numbered`, the frame's `qrow` kept as a long)."""
    from pyspark.sql import functions as F

    number = [F.col("qrow").cast("long").alias("qrow")] if numbered else []
    return frame.select(*number, F.unix_seconds(F.col(time_column)).alias(time_name),
                        *(F.col(c).cast("string").alias(c) if c in frame.columns else F.lit(None).cast("string").alias(c)
                          for c in columns))  # fmt: skip


def _spark_history(declarations: SparkFrame, inspections: SparkFrame) -> None:
    keys = list(KEY_COLUMNS.values())
    _spark_prepared(declarations, "filed_at", "filed_s", ["declaration_id", *keys]).createOrReplaceTempView(STORED)
    _spark_prepared(inspections, "exam_at", "exam_s", ["declaration_id", "result"]).createOrReplaceTempView(EXAMS)


def _spark_query(query: SparkFrame) -> list[str]:
    """Registers `QUERY` (its `qrow` kept) and returns the key columns it names."""
    keys = list(KEY_COLUMNS.values())
    _spark_prepared(query, "filed_at", "filed_s", ["declaration_id", *keys], numbered=True).createOrReplaceTempView(QUERY)
    return [c for c in query.columns if c in keys]


def spark_as_of(spark: SparkSession, declarations: SparkFrame, inspections: SparkFrame, query: SparkFrame,
                target: Target | str = Target.HIT) -> SparkFrame:  # fmt: skip
    """The same answers computed by Spark from Spark tables (the stored declarations, unique by id; the raw
    inspections; the query rows with a unique row number `qrow`): one row per query row, its `qrow` and the
    `h_<entity>_<what>` columns. Nothing is collected to the driver."""
    _spark_history(declarations, inspections)
    columns = _spark_query(query)
    return spark.sql(as_of_sql(columns, POSITIVE_RESULTS[parse_target(target)]))


def spark_state(spark: SparkSession, declarations: SparkFrame, inspections: SparkFrame,
                target: Target | str = Target.HIT) -> SparkState:  # fmt: skip
    """The state of a history computed by Spark (only its cutoff, one number, reaches the driver)."""
    positive = POSITIVE_RESULTS[parse_target(target)]
    _spark_history(declarations, inspections)
    cutoff = spark.sql(state_cutoff_sql(positive)).first()["cutoff"]
    return SparkState(spark.sql(state_keys_sql(positive)), spark.sql(state_pairs_sql()),
                      int(cutoff) if cutoff is not None else _NO_EVENTS)  # fmt: skip


def spark_state_as_of(spark: SparkSession, state: SparkState, query: SparkFrame) -> SparkFrame:
    """`duckdb_state_as_of` on Spark: the query rows (with `qrow`) joined to the state's tables."""
    state.keys.createOrReplaceTempView(STATE_KEYS)
    state.pairs.createOrReplaceTempView(STATE_PAIRS)
    return spark.sql(state_as_of_sql(_spark_query(query), state.cutoff))
