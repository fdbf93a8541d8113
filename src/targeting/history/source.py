"""Where as-of answers come from: one policy for the batch, the server and the Spark executors.

Three answerers give the same answers (tests/history/test_index.py); only their cost differs:
- the index saved beside the history folder, when it is up to date (`targeting history-index`): mapped
  from disk, it answers a batch of any size by array lookups;
- else, for a small request (serving), an index built in memory on first use and kept;
- else, for a large batch, one sort-merge of the batch with the store (`HistoryStore.as_of`), cheaper than
  indexing when the batch is a good part of the store.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd

from targeting.contract.schema import DECLARATION_ID
from targeting.errors import InputFileError
from targeting.history.folder import index_folder, load_fresh, read_store, read_stored, require_history
from targeting.history.index import HistoryIndex, PrefetchedCodes
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
        self._may_use_saved = store is None
        self._index: HistoryIndex | None = None
        self._index_saved = False

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

    def including(self, rows: pd.DataFrame) -> HistorySource:
        """This history plus a batch's declarations, so that any subset of the batch is answered as the
        whole batch would be (what a partitioned engine needs)."""
        return HistorySource(self.folder, self.target, self.store().including(rows))

    def describe(self) -> str:
        """Where the answers come from, for the job's progress lines."""
        if self.saved_index() is not None:
            return f"the saved history index in {index_folder(self.folder, self.target)}"
        return "the history store (no up-to-date saved index: `targeting history-index` saves one)"

    def saved_index(self) -> HistoryIndex | None:
        """The up-to-date index saved beside the history folder, if there is one (looked for once)."""
        if self._may_use_saved and self.folder:
            self._may_use_saved = False
            self._index = load_fresh(self.folder, self.target)
            self._index_saved = self._index is not None
        return self._index if self._index_saved else None

    def prepare_for_batch(self) -> None:
        """Build what a large batch's lookups use in the saved index (if any), so that a caller can do it
        beside other work."""
        index = self.saved_index()
        if index is not None:
            index.prepare_lookups()

    def answerer(self, n_rows: int) -> Answerer:
        """Who answers the as-of questions of `n_rows` rows (see the module docstring)."""
        if self.saved_index() is not None or self._index is not None:
            assert self._index is not None
            return self._index
        store = self.store()
        if n_rows > max(INDEX_MAX_ROWS, len(store.declarations) // 10):
            return store
        self._index, self._index_saved = HistoryIndex(store), False
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
        ids = rows["declaration_id"].astype(str)
        index = self.saved_index() if self.saved_index() is not None else self._index
        if index is not None:
            position = index.stored_positions(ids)
            candidate = position >= 0
            if not candidate.any():
                return {}
            candidate[candidate] = np.asarray(index.digests)[position[candidate]] != row_digests(rows[candidate])
        else:
            candidate = ids.isin(self.store().declarations["declaration_id"].astype(str)).to_numpy()
        if not candidate.any():
            return {}
        mine = rows[candidate]
        theirs = self._store.declarations if self._store is not None else read_stored(self.folder, list(ids[candidate]))
        theirs = theirs.drop_duplicates("declaration_id")
        theirs = theirs.set_index(theirs["declaration_id"].astype(str)).loc[ids[candidate].to_numpy()]
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

    def annotate(self, rows: pd.DataFrame, threads: int = 1,
                 prefetched: PrefetchedCodes | None = None) -> pd.DataFrame:  # fmt: skip
        """`rows` with their as-of counts alongside; `prefetched` lookups are used only by the saved index
        they were made for."""
        answerer = self.answerer(len(rows))
        if prefetched is not None and answerer is not self.saved_index():
            prefetched.claim()  # looked up for another answerer: unused
            prefetched = None
        return annotate(rows, answerer, threads, prefetched)


def annotate(declarations: pd.DataFrame, answerer: Answerer, threads: int = 1,
             prefetched: PrefetchedCodes | None = None) -> pd.DataFrame:  # fmt: skip
    """Declarations with the as-of counts of the store (or its index, which may use `threads` and codes
    looked up beforehand) alongside (index kept)."""
    if isinstance(answerer, HistoryStore):
        counts = answerer.as_of(declarations)
    else:
        counts = answerer.as_of(declarations, threads, prefetched)
    return pd.concat([declarations, counts], axis=1)
