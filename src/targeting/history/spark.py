"""A history folder on Spark: its committed tables read by the executors, and its state (`relational.py`)
built, saved beside the history and read back, so that scoring joins a batch to the state instead of
loading the history anywhere.

```
HISTORY/as_of_state/<target>/
  state.json          what the state covers (the committed files, as the saved index records them) and its cutoff
  keys/k=<entity>/    per key value: declarations, outcomes known, hits, first-seen and last-hit times (Parquet)
  pairs/              each (address, sender) pair and when it was first declared (Parquet)
```
Every path handed to Spark is the history folder's own (on a cluster: the shared storage every executor
reads), never a driver-local temporary folder. `state.json` is written last, by a rename: a state whose
write was interrupted is not found, and is rebuilt.
"""

from __future__ import annotations

import json
import os
import shutil
import uuid
from pathlib import Path
from typing import TYPE_CHECKING

import numpy as np
import pandas as pd

from targeting.contract.schema import DECLARATIONS, INSPECTIONS
from targeting.history.folder import fingerprint
from targeting.history.layout import committed_files
from targeting.history.relational import SparkState, spark_state
from targeting.history.store import HISTORY_COLUMNS

if TYPE_CHECKING:
    from pyspark.sql import DataFrame as SparkFrame
    from pyspark.sql import SparkSession

STATE_FOLDER = "as_of_state"
PARTITION_COLUMN = "day"
STATE_FORMAT = 1


def state_folder(history: str | Path, target: str) -> Path:
    return Path(history) / STATE_FOLDER / str(target)


def _empty(spark: SparkSession, table: str, columns: list[str] | None = None) -> SparkFrame:
    import pyarrow as pa

    frame = (DECLARATIONS if table == "declarations" else INSPECTIONS).empty_frame()
    frame = frame[[c for c in (columns or frame.columns) if c in frame]]
    return spark.createDataFrame(pa.Table.from_pandas(frame, preserve_index=False))  # typed by its Arrow schema


def history_frames(spark: SparkSession, history: str | Path | None,
                   columns: tuple[str, ...] | None = HISTORY_COLUMNS) -> tuple[SparkFrame, SparkFrame]:  # fmt: skip
    """The committed declarations (these columns, or all with None; by default those as-of answers use)
    and outcomes of a history folder, read by the executors from the folder's files (empty tables for no
    folder)."""
    tables = []
    for table, wanted in (("declarations", columns), ("outcomes", None)):
        files = [str(Path(p).resolve()) for p in committed_files(history, table)] if history else []
        if not files:
            tables.append(_empty(spark, table, list(wanted) if wanted else None))
            continue
        frame = spark.read.parquet(*files)
        if PARTITION_COLUMN in frame.columns:  # the folder's day, not a contract column
            frame = frame.drop(PARTITION_COLUMN)
        if wanted:
            frame = frame.select(*[c for c in wanted if c in frame.columns])
        tables.append(frame)
    declarations, outcomes = tables
    # the partitioned layout holds each id once (`history add` refuses repeats); a single-file history may not
    return declarations.dropDuplicates(["declaration_id"]), outcomes


class SparkFilings:
    """The filing times of stored declarations, looked up by a Spark join of the ids asked for with the
    history's declarations (`history add --engine spark`: the driver never reads every stored id)."""

    def __init__(self, spark: SparkSession, history: Path) -> None:
        self.spark, self.history = spark, history

    def filed_at(self, ids: pd.Series) -> pd.Series:
        from pyspark.sql import functions as F

        out = pd.Series(pd.NaT, index=ids.index, dtype="datetime64[us, UTC]")
        if not len(ids) or not committed_files(self.history, "declarations"):
            return out
        declarations, _ = history_frames(self.spark, self.history)
        asked = self.spark.createDataFrame(pd.DataFrame({"declaration_id": ids.astype(str).unique()}))
        found = (declarations.join(F.broadcast(asked), on="declaration_id", how="left_semi")
                 .select("declaration_id", F.unix_micros("filed_at").alias("filed_us")).toPandas())  # fmt: skip
        times = pd.Series(found["filed_us"].to_numpy(dtype="int64"), index=found["declaration_id"].astype(str).to_numpy())
        micros = ids.astype(str).map(times).to_numpy(dtype="float64")  # NaN where not stored
        known = ~np.isnan(micros)
        out[known] = pd.to_datetime(micros[known].astype("int64"), unit="us", utc=True).astype("datetime64[us, UTC]")
        return out


def saved_state(spark: SparkSession, history: str | Path, target: str) -> SparkState | None:
    """The state saved beside the history, if it covers exactly what the history has committed now."""
    folder = state_folder(history, target)
    try:
        meta = json.loads((folder / "state.json").read_text())
    except (OSError, ValueError):
        return None
    if meta.get("format") != STATE_FORMAT or meta.get("fingerprint") != fingerprint(history, target):
        return None
    return SparkState(spark.read.parquet(str(folder.resolve() / "keys")),
                      spark.read.parquet(str(folder.resolve() / "pairs")), int(meta["cutoff"]))  # fmt: skip


def computed_state(spark: SparkSession, history: str | Path | None, target: str) -> SparkState:
    """The state of the history as it is now, computed by Spark (not saved)."""
    declarations, outcomes = history_frames(spark, history)
    return spark_state(spark, declarations, outcomes, target)


def save_state(spark: SparkSession, history: Path, target: str) -> tuple[Path, dict[str, int]]:
    """Build the state of the history's committed files on Spark and save it beside the history (replacing
    the one there); returns its folder and sizes."""
    stamp = fingerprint(history, target)  # before reading: what the state covers
    state = computed_state(spark, history, target)
    folder = state_folder(history, target)
    folder.parent.mkdir(parents=True, exist_ok=True)
    staging = folder.parent / f".{folder.name}-{uuid.uuid4().hex[:8]}"
    # one folder per entity: a batch's join reads, for each entity, only that entity's values
    state.keys.write.partitionBy("k").parquet(str(staging.resolve() / "keys"))
    state.pairs.write.parquet(str(staging.resolve() / "pairs"))
    (staging / "state.json").write_text(json.dumps({"format": STATE_FORMAT, "fingerprint": stamp,
                                                    "cutoff": state.cutoff}))  # fmt: skip
    if folder.exists():
        old = folder.parent / f".{folder.name}-old-{uuid.uuid4().hex[:8]}"
        os.replace(folder, old)
        os.replace(staging, folder)
        shutil.rmtree(old, ignore_errors=True)
    else:
        os.replace(staging, folder)
    saved = saved_state(spark, history, target)
    assert saved is not None
    sizes = {"key values": saved.keys.count(), "address-sender pairs": saved.pairs.count()}
    return folder, sizes
