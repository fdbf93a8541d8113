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

from targeting.contract.schema import DECLARATIONS, INSPECTIONS
from targeting.history.folder import fingerprint
from targeting.history.layout import committed_files
from targeting.history.relational import SparkState, spark_state
from targeting.history.store import HISTORY_COLUMNS

if TYPE_CHECKING:
    from pyspark.sql import DataFrame as SparkFrame
    from pyspark.sql import SparkSession

STATE_FOLDER = "as_of_state"
STATE_FORMAT = 1


def state_folder(history: str | Path, target: str) -> Path:
    return Path(history) / STATE_FOLDER / str(target)


def _empty(spark: SparkSession, table: str, columns: list[str] | None = None) -> SparkFrame:
    frame = (DECLARATIONS if table == "declarations" else INSPECTIONS).empty_frame()
    return spark.createDataFrame(frame[[c for c in (columns or frame.columns) if c in frame]])


def history_frames(spark: SparkSession, history: str | Path | None) -> tuple[SparkFrame, SparkFrame]:
    """The committed declarations (the columns as-of answers use) and outcomes of a history folder, read by
    the executors from the folder's files (empty tables for no folder)."""
    tables = []
    for table, columns in (("declarations", list(HISTORY_COLUMNS)), ("outcomes", None)):
        files = [str(Path(p).resolve()) for p in committed_files(history, table)] if history else []
        if not files:
            tables.append(_empty(spark, table, columns))
            continue
        frame = spark.read.parquet(*files)
        if columns:
            frame = frame.select(*[c for c in columns if c in frame.columns])
        tables.append(frame)
    declarations, outcomes = tables
    # the partitioned layout holds each id once (`history add` refuses repeats); a single-file history may not
    return declarations.dropDuplicates(["declaration_id"]), outcomes


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
