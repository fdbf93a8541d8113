"""`targeting train --engine spark`: the training rows and their as-of features built on Spark.

Spark reads the history folder, finds the inspected declarations of the training and validation windows
and a uniform sample of the training window (the drift reference), and answers their as-of questions
with the relational query (`history/relational.py`) over the whole history. Only those rows, their
outcomes and their answers reach the driver, where LightGBM is fitted as on one machine: the driver holds
the labelled rows, not the history.
"""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING

import pandas as pd

from targeting.config import REFERENCE_ROWS, Target
from targeting.contract.from_spark import contract_typed
from targeting.contract.schema import DECLARATIONS, INSPECTIONS, Table
from targeting.history.relational import spark_as_of
from targeting.history.spark import history_frames
from targeting.history.store import HISTORY_COLUMNS
from targeting.training.splits import TimeSplit, Window
from targeting.training.train import TrainingData

if TYPE_CHECKING:
    from pyspark.sql import Column, SparkSession


def filing_bounds(spark: SparkSession, history: Path) -> pd.Series:
    """The first and last filing time of the history (what `time_split` needs to place default windows)."""
    from pyspark.sql import functions as F

    declarations, _ = history_frames(spark, history)
    row = declarations.agg(F.unix_micros(F.min("filed_at")).alias("a"), F.unix_micros(F.max("filed_at")).alias("b")).first()
    values = [v for v in (row["a"], row["b"]) if v is not None]
    return pd.Series(pd.to_datetime(values, unit="us", utc=True), dtype="datetime64[us, UTC]")


def _within(window: Window, column: str = "filed_at") -> Column:
    from pyspark.sql import functions as F

    condition = F.lit(True)
    if window.start is not None:
        condition = condition & (F.col(column) >= F.lit(window.start.to_pydatetime()))
    if window.end is not None:
        condition = condition & (F.col(column) < F.lit(window.end.to_pydatetime()))
    return condition


def spark_training_data(spark: SparkSession, history: Path, split: TimeSplit, target: Target | str,
                        seed: int = 0) -> TrainingData:  # fmt: skip
    """The training data of a time split, built on Spark (see the module docstring)."""
    from pyspark import StorageLevel
    from pyspark.sql import functions as F

    full, outcomes = history_frames(spark, history, columns=None)
    keys = full.select(*[c for c in HISTORY_COLUMNS if c in full.columns])  # what the as-of query reads
    span = Window(split.train.start, split.valid.end)
    inspected = outcomes.select("declaration_id").distinct()
    labelled = full.filter(_within(span)).join(inspected, on="declaration_id", how="left_semi")
    in_train = full.filter(_within(split.train))
    n_train = in_train.count()
    fraction = min(1.0, 1.5 * REFERENCE_ROWS / n_train) if n_train else 0.0
    # held once: `limit` picks its rows anew each time a plan is run, and the pool is read twice
    pool = in_train.sample(fraction=fraction, seed=seed).limit(2 * REFERENCE_ROWS).persist(StorageLevel.MEMORY_AND_DISK)
    rows = labelled.unionByName(pool).dropDuplicates(["declaration_id"])
    rows = rows.withColumn("qrow", F.monotonically_increasing_id()).persist(StorageLevel.MEMORY_AND_DISK)
    try:
        answers = spark_as_of(spark, keys, outcomes, rows, target)
        answered = rows.select("qrow", "declaration_id").join(answers, on="qrow").drop("qrow").toPandas()
        collected = _typed(rows.drop("qrow").toPandas(), DECLARATIONS)
        pool_ids = set(pool.select("declaration_id").toPandas()["declaration_id"].astype(str))
        exams = _typed(outcomes.join(labelled.select("declaration_id"), on="declaration_id", how="left_semi")
                       .toPandas(), INSPECTIONS)  # fmt: skip
    finally:
        rows.unpersist()
        pool.unpersist()
    collected = collected.sort_values(["filed_at", "declaration_id"], kind="stable").reset_index(drop=True)
    answered = answered.set_index(answered["declaration_id"].astype(str)).drop(columns=["declaration_id"])
    reference_pool = collected[collected["declaration_id"].astype(str).isin(pool_ids)]
    return TrainingData(collected, exams, answers=answered.astype("float64"), reference_pool=reference_pool)


def _typed(frame: pd.DataFrame, table: Table) -> pd.DataFrame:
    return contract_typed(frame, table) if len(frame) else table.empty_frame()
