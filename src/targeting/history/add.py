"""`targeting history add`: the daily loop's write. A day's declarations, and the outcomes known since,
join the history in one commit.

- Every row is checked against the contract (bad rows to the rejects, with reasons), and against the
  history: a declaration id the history already holds is a duplicate (rejected, never overwritten: "the
  same row" when it is identical, else "other content"); an outcome must reference a declaration of the
  history or of this add, and cannot precede its filing. Late outcomes (days after their declaration) are
  the normal case.
- An outcome file may leave out `selection_reason` / `selection_propensity`: the scoring run's `scores`
  file (`--scores`) says which rows it selected, INSPECT as MODEL and EXPLORE as RANDOM, with the
  propensity it recorded.
- Atomic and idempotent: the rows are written as new day-partition files and committed by replacing the
  manifest in one step (`layout.py`), so a crash at any point leaves the history as it was, and a reader
  never sees half an add. Run twice, the second run adds nothing: its declarations are duplicates, and an
  outcome identical to one already recorded is skipped.
- The cost follows the day: ids and filing times of stored declarations come from the saved index and
  its delta; identical outcomes can only sit in the partitions of the same exam days.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Protocol

import numpy as np
import pandas as pd

from targeting.contract.io import RawTable, read_raw, write_tables
from targeting.contract.manifests import read_manifests
from targeting.contract.schema import DECLARATION_ID, DECLARATIONS, FILED_AT, INSPECTIONS, REJECT_REASON
from targeting.contract.validate import ValidationResult, check_inspections_against, validate_frame
from targeting.history import layout
from targeting.history.folder import INDEX_FOLDER, load_fresh, read_declarations, read_outcomes
from targeting.history.store import content_text

SELECTED_AS = {"INSPECT": "MODEL", "EXPLORE": "RANDOM"}
#: the columns that make an inspection row the same as a recorded one
OUTCOME_IDENTITY = ("declaration_id", "exam_type", "exam_at", "result", "selection_reason")


@dataclass
class AddResult:
    version: int
    declarations_read: int
    declarations_added: int
    outcomes_read: int
    outcomes_added: int
    outcomes_skipped: int  # identical to an outcome already recorded
    later: int  # rows left for a later add (at or after `before`)
    rejects: pd.DataFrame  # source_file, source_row, table, the row as read, reject_reason
    rejects_file: Path | None


class StoredFilings(Protocol):
    """Where the filing times of stored declarations come from."""

    def filed_at(self, ids: pd.Series) -> pd.Series:
        """Each id's filing time in the history (missing where the history does not hold it)."""
        ...


def add(folder: Path, declarations: list[Path], outcomes: list[Path], scores: list[Path] | None = None,
        before: pd.Timestamp | None = None, progress: Callable[[str], None] | None = None,
        stored: Callable[[Path], StoredFilings] | None = None) -> AddResult:  # fmt: skip
    """Add these files to the history in `folder` (created when new); see the module docstring. With
    `before`, only declarations filed and outcomes known before it are added (a backfill up to a day); the
    rest is left for a later add. `stored`: how the stored ids are looked up (default: the saved index)."""
    say = progress or (lambda _s: None)
    with layout.writer(folder) as manifest:
        stored_filings = (stored or _Stored)(folder)
        say(f"reading and validating {len(declarations)} declaration file(s)")
        decl, decl_rejects, n_decl = _declarations(declarations, stored_filings)
        later = 0
        if before is not None:
            early = (decl[FILED_AT] < before).to_numpy()
            decl, later = decl[early].reset_index(drop=True), int((~early).sum())
        say(f"reading and validating {len(outcomes)} outcome file(s)")
        outs, out_rejects, n_out, skipped, later_outcomes = _outcomes(folder, outcomes, scores or [], decl,
                                                                      stored_filings, before)  # fmt: skip
        later += later_outcomes
        version = manifest.version + 1 if len(decl) or len(outs) else manifest.version  # nothing new: no commit
        say("writing and committing")
        files = {"declarations": layout.write_partitions(folder, "declarations", decl, version),
                 "outcomes": layout.write_partitions(folder, "outcomes", outs, version)}  # fmt: skip
        rejects = pd.concat([decl_rejects, out_rejects], ignore_index=True)
        rejects_file = None
        if len(rejects):  # beside the history, in a folder its readers skip
            rejects_file = folder / "_rejects" / f"add-{pd.Timestamp.now(tz='UTC'):%Y%m%dT%H%M%S%f}.csv"
            write_tables({rejects_file: rejects, rejects_file.with_suffix(".parquet"): rejects})
        if version > manifest.version:
            for table, new in files.items():
                manifest.files[table] += new
            manifest.version = version
            manifest.adds.append({"version": version, "at": pd.Timestamp.now(tz="UTC").isoformat(),
                                  "declarations": len(decl), "outcomes": len(outs)})  # fmt: skip
            layout.write_manifest(folder, manifest)
    return AddResult(version, n_decl, len(decl), n_out, len(outs), skipped, later, rejects, rejects_file)


