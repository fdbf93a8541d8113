"""A history folder on disk: its declarations and inspections, what the as-of store reads of them, and
the index saved beside them (`<history>/as_of_index/<target>/`).

The folder layout is the one the simulator and the adapters write: `declarations.parquet` and
`inspections.parquet` (the latter may be missing: no outcomes yet). A saved index records each file's
size and modification time; it is used only while both are unchanged, so a stale index is never read.
"""

from __future__ import annotations

import json
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pandas as pd
import pyarrow.parquet as pq

from targeting.config import Target
from targeting.contract.io import read_parquet
from targeting.contract.labels import parse_target
from targeting.contract.schema import DECLARATIONS, INSPECTIONS
from targeting.errors import InputFileError
from targeting.history.index import INDEX_FORMAT, HistoryIndex
from targeting.history.store import HISTORY_COLUMNS, HistoryStore

DECLARATIONS_FILE = "declarations.parquet"
INSPECTIONS_FILE = "inspections.parquet"
INDEX_FOLDER = "as_of_index"


def require_history(folder: str | Path, what: str = "--history") -> Path:
    """The folder, when it holds past declarations; else one clear error naming `what`."""
    folder = Path(folder)
    if not folder.is_dir():
        raise InputFileError(f"{what} {folder} does not exist: give --history FOLDER, or --no-history to score "
                             "without any history")  # fmt: skip
    if not (folder / DECLARATIONS_FILE).exists():
        raise InputFileError(f"{what} {folder}: no {DECLARATIONS_FILE} (a folder with past declarations and "
                             "inspections, as the simulator and the adapters write them)")  # fmt: skip
    return folder


def history_columns(folder: str | Path) -> list[str]:
    """The columns of the folder's declarations that the store uses (the rest is not read)."""
    present = set(pq.read_schema(Path(folder) / DECLARATIONS_FILE).names)
    return [c for c in HISTORY_COLUMNS if c in present]


def read_store(folder: str | Path | None, target: Target | str) -> HistoryStore:
    """The folder's declarations and outcomes as a store (an empty store for no folder, or one without
    declarations)."""
    decl, insp = DECLARATIONS.empty_frame(), INSPECTIONS.empty_frame()
    if folder is not None and (Path(folder) / DECLARATIONS_FILE).exists():
        folder = Path(folder)
        decl = read_parquet(folder / DECLARATIONS_FILE, columns=history_columns(folder))
        if (folder / INSPECTIONS_FILE).exists():
            insp = read_parquet(folder / INSPECTIONS_FILE)
    return HistoryStore.from_tables(decl, insp, target)


def read_stored(folder: str | Path, ids: list[str]) -> pd.DataFrame:
    """The folder's stored declarations with these ids (the columns the store uses; a filtered read)."""
    table = pq.read_table(Path(folder) / DECLARATIONS_FILE, columns=history_columns(folder),
                          filters=[("declaration_id", "in", ids)])  # fmt: skip
    return table.to_pandas().drop_duplicates("declaration_id")


def index_folder(history: str | Path, target: str) -> Path:
    return Path(history) / INDEX_FOLDER / str(target)


def fingerprint(history: str | Path, target: str) -> dict[str, Any]:
    """What the index was built from: each history file's size and modification time, and the target."""
    files = {}
    for name in (DECLARATIONS_FILE, INSPECTIONS_FILE):
        path = Path(history) / name
        if path.exists():
            stat = path.stat()
            files[name] = [stat.st_size, stat.st_mtime_ns]
    return {"target": str(target), "files": files}


def load_fresh(history: str | Path, target: str) -> HistoryIndex | None:
    """The saved index of this history and target, or None when there is none or the files changed since."""
    folder = index_folder(history, target)
    try:
        meta = json.loads((folder / "index.json").read_text())
    except (OSError, ValueError):
        return None
    if meta.get("format") != INDEX_FORMAT or meta.get("fingerprint") != fingerprint(history, target):
        return None
    return HistoryIndex.load(folder)


def build_index(history: Path, target: str = "hit",
                progress: Callable[[str], None] | None = None) -> tuple[Path, dict[str, int]]:  # fmt: skip
    """Index a history folder for scoring and serving and save it beside the history. Run it whenever the
    folder's declarations or inspections change: scoring ignores an index whose files changed since."""
    say = progress or (lambda _s: None)
    target = parse_target(target).value
    require_history(history, "history folder")
    stamp = fingerprint(history, target)  # before reading: a file replaced meanwhile makes the index stale
    say("reading the history")
    store = read_store(history, target)
    say(f"indexing {len(store.declarations):,} declarations and {len(store.outcomes):,} outcomes")
    index = HistoryIndex(store, threads=2)
    say("saving")
    folder = index.save(index_folder(history, target), stamp)
    return folder, {"declarations": len(store.declarations), "outcomes": len(store.outcomes),
                    "keys": len(index.keys)}  # fmt: skip
