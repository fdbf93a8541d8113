"""Scoring on Apache Spark: the same logged model, the same outputs as `targeting score`, executors doing
the heavy part (decision 8).

What runs where:
- Spark SQL: the batch's as-of answers, by joining its key values to the history's state (per key value,
  saved beside the history by `targeting history state`) and adding the batch's own earlier rows
  (`history/relational.py`); ids already stored, by a join with the history's declarations;
- executors (`mapInPandas`): features, LightGBM scores and per-partition bin counts for the drift check,
  for rows that arrive with their answers: a task loads the model, never the history;
- driver: validation of the manifests (the same rules and rejects as the pandas path), the per-mode
  budget decisions on (row, score) pairs, the TreeSHAP reasons of the selected rows (their answers fetched
  from Spark), and writing.
The batch reaches Spark from the driver's memory and the history from its own folder: no path the
executors read is a driver-local temporary file.
"""

from __future__ import annotations

import json
import os
import sys
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import TYPE_CHECKING

import numpy as np
import pandas as pd

from targeting.contract.schema import DECLARATIONS

if TYPE_CHECKING:  # pyspark is the optional `spark` extra
    from pyspark.sql import DataFrame as SparkFrame
    from pyspark.sql import SparkSession

    from targeting.model.scorer import Scorer
    from targeting.scoring.batch import ScoreResult
    from targeting.scoring.decisions import Budget

_COUNTS_COLUMN = "__drift_counts__"
_ROW = "qrow"  # the batch row's position, as the as-of query numbers its rows


def session(master: str = "local[2]", app: str = "targeting-score", conf: dict[str, str] | None = None) -> SparkSession:
    """A Spark session in UTC (the contract's time zone) with Arrow transfers (and `conf`, e.g. an event log,
    when this call starts it)."""
    import warnings

    from pyspark.sql import SparkSession

    # pyspark 4.3 warns that it does not fully support pandas 3; the conversions used here are tested
    warnings.filterwarnings(
        "ignore", message="PySpark does not yet fully support pandas", category=FutureWarning
    )

    os.environ.setdefault("SPARK_LOCAL_IP", "127.0.0.1")
    # Python workers run this interpreter (the project's venv), not whatever `python3` is on PATH
    os.environ.setdefault("PYSPARK_PYTHON", sys.executable)
    os.environ.setdefault("PYSPARK_DRIVER_PYTHON", sys.executable)
    builder = SparkSession.builder
    if "PYSPARK_GATEWAY_PORT" not in os.environ:  # under spark-submit the master and memory come from spark-submit
        from targeting.config import SPARK_LOCAL_DRIVER_MEMORY

        # in local mode the driver's JVM runs the executors too: Spark's 1g default is too small to join
        builder = builder.master(master).config("spark.driver.memory", SPARK_LOCAL_DRIVER_MEMORY)
    for key, value in (conf or {}).items():
        builder = builder.config(key, value)
    return (builder.appName(app)
            .config("spark.sql.session.timeZone", "UTC")
            .config("spark.sql.execution.arrow.pyspark.enabled", "true")
            .config("spark.ui.enabled", "false")
            .getOrCreate())  # fmt: skip


def _contract_types(pdf: pd.DataFrame) -> pd.DataFrame:
    """Rows as Spark hands them to Python -> contract dtypes (the driver validated them), with the as-of
    answers (`h_*`) and the row number kept beside them."""
    from targeting.contract.from_spark import contract_typed

    extra = [c for c in pdf.columns if c.startswith("h_") or c == _ROW]
    rows = contract_typed(pdf.drop(columns=extra), DECLARATIONS)
    return pd.concat([rows, pdf[extra].reset_index(drop=True).astype("float64").astype({_ROW: "int64"})], axis=1)


