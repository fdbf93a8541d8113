"""Where as-of answers come from: one policy for the batch, the server and the Spark executors.

Three answerers give the same answers (tests/history/); only their cost differs:
- the index saved beside the history folder, with its delta (what `targeting history add` committed after
  it was saved): mapped from disk, it answers a batch of any size by array lookups, the delta's rows
  answered as if they were indexed;
- else, for a small request (serving), an index built in memory on first use and kept;
- else, for a large batch, one sort-merge of the batch with the store (`HistoryStore.as_of`), cheaper than
  indexing when the batch is a good part of the store.
A long-lived reader (the server) asks `changed()` (a stat of the manifest) and swaps in `reopened()` when
the history has committed an add, so a seizure recorded yesterday counts for today's requests without a
restart; a half-written add is never seen (the manifest is replaced in one step).
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd

from targeting.contract.schema import DECLARATION_ID
from targeting.errors import InputFileError
from targeting.history.folder import (
    SavedIndex,
    index_folder,
    load_fresh,
    read_store,
    read_stored,
    require_history,
)
from targeting.history.index import HistoryIndex, PrefetchedCodes, StaleIndex
from targeting.history.layout import MANIFEST
from targeting.history.store import CONTENT_COLUMNS, HistoryStore, content_text, row_digests

#: batches up to this many rows are answered through an index (serving); larger ones by one sort-merge
#: with the store, which is cheaper when the batch is a good part of the store
INDEX_MAX_ROWS = 50_000

Answerer = HistoryStore | HistoryIndex


class HistorySource:
    """The as-of answers of one history folder (or of a given store) for one target."""

    def __init__(self, folder: str | Path | None, target: str, store: HistoryStore | None = None) -> None:
        """`store`: answer from this store (never from a saved index) instead of reading the folder; with
        neither, every answer is an error (a model that records no history folder)."""
        self.folder = str(folder) if folder else ""
        self.target = str(target)
        self._store = store
        self._fixed = store is not None  # answers from the given store, never from the folder
        self._may_use_saved = store is None
        self._saved: SavedIndex | None = None
        self._index: HistoryIndex | None = None  # built in memory from the store (small requests)
        self._version = self._current_version()

    @classmethod
    def none(cls, target: str) -> HistorySource:
        """No history at all, asked for explicitly (`--no-history`): every party is new."""
        return cls(None, target, read_store(None, target))

    def check(self) -> None:
        """One clear error now, rather than at the first answer, when the history folder is missing."""
        if self._store is None:
            if not self.folder:
                raise InputFileError("the model records no history folder: give --history FOLDER, or "
                                     "--no-history to score without any history")  # fmt: skip
            require_history(self.folder, "the model's history folder")

    def changed(self) -> bool:
        """Whether the history committed something since this source read it (a stat of its manifest)."""
        return not self._fixed and bool(self.folder) and self._current_version() != self._version

    def reopened(self) -> HistorySource:
        """A new source of the same folder, as the history is now, ready to answer (its saved index and
        delta loaded, or its in-memory index built); this one keeps answering meanwhile."""
        fresh = HistorySource(self.folder, self.target)
        fresh.answerer(1)
        return fresh

    def _current_version(self) -> tuple[int, int]:
        """The committed state, cheaply: the manifest's modification time and size (replaced at each commit)."""
        if not self.folder:
            return (0, 0)
        try:
            stat = (Path(self.folder) / MANIFEST).stat()
        except OSError:
            return (0, 0)
        return (stat.st_mtime_ns, stat.st_size)

    def describe(self) -> str:
        """Where the answers come from, for the job's progress lines."""
        saved = self.saved_index()
        if saved is not None:
            extra = f", and {len(saved.delta.declarations):,} declarations and {len(saved.delta.outcomes):,} " \
                    "outcomes committed after it" if len(saved.delta) else ""  # fmt: skip
            return f"the saved history index in {index_folder(self.folder, self.target)}{extra}"
        return "the history store (no saved index: `targeting history index` saves one)"

    def saved_index(self) -> SavedIndex | None:
        """The index saved beside the history folder and its delta, if there is one (looked for once)."""
        if self._may_use_saved and self.folder:
            self._may_use_saved = False
            self._saved = load_fresh(self.folder, self.target)
        return self._saved

    def prepare_for_batch(self) -> None:
        """Build what a large batch's lookups use in the saved index (if any), so that a caller can do it
        beside other work."""
        saved = self.saved_index()
        if saved is not None:
            saved.index.prepare_lookups()

    def answerer(self, n_rows: int) -> Answerer:
        """Who answers the as-of questions of `n_rows` rows (see the module docstring)."""
        saved = self.saved_index()
        if saved is not None:
            return saved.index
        if self._index is not None:
            return self._index
        store = self.store()
        if n_rows > max(INDEX_MAX_ROWS, len(store.declarations) // 10):
            return store
        self._index = HistoryIndex(store)
        return self._index

    def store(self) -> HistoryStore:
        """The whole history as a store (read once)."""
        if self._store is None:
            self.check()
            self._store = read_store(self.folder, self.target)
        return self._store

    def conflicts(self, rows: pd.DataFrame) -> dict[int, str]:
        """Rows whose declaration id the history already holds with other content (row position -> reason):
        ids are unique across the history, so such a row would be answered with another declaration's past.
        The content compared is what as-of answers depend on (`store.CONTENT_COLUMNS`: the filing time, the
        parties, the linked tokens, the route). A row stored with the same content (a day scored again) is
        no conflict, nor one that leaves out values the history has. The index keeps a digest of each
        stored row, so only rows whose digest differs are compared column by column."""
        if not len(rows):
            return {}
        ids = rows[DECLARATION_ID].astype(str)
        saved = self.saved_index()
        index = saved.index if saved is not None else self._index
        if index is not None:
            position = index.stored_positions(ids)
            candidate = position >= 0
            candidate[candidate] = np.asarray(index.digests)[position[candidate]] != row_digests(rows[candidate])
            if saved is not None and len(saved.delta.declarations):  # ids the delta holds: compared directly
                candidate |= ids.isin(saved.delta.declarations[DECLARATION_ID].astype(str)).to_numpy()
        else:
            candidate = ids.isin(self.store().declarations[DECLARATION_ID].astype(str)).to_numpy()
        if not candidate.any():
            return {}
        theirs = self._store.declarations if self._store is not None else read_stored(self.folder, list(ids[candidate]))
        return content_conflicts(rows, candidate, theirs)

    def annotate(self, rows: pd.DataFrame, threads: int = 1,
                 prefetched: PrefetchedCodes | None = None) -> pd.DataFrame:  # fmt: skip
        """`rows` with their as-of counts alongside; `prefetched` lookups are used only by the saved index
        they were made for (its delta's rows are looked up there)."""
        answerer = self.answerer(len(rows))
        saved = self.saved_index()
        if saved is not None:
            try:
                counts = saved.index.as_of(rows, threads, prefetched, saved.delta)
                return pd.concat([rows, counts], axis=1)
            except StaleIndex:  # the delta amends the index beyond what it can answer around: the store
                self._saved = None
                answerer = self.answerer(len(rows))
        if prefetched is not None:
            prefetched.claim()  # looked up for another answerer: unused
        return annotate(rows, answerer, threads)


def annotate(declarations: pd.DataFrame, answerer: Answerer, threads: int = 1,
             prefetched: PrefetchedCodes | None = None) -> pd.DataFrame:  # fmt: skip
    """Declarations with the as-of counts of the store (or its index, which may use `threads` and codes
    looked up beforehand) alongside (index kept)."""
    if isinstance(answerer, HistoryStore):
        counts = answerer.as_of(declarations)
    else:
        counts = answerer.as_of(declarations, threads, prefetched)
    return pd.concat([declarations, counts], axis=1)


def content_conflicts(rows: pd.DataFrame, candidate: np.ndarray, stored: pd.DataFrame) -> dict[int, str]:
    """Of the `candidate` rows (a mask; their ids are stored), those whose content differs from the stored
    row's (`stored` holds at least those ids): row position -> reason."""
    ids = rows[DECLARATION_ID].astype(str)
    mine = rows[candidate]
    theirs = stored.drop_duplicates(DECLARATION_ID)
    theirs = theirs.set_index(theirs[DECLARATION_ID].astype(str)).loc[ids[candidate].to_numpy()]
    differs = {}
    for c in CONTENT_COLUMNS:  # a value sent that differs from the stored one (one not sent contradicts nothing)
        if c not in mine.columns:
            continue
        sent, kept = content_text(mine, c).to_numpy(), content_text(theirs, c).to_numpy()
        differs[c] = (sent != "") & (sent != kept)
    out = {}
    for j, position in enumerate(np.flatnonzero(candidate)):
        changed = [c for c in differs if differs[c][j]]
        if changed:
            out[int(position)] = (f"{DECLARATION_ID}: already in the history with other content "
                                  f"({', '.join(changed)})")  # fmt: skip
    return out