class _Stored:
    """What the history holds of declarations, found without reading it all: a saved index's ids and filing
    times (and its delta), else (a history not indexed yet) every committed declaration's id and time."""

    def __init__(self, folder: Path) -> None:
        self.index = None
        self.recent = pd.DataFrame({DECLARATION_ID: pd.Series(dtype="str"), FILED_AT: pd.Series(dtype="datetime64[us, UTC]")})
        targets = sorted(p.name for p in (folder / INDEX_FOLDER).iterdir()) if (folder / INDEX_FOLDER).is_dir() else []
        saved = next((s for s in (load_fresh(folder, t) for t in targets) if s is not None), None)
        if saved is not None:
            self.index = saved.index
            self.recent = saved.delta.declarations
        elif layout.is_partitioned(folder):
            self.recent = read_declarations(layout.committed_files(folder, "declarations"),
                                            [DECLARATION_ID, *[c for c in DECLARATIONS.names if c != DECLARATION_ID]])  # fmt: skip
        self.recent = self.recent.drop_duplicates(DECLARATION_ID).set_index(self.recent[DECLARATION_ID].astype(str))

    def filed_at(self, ids: pd.Series) -> pd.Series:
        """Each id's filing time in the history (missing where the history does not hold it)."""
        ids = ids.astype(str)
        out = ids.map(self.recent[FILED_AT]) if len(self.recent) else pd.Series(pd.NaT, index=ids.index,
                                                                                 dtype="datetime64[us, UTC]")  # fmt: skip
        out = out.astype("datetime64[us, UTC]")
        if self.index is not None:
            pos = self.index.stored_positions(ids)
            found = pos >= 0
            seconds = np.asarray(self.index.row_filed_s)[pos[found]]
            out[found] = pd.to_datetime(seconds, unit="s", utc=True).astype("datetime64[us, UTC]")
        return out


def _declarations(paths: list[Path], stored: StoredFilings) -> tuple[pd.DataFrame, pd.DataFrame, int]:
    """The valid declarations new to the history, the rejects, and the rows read."""
    if not paths:
        return DECLARATIONS.empty_frame(), pd.DataFrame(), 0
    manifests = read_manifests(paths)
    filed = stored.filed_at(manifests.valid[DECLARATION_ID])
    held = np.flatnonzero(filed.notna().to_numpy())
    manifests = manifests.reject({int(p): f"{DECLARATION_ID}: already in the history (ids are unique across it)"
                                  for p in held})  # fmt: skip
    rejects = manifests.rejects.assign(table="declarations")
    return manifests.valid, rejects, manifests.n_read