def _partition_scorer(model_uri: str) -> Callable[[Iterator[pd.DataFrame]], Iterator[pd.DataFrame]]:
    """Executors score rows that carry their as-of answers: the model is all they load (no history)."""

    def score(batches: Iterator[pd.DataFrame]) -> Iterator[pd.DataFrame]:
        from targeting.model.drift import bin_counts
        from targeting.serving.pyfunc import open_scorer

        os.environ["MLFLOW_ALLOW_PICKLE_DESERIALIZATION"] = "false"
        scorer = open_scorer(model_uri)
        reference = scorer.model.meta.reference
        for pdf in batches:
            if len(pdf) == 0:
                continue
            rows = _contract_types(pdf)
            scored = scorer.score_annotated(rows)
            counts = bin_counts(reference, scored.matrix, scored.risk_score) if reference else {}
            yield pd.DataFrame({_ROW: rows[_ROW].to_numpy(), "risk_score": scored.risk_score,
                                _COUNTS_COLUMN: None})  # fmt: skip
            yield pd.DataFrame({_ROW: [-1], "risk_score": [np.nan],
                                _COUNTS_COLUMN: [json.dumps({k: v.tolist() for k, v in counts.items()})]})  # fmt: skip

    return score


def _spark_rows(spark: SparkSession, rows: pd.DataFrame) -> SparkFrame:
    """The batch as a Spark table numbered by position (`qrow`), sent from the driver's memory: no file the
    executors would have to find."""
    import pyarrow as pa
    from pyspark import StorageLevel

    table = pa.Table.from_pandas(rows.assign(**{_ROW: np.arange(len(rows), dtype=np.int64)}), preserve_index=False)
    # held by the executors once: the as-of query reads the batch in many places, and a plan that carried
    # the rows themselves would copy them into each
    frame = spark.createDataFrame(table).repartition(_partitions(spark, len(rows)))
    frame = frame.persist(StorageLevel.MEMORY_AND_DISK)
    frame.count()
    return frame


def annotate_spark(spark: SparkSession, query: SparkFrame, history: str, target: str,
                   say: Callable[[str], None]) -> SparkFrame:  # fmt: skip
    """The batch's rows with their as-of answers, computed on Spark: joined to the history's state (saved
    beside the history, or computed now) plus the batch's own earlier rows; rows filed before the
    history's last event are answered from the whole history instead (a day scored again)."""
    from pyspark.sql import functions as F

    from targeting.history.relational import spark_as_of, spark_state_as_of
    from targeting.history.spark import computed_state, history_frames, saved_state

    state = saved_state(spark, history, target) if history else None
    if state is None:
        say("the history's state (no saved state covers it: `targeting history state` saves one)")
        state = computed_state(spark, history or None, target)
    earliest = query.agg(F.min(F.unix_seconds("filed_at")).alias("t")).first()["t"]
    if earliest is not None and earliest > state.cutoff:
        say("as-of answers: the batch joined to the history's state")
        answers = spark_state_as_of(spark, state, query)
    else:
        say("as-of answers from the whole history (the batch has rows filed before its last event)")
        declarations, outcomes = history_frames(spark, history or None)
        answers = spark_as_of(spark, declarations, outcomes, query, target)
    return query.join(answers, on=_ROW, how="left")


