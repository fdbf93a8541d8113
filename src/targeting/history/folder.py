"""A history folder on disk: its committed declarations and outcomes (`layout.py`), what the as-of store
reads of them, and the index saved beside them (`<history>/as_of_index/<target>/`).

A saved index records what it was built from. In the partitioned layout that is the list of committed
files it covers: files committed after it (days added with `targeting history add`) are its delta, read
at load and answered together with it (`HistoryIndex.as_of(..., delta)`), so adding a day never requires
indexing the whole history again; `targeting history index` (compaction) folds the delta in. In the
single-file layout the index records each file's size and modification time and is used only while both
are unchanged.
"""

from __future__ import annotations

import json
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pandas as pd
import pyarrow.parquet as pq

from targeting.config import Target
from targeting.contract.labels import labels, parse_target
from targeting.contract.schema import DECLARATIONS, INSPECTIONS
from targeting.errors import InputFileError
from targeting.history.index import INDEX_FORMAT, Delta, HistoryIndex
from targeting.history.layout import (
    LEGACY_FILES,
    MANIFEST,
    committed_files,
    is_legacy,
    is_partitioned,
    read_manifest,
    read_table,
)
from targeting.history.store import HISTORY_COLUMNS, HistoryStore

INDEX_FOLDER = "as_of_index"


def require_history(folder: str | Path, what: str = "--history") -> Path:
    """The folder, when it is a history (either layout); else one clear error naming `what`."""
    folder = Path(folder)
    if not folder.is_dir():
        raise InputFileError(f"{what} {folder} does not exist: give --history FOLDER, or --no-history to score "
                             "without any history")  # fmt: skip
    if not is_partitioned(folder) and not is_legacy(folder):
        raise InputFileError(f"{what} {folder}: neither a {MANIFEST} nor a {LEGACY_FILES['declarations']} (a "
                             "history folder: `targeting history add` writes one)")  # fmt: skip
    return folder


def history_columns(folder: str | Path) -> list[str]:
    """The columns of the folder's declarations that the store uses (the rest is not read)."""
    files = committed_files(folder, "declarations")
    present = set(pq.read_schema(files[0]).names) if files else set()
    return [c for c in HISTORY_COLUMNS if c in present]


def read_declarations(files: list[Path], columns: list[str] | None = None) -> pd.DataFrame:
    """The declarations of these history files (an empty contract table for none)."""
    frame = read_table(files, columns)
    if frame is None:
        empty = DECLARATIONS.empty_frame()
        return empty[[c for c in columns if c in empty]] if columns else empty
    return frame


def read_outcomes(files: list[Path]) -> pd.DataFrame:
    """The inspections of these history files (an empty contract table for none)."""
    frame = read_table(files)
    return INSPECTIONS.empty_frame() if frame is None else frame


def read_history(folder: Path) -> tuple[pd.DataFrame, pd.DataFrame]:
    """Every committed declaration and outcome of a history folder (either layout), e.g. for training."""
    return read_declarations(committed_files(folder, "declarations")), read_outcomes(committed_files(folder, "outcomes"))


def read_store(folder: str | Path | None, target: Target | str) -> HistoryStore:
    """The folder's committed declarations and outcomes as a store (an empty store for no folder)."""
    if folder is None or not Path(folder).is_dir():
        return HistoryStore.from_tables(DECLARATIONS.empty_frame(), INSPECTIONS.empty_frame(), target)
    decl = read_declarations(committed_files(folder, "declarations"), HISTORY_COLUMNS)
    return HistoryStore.from_tables(decl, read_outcomes(committed_files(folder, "outcomes")), target)


def read_stored(folder: str | Path, ids: list[str]) -> pd.DataFrame:
    """The folder's stored declarations with these ids (the columns the store uses; a filtered read)."""
    frames = []
    for path in committed_files(folder, "declarations"):
        columns = [c for c in HISTORY_COLUMNS if c in pq.read_schema(path).names]
        frames.append(pq.read_table(path, columns=columns, filters=[("declaration_id", "in", ids)]).to_pandas())
    frame = pd.concat(frames, ignore_index=True) if frames else DECLARATIONS.empty_frame()
    return frame.drop_duplicates("declaration_id")