def _outcomes(folder: Path, paths: list[Path], scores: list[Path], added: pd.DataFrame, stored: StoredFilings,
              before: pd.Timestamp | None = None) -> tuple[pd.DataFrame, pd.DataFrame, int, int, int]:  # fmt: skip
    """The valid outcomes new to the history, the rejects, the rows read, how many were skipped as identical
    to recorded ones, and how many were left for later (known on or after `before`)."""
    if not paths:
        return INSPECTIONS.empty_frame(), pd.DataFrame(), 0, 0, 0
    selection = _selections(scores)
    valid, rejects, n_read, n_later = [], [], 0, 0
    for path in paths:
        raw = read_raw(path, INSPECTIONS.coded)
        frame = _with_selection(raw.frame, selection)
        result = validate_frame(RawTable(frame, path, raw.format, raw.encoding_errors, raw.row_errors), INSPECTIONS)
        ids = result.valid[DECLARATION_ID].astype(str)
        mine = added.set_index(added[DECLARATION_ID].astype(str))[FILED_AT] if len(added) else pd.Series(dtype="datetime64[us, UTC]")
        filed = ids.map(mine).astype("datetime64[us, UTC]") if len(mine) else pd.Series(pd.NaT, index=ids.index, dtype="datetime64[us, UTC]")
        missing = filed.isna().to_numpy()
        if missing.any():
            filed[missing] = stored.filed_at(ids[missing]).to_numpy()
        known = pd.DataFrame({DECLARATION_ID: ids, FILED_AT: filed}).dropna().drop_duplicates(DECLARATION_ID)
        if before is not None:  # an outcome left for later may reference a declaration left for later
            later = (result.valid["exam_at"] >= before).to_numpy()
            n_later += int(later.sum())
            result = _without(result, later)
        result = check_inspections_against(result, known)
        rej = result.rejects.copy()
        rej.insert(0, "source_file", str(path))
        valid.append(result.valid)
        rejects.append(rej)
        n_read += result.n_read
    outcomes = pd.concat(valid, ignore_index=True)
    new = ~_recorded(folder, outcomes)
    dup_in_add = outcomes[list(OUTCOME_IDENTITY)].astype(str).duplicated().to_numpy()
    keep = new & ~dup_in_add
    return (outcomes[keep].reset_index(drop=True), pd.concat(rejects, ignore_index=True).assign(table="outcomes"),
            n_read + n_later, int((~keep).sum()), n_later)  # fmt: skip


def _without(result: ValidationResult, rows: np.ndarray) -> ValidationResult:
    """The result without these valid rows (left for a later add: neither added nor rejected)."""
    if not rows.any():
        return result
    return ValidationResult(result.table, result.valid[~rows].reset_index(drop=True), result.rejects,
                            result.n_read - int(rows.sum()), result.raw, result.valid_pos[~rows])  # fmt: skip


def _selections(scores: list[Path]) -> pd.DataFrame:
    """Per selected declaration of the scoring runs: its selection reason (INSPECT: MODEL, EXPLORE:
    RANDOM) and propensity."""
    frames = []
    for path in scores:
        frame = read_raw(path).frame
        frame = frame[frame["decision"].isin(list(SELECTED_AS))]
        frames.append(pd.DataFrame({DECLARATION_ID: frame[DECLARATION_ID].astype(str),
                                    "selection_reason": frame["decision"].map(SELECTED_AS),
                                    "selection_propensity": frame["selection_propensity"].astype(str)}))  # fmt: skip
    if not frames:
        return pd.DataFrame(columns=[DECLARATION_ID, "selection_reason", "selection_propensity"])
    return pd.concat(frames, ignore_index=True).drop_duplicates(DECLARATION_ID).set_index(DECLARATION_ID)


def _with_selection(frame: pd.DataFrame, selection: pd.DataFrame) -> pd.DataFrame:
    """Outcome rows with the scoring run's selection filled in where the file leaves it out."""
    if not len(selection):
        return frame
    frame = frame.copy()
    ids = frame[DECLARATION_ID].astype(str)
    for column in ("selection_reason", "selection_propensity"):
        given = frame[column] if column in frame else pd.Series(None, index=frame.index, dtype="object")
        empty = given.isna() | (given.astype(str) == "")
        frame[column] = given.astype(object).where(~empty, ids.map(selection[column]))
    return frame


def _recorded(folder: Path, outcomes: pd.DataFrame) -> np.ndarray:
    """Which outcome rows the history already records (identical in `OUTCOME_IDENTITY`); an identical row
    has the same exam day, so only those days' partitions are read."""
    if not len(outcomes) or not layout.is_partitioned(folder):
        return np.zeros(len(outcomes), bool)
    days = set(outcomes["exam_at"].dt.tz_convert("UTC").dt.strftime("%Y-%m-%d"))
    files = [f for f in layout.committed_files(folder, "outcomes") if f.parent.name.removeprefix("day=") in days]
    if not files:
        return np.zeros(len(outcomes), bool)
    recorded = read_outcomes(files)
    key = [c for c in OUTCOME_IDENTITY]
    theirs = set(map(tuple, pd.DataFrame({c: content_text(recorded, c) for c in key}).to_numpy()))
    mine = pd.DataFrame({c: content_text(outcomes, c) for c in key}).to_numpy()
    return np.array([tuple(row) in theirs for row in mine], bool)


def rejects_by_rule(rejects: pd.DataFrame) -> dict[str, int]:
    """How many rows failed each rule (a row failing two counts under both)."""
    if not len(rejects):
        return {}
    return rejects[REJECT_REASON].str.split("; ").explode().value_counts().to_dict()