def score_spark(spark: SparkSession, rows: pd.DataFrame, scorer: Scorer, model_uri: str,
                budgets: dict[str, Budget], explore: float, seed: int = 0, scored_at: pd.Timestamp | None = None,
                progress: Callable[[str], None] | None = None) -> ScoreResult:  # fmt: skip
    """`batch.score_batch` with the as-of answers and scores computed on Spark (same result, row for row):
    the driver receives (row, score) pairs and the selected rows' answers, and never reads the history."""
    from pyspark import StorageLevel

    from targeting.model.drift import psi_from_counts
    from targeting.scoring.batch import assemble, attach_reasons
    from targeting.scoring.decisions import rank_and_decide

    say = progress or (lambda _s: None)
    rows = rows.reset_index(drop=True)
    query = _spark_rows(spark, rows)
    cached = [query]
    try:
        annotated = annotate_spark(spark, query, scorer.history.folder, scorer.model.meta.target, say)
        # a task loads the model once: a few large partitions, not the 200 of a shuffle
        annotated = annotated.repartition(_partitions(spark, len(rows))).persist(StorageLevel.MEMORY_AND_DISK)
        cached.append(annotated)
        say(f"features and scores on Spark ({len(rows):,} declarations)")
        schema = f"{_ROW} long, risk_score double, {_COUNTS_COLUMN} string"
        out = annotated.mapInPandas(_partition_scorer(model_uri), schema=schema).toPandas()
        scored = out[out[_COUNTS_COLUMN].isna()].set_index(_ROW)
        risk = scored["risk_score"].reindex(np.arange(len(rows))).to_numpy()
        if np.isnan(risk).any():
            raise AssertionError("Spark lost rows: every declaration must come back with a score")
        counts: dict[str, np.ndarray] = {}
        for blob in out[_COUNTS_COLUMN].dropna():
            for k, v in json.loads(blob).items():
                counts[k] = counts.get(k, 0) + np.asarray(v)
        say("deciding within each mode's budget")
        frame, order, picked, per_mode = rank_and_decide(rows, risk, budgets, explore, seed)
        say(f"explaining {len(picked):,} selected declarations (TreeSHAP, driver, their answers from Spark)")
        chosen = order[picked]
        answers = _selected_answers(spark, annotated, chosen)
        exp = scorer.explain(scorer.score_annotated(pd.concat([rows.iloc[chosen].reset_index(drop=True),
                                                                answers.reset_index(drop=True)], axis=1)))  # fmt: skip
    finally:
        for table in cached:
            table.unpersist()
    attach_reasons(frame, picked, exp)
    reference = scorer.model.meta.reference
    drift = psi_from_counts(reference, counts) if reference and counts else None
    return assemble(frame, order, picked, exp, drift, model_uri, scored_at, budgets, explore, per_mode)


def _partitions(spark: SparkSession, n_rows: int) -> int:
    """Partitions to score `n_rows` in: every core busy, none much beyond `SCORING_PARTITION_ROWS` rows."""
    from targeting.config import SCORING_PARTITION_ROWS

    return max(spark.sparkContext.defaultParallelism, -(-n_rows // SCORING_PARTITION_ROWS))


def _selected_answers(spark: SparkSession, annotated: SparkFrame, positions: np.ndarray) -> pd.DataFrame:
    """The as-of answers (`h_*`) of the rows at these positions, in this order (a broadcast filter)."""
    from pyspark.sql import functions as F

    wanted = spark.createDataFrame(pd.DataFrame({_ROW: positions.astype(np.int64)}))
    columns = [c for c in annotated.columns if c.startswith("h_")]
    got = annotated.join(F.broadcast(wanted), on=_ROW, how="inner").select(_ROW, *columns).toPandas()
    return got.set_index(_ROW).loc[positions, columns].astype("float64")


def stored_conflicts(spark: SparkSession, history: str, rows: pd.DataFrame) -> dict[int, str]:
    """`HistorySource.conflicts` with the stored rows of the batch's ids found by a Spark join (only those
    rows, usually none, reach the driver)."""
    from targeting.contract.from_spark import utc_timestamps
    from targeting.contract.schema import DECLARATION_ID
    from targeting.history.source import content_conflicts
    from targeting.history.spark import history_frames

    if not history:
        return {}
    declarations, _ = history_frames(spark, history)
    ids = spark.createDataFrame(pd.DataFrame({DECLARATION_ID: rows[DECLARATION_ID].astype(str).unique()}))
    stored = declarations.join(ids, on=DECLARATION_ID, how="left_semi").toPandas()
    if not len(stored):
        return {}
    utc_timestamps(stored, DECLARATIONS)  # only the columns as-of answers use: not a whole contract row
    candidate = rows[DECLARATION_ID].astype(str).isin(stored[DECLARATION_ID].astype(str)).to_numpy()
    return content_conflicts(rows, candidate, stored)


def write_partitioned(spark: SparkSession, scores: pd.DataFrame, folder: Path) -> Path:
    """`scores` as a Parquet dataset partitioned by mode (folder/mode=SEA/...), written by Spark."""
    df = spark.createDataFrame(scores.astype({"risk_rank": "int64"}))
    df.write.mode("overwrite").partitionBy("mode").parquet(str(folder))
    return folder
