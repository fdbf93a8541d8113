"""How a history folder stores its tables: day-partitioned Parquet datasets and a manifest of committed files.

```
HISTORY/
  history.json                                   the manifest: which files are committed (the only truth)
  declarations/day=YYYY-MM-DD/part-<n>-<id>.parquet   declarations, by the UTC day of `filed_at`
  outcomes/day=YYYY-MM-DD/part-<n>-<id>.parquet       inspections, by the UTC day of `exam_at` (when known)
  as_of_index/<target>/                          the saved index of the committed files (history/index.py)
```

The folders are hive-partitioned, so pandas, pyarrow, DuckDB and Spark read them as they are (a `day`
column comes from the folder names). A writer commits a set of files by replacing `history.json` in one
step (`write_manifest`): a reader that goes through the manifest never sees half an add. A file not in the
manifest (left by an add that was killed before its commit) is removed by the next writer.

A folder written before this layout (a single `declarations.parquet` and `inspections.parquet`, as the
simulator writes its run folder) is read as it is; `targeting history migrate` copies it into this layout.
"""

from __future__ import annotations

import json
import os
import uuid
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path

import pandas as pd
import pyarrow as pa
import pyarrow.parquet as pq

from targeting.contract.io import read_parquet
from targeting.errors import InputFileError

MANIFEST = "history.json"
LAYOUT_FORMAT = 1
TABLES = ("declarations", "outcomes")
#: the column each table is partitioned by (its UTC day)
PARTITION_TIME = {"declarations": "filed_at", "outcomes": "exam_at"}
LEGACY_FILES = {"declarations": "declarations.parquet", "outcomes": "inspections.parquet"}


@dataclass
class Manifest:
    """The committed state of a partitioned history: its version and files (relative paths) per table."""

    version: int = 0
    files: dict[str, list[str]] = field(default_factory=lambda: {t: [] for t in TABLES})
    #: what each add committed: version, time, rows per table
    adds: list[dict[str, object]] = field(default_factory=list)

    def to_json(self) -> dict[str, object]:
        return {"format": LAYOUT_FORMAT, "version": self.version, "files": self.files, "adds": self.adds}


def is_partitioned(folder: str | Path) -> bool:
    return (Path(folder) / MANIFEST).exists()


def is_legacy(folder: str | Path) -> bool:
    return not is_partitioned(folder) and (Path(folder) / LEGACY_FILES["declarations"]).exists()


def read_manifest(folder: str | Path) -> Manifest:
    path = Path(folder) / MANIFEST
    try:
        data = json.loads(path.read_text())
    except OSError:
        raise InputFileError(f"{folder}: no {MANIFEST} (not a history folder)") from None
    except ValueError:
        raise InputFileError(f"{path}: not readable JSON") from None
    files = data.get("files", {})
    return Manifest(int(data.get("version", 0)), {t: list(files.get(t, [])) for t in TABLES},
                    list(data.get("adds", [])))  # fmt: skip


def write_manifest(folder: Path, manifest: Manifest) -> None:
    """Commit: the new manifest replaces the old one in one step (a temporary file renamed over it)."""
    tmp = folder / f".{MANIFEST}.{os.getpid()}.tmp"
    tmp.write_text(json.dumps(manifest.to_json(), indent=1))
    os.replace(tmp, folder / MANIFEST)


def committed_files(folder: str | Path, table: str) -> list[Path]:
    """The table's files, as the history holds them now (a legacy folder: its single file, if any)."""
    folder = Path(folder)
    if is_partitioned(folder):
        return [folder / f for f in read_manifest(folder).files[table]]
    legacy = folder / LEGACY_FILES[table]
    return [legacy] if legacy.exists() else []


def day_files(folder: str | Path, table: str, start: pd.Timestamp, end: pd.Timestamp | None) -> list[Path]:
    """The table's committed files of the UTC days that overlap [start, end) (every file of a single-file
    history, which has no days)."""
    files = committed_files(folder, table)
    if not is_partitioned(folder):
        return files
    first = start.tz_convert("UTC").strftime("%Y-%m-%d")
    last = (end - pd.Timedelta(microseconds=1)).tz_convert("UTC").strftime("%Y-%m-%d") if end is not None else None
    return [f for f in files if f.parent.name.removeprefix("day=") >= first
            and (last is None or f.parent.name.removeprefix("day=") <= last)]  # fmt: skip


def read_table(files: list[Path], columns: list[str] | None = None) -> pd.DataFrame | None:
    """The rows of these files as one frame (only `columns` that the files have), or None for no files."""
    if not files:
        return None
    if len(files) == 1:
        present = pq.read_schema(files[0]).names
        return read_parquet(files[0], columns=[c for c in columns if c in present] if columns else None)
    schemas = [pq.read_schema(f) for f in files]
    names = list(dict.fromkeys(n for s in schemas for n in s.names))
    wanted = [c for c in (columns or names) if c in names]
    tables = []
    for f, schema in zip(files, schemas, strict=True):
        table = pq.ParquetFile(f).read(columns=[c for c in wanted if c in schema.names])
        tables.append(table)
    return pa.concat_tables(tables, promote_options="default").to_pandas()


@contextmanager
def writer(folder: Path) -> Iterator[Manifest]:
    """The history's single writer: an exclusive lock, the files of a killed writer removed, the manifest
    as committed (a new history when the folder has none). The caller commits with `write_manifest`."""
    import fcntl

    folder.mkdir(parents=True, exist_ok=True)
    if is_legacy(folder):
        raise InputFileError(f"{folder}: a history in the single-file layout; run `targeting history migrate "
                             f"{folder} --out NEW_FOLDER` first")  # fmt: skip
    with open(folder / ".lock", "a") as lock:
        try:
            fcntl.flock(lock, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            raise InputFileError(f"{folder}: another command is writing to this history") from None
        manifest = read_manifest(folder) if is_partitioned(folder) else Manifest()
        remove_uncommitted(folder, manifest)
        try:
            yield manifest
        finally:
            fcntl.flock(lock, fcntl.LOCK_UN)


def remove_uncommitted(folder: Path, manifest: Manifest) -> None:
    """Part files that no manifest lists (a killed add's), and temporary files: removed."""
    listed = {f for t in TABLES for f in manifest.files[t]}
    for table in TABLES:
        for path in (folder / table).glob("day=*/*"):
            relative = str(path.relative_to(folder))
            if relative not in listed:
                path.unlink(missing_ok=True)
    for tmp in folder.glob(f".{MANIFEST}.*.tmp"):
        tmp.unlink(missing_ok=True)


def write_partitions(folder: Path, table: str, rows: pd.DataFrame, version: int) -> list[str]:
    """The rows as one new file per UTC day (hidden until renamed, then listed by the caller's commit);
    returns their relative paths."""
    if not len(rows):
        return []
    days = rows[PARTITION_TIME[table]].dt.tz_convert("UTC").dt.strftime("%Y-%m-%d")
    written = []
    for day, part in rows.groupby(days.to_numpy(), sort=True):
        relative = f"{table}/day={day}/part-{version:06d}-{uuid.uuid4().hex[:8]}.parquet"
        target = folder / relative
        target.parent.mkdir(parents=True, exist_ok=True)
        tmp = target.with_name(f".{target.name}.tmp")
        pa_table = pa.Table.from_pandas(part.reset_index(drop=True), preserve_index=False)
        pq.write_table(pa_table, tmp)
        os.replace(tmp, target)
        written.append(relative)
    return written