def index_folder(history: str | Path, target: str) -> Path:
    return Path(history) / INDEX_FOLDER / str(target)


def fingerprint(history: str | Path, target: str) -> dict[str, Any]:
    """What an index is built from: the committed files it covers (partitioned), or each file's size and
    modification time (single-file); and the target."""
    if is_partitioned(history):
        return {"target": str(target), "covers": read_manifest(history).files}
    files = {}
    for name in LEGACY_FILES.values():
        path = Path(history) / name
        if path.exists():
            stat = path.stat()
            files[name] = [stat.st_size, stat.st_mtime_ns]
    return {"target": str(target), "files": files}


@dataclass
class SavedIndex:
    """The saved index of a history and what the history committed after it."""

    index: HistoryIndex
    delta: Delta
    #: the history's manifest version when it was loaded (0 for the single-file layout)
    version: int


def load_fresh(history: str | Path, target: str) -> SavedIndex | None:
    """The saved index of this history and target and its delta, or None when there is none (or, for the
    single-file layout, the files changed since it was built)."""
    folder = index_folder(history, target)
    try:
        meta = json.loads((folder / "index.json").read_text())
    except (OSError, ValueError):
        return None
    if meta.get("format") != INDEX_FORMAT or meta["fingerprint"].get("target") != str(target):
        return None
    if not is_partitioned(history):
        if meta["fingerprint"] != fingerprint(history, target):
            return None
        return SavedIndex(HistoryIndex.load(folder), Delta(_no_rows(), _no_outcomes()), 0)
    manifest = read_manifest(history)
    covered = meta["fingerprint"].get("covers")
    if not covered or any(not set(covered[t]) <= set(manifest.files[t]) for t in manifest.files):
        return None  # not built from this history's committed files
    new = {t: [Path(history) / f for f in manifest.files[t] if f not in set(covered[t])] for t in manifest.files}
    return SavedIndex(HistoryIndex.load(folder), read_delta(new, target), manifest.version)


def read_delta(files: dict[str, list[Path]], target: str) -> Delta:
    """The declarations (the store's columns) and outcomes (as labels) of these files."""
    decl = read_declarations(files["declarations"], HISTORY_COLUMNS) if files["declarations"] else _no_rows()
    outcomes = labels(read_outcomes(files["outcomes"]), target) if files["outcomes"] else _no_outcomes()
    return Delta(decl.reset_index(drop=True), outcomes.reset_index(drop=True))


def _no_rows() -> pd.DataFrame:
    empty = DECLARATIONS.empty_frame()
    return empty[[c for c in HISTORY_COLUMNS if c in empty]]


def _no_outcomes() -> pd.DataFrame:
    return labels(INSPECTIONS.empty_frame(), "hit")


def build_index(history: Path, target: str = "hit",
                progress: Callable[[str], None] | None = None) -> tuple[Path, dict[str, int]]:  # fmt: skip
    """Index a history folder for scoring and serving and save it beside the history. In the partitioned
    layout it covers every committed file (what `history add` commits later is read as its delta); in the
    single-file layout rerun it whenever the files change (scoring ignores an index whose files changed)."""
    say = progress or (lambda _s: None)
    target = parse_target(target).value
    require_history(history, "history folder")
    stamp = fingerprint(history, target)  # before reading: what the index covers
    say("reading the history")
    if is_partitioned(history):
        covered = stamp["covers"]
        decl = read_declarations([history / f for f in covered["declarations"]], HISTORY_COLUMNS)
        store = HistoryStore.from_tables(decl, read_outcomes([history / f for f in covered["outcomes"]]), target)
    else:
        store = read_store(history, target)
    say(f"indexing {len(store.declarations):,} declarations and {len(store.outcomes):,} outcomes")
    index = HistoryIndex(store, threads=2)
    say("saving")
    folder = index.save(index_folder(history, target), stamp)
    return folder, {"declarations": len(store.declarations), "outcomes": len(store.outcomes),
                    "keys": len(index.keys)}  # fmt: skip
