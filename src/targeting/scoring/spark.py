"""Scoring on Apache Spark: the same logged model, the same outputs as `targeting score`, executors doing
the heavy part (decision 8).

What runs where:
- executors (`mapInPandas`): history as-of and features, LightGBM scores, and per-partition bin counts for
  the drift check, for every declaration; this is the part that grows with the manifest;
- driver: validation of the manifests (the same rules and rejects as the pandas path), the per-mode
  budget decisions on (id, mode, score) triples, the TreeSHAP reasons of the selected rows, and writing.
Every executor's history store holds the past plus the whole batch's key columns (broadcast), so a row's
as-of answer does not depend on which partition it lands in: Spark scores equal the pandas path's.
"""

from __future__ import annotations

import json
import os
import sys
import tempfile
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import TYPE_CHECKING

import numpy as np
import pandas as pd

from targeting.contract.schema import DECLARATIONS

if TYPE_CHECKING:  # pyspark is the optional `spark` extra
    from pyspark.sql import SparkSession

    from targeting.model.scorer import Scorer
    from targeting.scoring.batch import ScoreResult
    from targeting.scoring.decisions import Budget

_COUNTS_COLUMN = "__drift_counts__"


def session(master: str = "local[2]", app: str = "targeting-score") -> SparkSession:
    """A Spark session in UTC (the contract's time zone) with Arrow transfers."""
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
    if "PYSPARK_GATEWAY_PORT" not in os.environ:  # under spark-submit the master comes from spark-submit
        builder = builder.master(master)
    return (builder.appName(app)
            .config("spark.sql.session.timeZone", "UTC")
            .config("spark.sql.execution.arrow.pyspark.enabled", "true")
            .config("spark.ui.enabled", "false")
            .getOrCreate())  # fmt: skip


def _contract_types(pdf: pd.DataFrame) -> pd.DataFrame:
    """Rows as Spark hands them to Python (naive UTC timestamps, dates as objects) -> contract dtypes, by the
    contract's own typing (the driver validated these rows: none is rejected here)."""
    from targeting.contract.io import RawTable
    from targeting.contract.validate import validate_frame

    for c in DECLARATIONS.of_kind("timestamp"):
        if c in pdf and getattr(pdf[c].dt, "tz", None) is None:
            pdf[c] = pdf[c].dt.tz_localize("UTC")
    result = validate_frame(RawTable(pdf, Path("spark-partition"), "spark"), DECLARATIONS)
    if result.n_rejected:
        raise AssertionError(f"a validated row was rejected on an executor: {result.rejects.iloc[0].to_dict()}")
    return result.valid


def _partition_scorer(model_uri: str, history: str, batch_keys: str) -> Callable[[Iterator[pd.DataFrame]], Iterator[pd.DataFrame]]:  # fmt: skip
    def score(batches: Iterator[pd.DataFrame]) -> Iterator[pd.DataFrame]:
        from targeting.model.drift import bin_counts
        from targeting.serving.pyfunc import open_scorer

        os.environ["MLFLOW_ALLOW_PICKLE_DESERIALIZATION"] = "false"
        scorer = open_scorer(model_uri)
        scorer.use_history(history)
        scorer.include_batch(pd.read_parquet(batch_keys))
        reference = scorer.model.meta.reference
        for pdf in batches:
            if len(pdf) == 0:
                continue
            rows = _contract_types(pdf)
            scored = scorer.score_rows(rows)
            counts = bin_counts(reference, scored.matrix, scored.risk_score) if reference else {}
            yield pd.DataFrame({"declaration_id": rows["declaration_id"].astype(str).to_numpy(),
                                "mode": rows["mode"].astype(str).to_numpy(), "risk_score": scored.risk_score,
                                _COUNTS_COLUMN: None})  # fmt: skip
            yield pd.DataFrame({"declaration_id": [None], "mode": [None], "risk_score": [np.nan],
                                _COUNTS_COLUMN: [json.dumps({k: v.tolist() for k, v in counts.items()})]})  # fmt: skip

    return score


def score_spark(spark: SparkSession, rows: pd.DataFrame, scorer: Scorer, model_uri: str,
                budgets: dict[str, Budget], explore: float, seed: int = 0, scored_at: pd.Timestamp | None = None,
                progress: Callable[[str], None] | None = None) -> ScoreResult:  # fmt: skip
    """`batch.score_batch` with the scores computed on Spark executors (same result, row for row)."""
    from targeting.history.store import HISTORY_COLUMNS
    from targeting.model.drift import psi_from_counts
    from targeting.scoring.batch import assemble, attach_reasons
    from targeting.scoring.decisions import rank_and_decide

    say = progress or (lambda _s: None)
    rows = rows.reset_index(drop=True)
    with tempfile.TemporaryDirectory(prefix="targeting-spark-") as tmp:
        manifest, keys = Path(tmp) / "manifest.parquet", Path(tmp) / "batch-keys.parquet"
        rows.to_parquet(manifest)
        rows[[c for c in HISTORY_COLUMNS if c in rows]].to_parquet(keys)
        say(f"history, features and scores on Spark ({len(rows):,} declarations)")
        frame = spark.read.parquet(str(manifest))
        fn = _partition_scorer(model_uri, scorer.history.folder, str(keys))
        schema = f"declaration_id string, mode string, risk_score double, {_COUNTS_COLUMN} string"
        out = frame.mapInPandas(fn, schema=schema).toPandas()
    scored = out[out[_COUNTS_COLUMN].isna()].set_index("declaration_id")
    risk = scored["risk_score"].reindex(rows["declaration_id"].astype(str)).to_numpy()
    if np.isnan(risk).any():
        raise AssertionError("Spark lost rows: every declaration must come back with a score")
    counts: dict[str, np.ndarray] = {}
    for blob in out[_COUNTS_COLUMN].dropna():
        for k, v in json.loads(blob).items():
            counts[k] = counts.get(k, 0) + np.asarray(v)
    say("deciding within each mode's budget")
    frame, order, picked, per_mode = rank_and_decide(rows, risk, budgets, explore, seed)
    say(f"explaining {len(picked):,} selected declarations (TreeSHAP, driver)")
    scorer.include_batch(rows)
    exp = scorer.explain(scorer.score_rows(rows.iloc[order[picked]]))
    attach_reasons(frame, picked, exp)
    reference = scorer.model.meta.reference
    drift = psi_from_counts(reference, counts) if reference and counts else None
    return assemble(frame, order, picked, exp, drift, model_uri, scored_at, budgets, explore, per_mode)


def write_partitioned(spark: SparkSession, scores: pd.DataFrame, folder: Path) -> Path:
    """`scores` as a Parquet dataset partitioned by mode (folder/mode=SEA/...), written by Spark."""
    df = spark.createDataFrame(scores.astype({"risk_rank": "int64"}))
    df.write.mode("overwrite").partitionBy("mode").parquet(str(folder))
    return folder
