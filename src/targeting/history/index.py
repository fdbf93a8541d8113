"""The history store, indexed once for fast as-of answers at scoring and serving time.

`HistoryStore.as_of` sorts every stored event together with the query each time: right for training
(every row against the rows before it), but a daily batch then pays for sorting the whole history again,
and a one-row REST request as much as a batch. `HistoryIndex` sorts the stored events once per key
(declarations, outcomes, hits as `code * SPAN + second` integers, with each code's first position) and
answers a query with array lookups: a key's whole past where it all precedes the query (the daily case),
a binary search where it does not, plus what the query batch itself adds (its own earlier rows and the
stored outcomes of its rows). The answers are exactly those of `HistoryStore.as_of` (tested on random
histories and queries), so training and scoring features cannot drift apart.

`save` writes the index into a folder (NumPy arrays without pickling, text values as Arrow IPC, the
fingerprint of the history files it was built from); `load` maps it back without copying. Where that
folder is, and when a saved index is still fresh, is `history/folder.py`'s business.
"""

from __future__ import annotations

import json
import os
from concurrent.futures import Future, ThreadPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import pyarrow.compute as pc

from targeting.contract.io import (
    arrow_text,
    read_text_values,
    remove_stale,
    replace_folder,
    write_text_values,
)
from targeting.history.store import (
    _SPAN,
    PARTY_KEYS,
    ROUTE_KEYS,
    WINDOW_DAYS,
    HistoryStore,
    _seconds,
    answer_parts,
    first_per_key,
    row_digests,
)

INDEX_FORMAT = 7
#: queries above this many rows look their values up in one Arrow set lookup and their ids in the kept
#: table of stored ids; smaller ones (serving) use the pandas hash tables of the stored values and ids
SET_LOOKUP_ROWS = 100_000
_PAIR = np.int64(2**31)  # pair key = address code * _PAIR + sender code
#: the id column, whose prefetched lookup is which ids the store holds
IDS = "declaration_id"
#: a key's sorted event arrays, in `_Key` order (saved, loaded and handed to the compiled loop)
_KEY_ARRAYS = ("decl", "decl_start", "insp", "insp_start", "hits", "hits_start")


def _values(series: pd.Series) -> pd.Series:
    """Key values as the store compares them (object columns as read become strings)."""
    return series.astype("str") if series.dtype == object else series


class PrefetchedCodes:
    """The stored codes of a large batch's key columns, and which of its ids are stored (the `IDS` column,
    a mask), looked up on another thread before the batch is validated (set lookups that are a large part
    of a big batch's as-of cost, done while validation leaves a core idle). They are looked up for the rows as read, which
    are the validated rows' values for Parquet text columns; `rows` then picks the validated rows.
    `as_of` claims them: a column whose lookup has not started by then is cancelled and looked up by
    `as_of` itself, on its own threads."""

    def __init__(self, columns: list[str] | None = None) -> None:
        """`columns`: the ids and every key column of an index, unless given."""
        if columns is None:
            columns = list(dict.fromkeys([IDS, *PARTY_KEYS.values(), *ROUTE_KEYS.values()]))
        self.futures: dict[str, Future] = {column: Future() for column in columns}
        self.rows: np.ndarray | None = None  # positions, among the rows as read, of the rows to answer
        #: the caller vouches that the rows to answer have no repeated id (validated rows: validation
        #: rejects repeats), so `as_of` need not look for them
        self.ids_unique = False

    def run(self, index: HistoryIndex | None, frame: pd.DataFrame) -> None:
        """Look the columns up in `index` (None: nothing to look up, the batch is answered another way)."""
        by_column = {key.column: name for name, key in index.keys.items()} if index is not None else {}
        for column, future in self.futures.items():
            if not future.set_running_or_notify_cancel():
                continue
            try:
                usable = index is not None and column in frame and frame[column].dtype == "str"
                if not usable or (column != IDS and column not in by_column):
                    future.set_result(None)
                elif column == IDS:
                    future.set_result(index.stored_ids(frame[column]))
                else:
                    future.set_result(index.stored_codes(by_column[column], frame[column]))
            except BaseException as exc:  # noqa: BLE001 - handed to whoever asks for the column
                future.set_exception(exc)

    def claim(self) -> None:
        """Cancel the lookups not started yet (the caller does them itself)."""
        for future in self.futures.values():
            future.cancel()

    def codes(self, column: str) -> np.ndarray | None:
        """The column's stored codes for the rows to answer (waiting for a lookup under way), or None."""
        future = self.futures.get(column)
        if future is None or future.cancelled() or self.rows is None:
            return None
        codes = future.result()
        return None if codes is None else codes[self.rows]


class _AfterPre(PrefetchedCodes):
    """A query's prefetched codes with the rows put before it (a delta's) looked up here: the codes of the
    joined rows, the rows before first. Which ids are stored, the joined rows take from `_Pre`."""

    def __init__(self, index: HistoryIndex, pre: _Pre, query: PrefetchedCodes) -> None:
        self.index, self.pre, self.query = index, pre, query
        self.futures, self.rows, self.ids_unique = query.futures, query.rows, False

    def claim(self) -> None:
        self.query.claim()

    def codes(self, column: str) -> np.ndarray | None:
        after = self.query.codes(column)
        if after is None:
            return None
        if column == IDS:  # the rows before the query: their newness comes from `_Pre` (see `_batch`)
            return np.r_[np.zeros(len(self.pre.rows), bool), after]
        name = next(n for n, k in self.index.keys.items() if k.column == column)
        return np.r_[self.index.stored_codes(name, self.pre.rows[column]), after]


def _code_time(code: np.ndarray, seconds: np.ndarray) -> np.ndarray:
    """Each row's `code * SPAN + second` (-1 where the code is missing): sorts by value, then time."""
    return np.where(code >= 0, code.astype(np.int64) * _SPAN + seconds, -1)


def _sorted_events(codes: np.ndarray, seconds: np.ndarray, n_codes: int) -> tuple[np.ndarray, np.ndarray]:
    """Sorted `code * SPAN + second` of the events with a key, and each code's first position (n_codes + 1)."""
    keep = codes >= 0
    events = np.sort(codes[keep].astype(np.int64) * _SPAN + seconds[keep])
    starts = np.searchsorted(events, np.arange(n_codes + 1, dtype=np.int64) * _SPAN)
    return events, starts


@dataclass
class _Key:
    column: str
    values: pd.Index  # code -> stored value
    decl: np.ndarray  # sorted code * SPAN + filed second
    decl_start: np.ndarray  # code -> first position in decl (n_codes + 1 entries)
    insp: np.ndarray  # the same for every outcome, at its known second
    insp_start: np.ndarray
    hits: np.ndarray  # the same, hits only
    hits_start: np.ndarray
    #: whether each stored value has any outcome: most have none, and this small array (a byte per value)
    #: answers that without reading two start arrays at random (computed when indexing, saved with it)
    inspected: np.ndarray | None = None

    def __post_init__(self) -> None:
        if self.inspected is None:
            self.inspected = np.diff(np.asarray(self.insp_start)) > 0


@dataclass
class _Batch:
    """What one query brings: its rows' seconds, which rows are new declarations, and the stored outcomes of
    those new rows (outcome known second, hit, position of the row in the query)."""

    seconds: np.ndarray
    new: np.ndarray
    orphan_rows: np.ndarray
    orphan_s: np.ndarray
    orphan_hit: np.ndarray
    #: indexed outcomes (without a hit) that a delta replaces: rows carrying them and their known seconds
    removed_rows: np.ndarray = field(default_factory=lambda: np.zeros(0, np.int64))
    removed_s: np.ndarray = field(default_factory=lambda: np.zeros(0, np.int64))


@dataclass
class Delta:
    """What a history committed after its index was saved: declarations (the store's columns) and outcomes
    (declaration_id, label, known_at). `HistoryIndex.as_of` answers as if they were indexed too."""

    declarations: pd.DataFrame
    outcomes: pd.DataFrame

    def __len__(self) -> int:
        return len(self.declarations) + len(self.outcomes)


@dataclass
class _Pre:
    """The rows put before a query to answer with a delta: the delta's declarations (new to the index) and
    one carrier row per indexed declaration that has a delta outcome (not new: it only carries them)."""

    rows: pd.DataFrame
    new: np.ndarray
    delta_ids: pd.Index
    orphan_rows: np.ndarray  # positions among `rows` of the rows that carry each delta outcome
    orphan_s: np.ndarray
    orphan_hit: np.ndarray
    removed_rows: np.ndarray  # the indexed outcome (without a hit) each amended declaration replaces
    removed_s: np.ndarray


class StaleIndex(Exception):
    """A delta amends an indexed outcome in a way the index cannot answer around (an earlier hit for a
    declaration indexed with a hit): the history must be indexed again."""

class HistoryIndex:
    """A `HistoryStore` prepared once for many `as_of` calls (same answers, array lookups per query)."""

    def __init__(self, store: HistoryStore, threads: int = 1) -> None:
        """Index `store`; with `threads` > 1 the keys are indexed side by side."""
        decl = store.declarations
        self.ids = pd.Index(decl["declaration_id"].astype(str))
        self.digests = row_digests(decl)  # each stored id's content, to tell a resent row from another one
        self._ids_table: Any = None  # the ids' string table for large batches, built on first use
        self._saved_id_table: np.ndarray | None = None  # that table's slots, when mapped from a saved index
        self._value_tables: dict[str, Any] = {}  # each key's string table of stored values, built on first use
        self._saved_value_tables: dict[str, np.ndarray] = {}  # their slots, when mapped from a saved index
        decl_s = _seconds(decl["filed_at"])
        outcome = store.outcomes.merge(decl, on="declaration_id", how="inner")
        out_s = _seconds(outcome["known_at"])
        hit = outcome["label"].to_numpy(dtype=bool)
        # a hash lookup in the (unique) stored ids: `Series.isin` on Arrow strings loops in Python
        self.orphans = store.outcomes[self.ids.get_indexer(store.outcomes["declaration_id"].astype(str)) < 0]
        self.orphans = self.orphans.reset_index(drop=True)

        def index_key(col: str) -> tuple[_Key, np.ndarray]:
            codes, uniques = pd.factorize(_values(decl[col]), use_na_sentinel=True)
            values = pd.Index(uniques)
            o_codes = values.get_indexer(_values(outcome[col]))
            n = len(values)
            return _Key(col, values, *_sorted_events(codes, decl_s, n), *_sorted_events(o_codes, out_s, n),
                        *_sorted_events(o_codes[hit], out_s[hit], n)), codes  # fmt: skip

        columns = {name: col for name, col in {**PARTY_KEYS, **ROUTE_KEYS}.items() if col in decl}
        with ThreadPoolExecutor(max(1, threads)) as pool:
            built = dict(zip(columns, pool.map(index_key, columns.values()), strict=True))
        self.keys: dict[str, _Key] = {name: key for name, (key, _) in built.items()}
        codes = {name: c for name, (_, c) in built.items()}
        #: each stored row's code per key and its filing second: a delta's late outcome of a stored row is
        #: counted under that row's values (see `as_of`)
        self.row_codes: dict[str, np.ndarray] = {name: c.astype(np.int32) for name, c in codes.items()}
        self.row_filed_s = decl_s
        at = self.ids.get_indexer(outcome["declaration_id"].astype(str))
        self.row_out_s = np.full(len(decl), -1, np.int64)  # each stored row's outcome: known second (-1: none)
        self.row_out_s[at] = out_s
        self.row_out_hit = np.zeros(len(decl), bool)
        self.row_out_hit[at] = hit
        self.pairs: dict[str, np.ndarray] | None = None
        if "address" in codes and "consignor" in codes:
            a, s = codes["address"], codes["consignor"]
            ok = (a >= 0) & (s >= 0)
            pair = a[ok].astype(np.int64) * _PAIR + s[ok]
            keep = first_per_key(pair, decl_s[ok])
            self.pairs = {
                "pair": pair[keep], "first_s": decl_s[ok][keep],  # sorted by pair
                "events": np.sort(a[ok][keep].astype(np.int64) * _SPAN + decl_s[ok][keep]),
            }  # fmt: skip

    # ---- answering ----------------------------------------------------------------------------

    def as_of(self, query: pd.DataFrame, threads: int = 1, prefetched: PrefetchedCodes | None = None,
              delta: Delta | None = None) -> pd.DataFrame:  # fmt: skip
        """Raw as-of counts for every query row (index kept): the same frame `HistoryStore.as_of` returns.
        With `threads` > 1 the keys are answered side by side, while one more thread finds which query
        rows are new to the store (the keys need that only once their values are looked up and sorted).
        `prefetched`: which query ids are stored and the stored codes of its key columns, as far as
        another thread has looked them up already (the daily job's, while it validated the manifest);
        the rest are looked up here. `delta`: what the history holds beyond this index; its declarations
        are answered as rows put before the query (new to the index, so they count as the batch's own
        earlier rows do) and its outcomes as outcomes of those rows (or of carrier rows for indexed
        declarations), so the answers are those of the index and the delta indexed together."""
        if delta is None or not len(delta):
            return self._as_of(query, threads, prefetched)
        pre = self._pre(delta)
        columns = [c for c in pre.rows.columns if c in query.columns or c in ("declaration_id", "filed_at")]
        joined = pd.concat([pre.rows[columns], query[columns]], ignore_index=True)
        answers = self._as_of(joined, threads, None if prefetched is None else _AfterPre(self, pre, prefetched), pre)
        out = answers.iloc[len(pre.rows):]
        out.index = query.index.copy()
        return out

    def _pre(self, delta: Delta) -> _Pre:
        """The rows to put before a query for `delta` (see `as_of`)."""
        decl = delta.declarations.drop_duplicates("declaration_id").reset_index(drop=True)
        decl_ids = pd.Index(decl["declaration_id"].astype(str))
        new = ~self.stored_ids(decl["declaration_id"].astype(str))
        outcomes = delta.outcomes
        out_ids = outcomes["declaration_id"].astype(str)
        in_delta = decl_ids.get_indexer(out_ids)
        in_index = np.where(in_delta < 0, self.stored_positions(out_ids), -1)
        carried = np.unique(in_index[in_index >= 0])
        carriers = pd.DataFrame({"declaration_id": self.ids[carried].to_numpy(),
                                 "filed_at": pd.to_datetime(np.asarray(self.row_filed_s)[carried], unit="s", utc=True)})  # fmt: skip
        for name, key in self.keys.items():
            codes = np.asarray(self.row_codes[name])[carried]
            carriers[key.column] = pd.Series(np.asarray(key.values, dtype=object)[np.maximum(codes, 0)],
                                             dtype="str").where(codes >= 0)  # fmt: skip
        rows = pd.concat([decl, carriers], ignore_index=True)
        row_of = np.where(in_delta >= 0, in_delta, len(decl) + np.searchsorted(carried, in_index))
        known = (in_delta >= 0) | (in_index >= 0)  # an outcome of neither is dropped: `history add` refuses it
        out_s, out_hit = _seconds(outcomes["known_at"]), outcomes["label"].to_numpy(dtype=bool)
        # an indexed declaration with an indexed outcome, whose inspections go on in the delta: its outcome
        # is the one of all its inspections (`labels`): the indexed one is replaced by the combined one
        pos = np.maximum(in_index, 0)
        amended = (in_index >= 0) & (np.asarray(self.row_out_s)[pos] >= 0)
        b_s, b_hit = np.asarray(self.row_out_s)[pos], np.asarray(self.row_out_hit)[pos]
        c_hit = b_hit | out_hit
        first_hit = np.minimum(np.where(b_hit, b_s, np.iinfo(np.int64).max), np.where(out_hit, out_s, np.iinfo(np.int64).max))
        c_s = np.where(c_hit, first_hit, np.maximum(b_s, out_s))
        if (amended & b_hit & (c_s != b_s)).any():
            raise StaleIndex("a delta outcome moves an indexed hit")
        unchanged = amended & b_hit  # an indexed hit stays the outcome: nothing to add
        replaced = amended & ~b_hit
        out_s, out_hit = np.where(replaced, c_s, out_s), np.where(replaced, c_hit, out_hit)
        keep = known & ~unchanged
        return _Pre(rows, np.r_[new, np.zeros(len(carriers), bool)], decl_ids, row_of[keep].astype(np.int64),
                    out_s[keep], out_hit[keep], row_of[replaced].astype(np.int64), b_s[replaced])  # fmt: skip

    def _as_of(self, query: pd.DataFrame, threads: int = 1, prefetched: PrefetchedCodes | None = None,
               pre: _Pre | None = None) -> pd.DataFrame:  # fmt: skip
        """`as_of` of a query (and the rows put before it, `pre`)."""
        if prefetched is not None:
            prefetched.claim()
        seconds = _seconds(query["filed_at"])
        names = [n for n, k in self.keys.items() if k.column in query]
        columns: list[str] = []
        at: dict[str, slice] = {}
        for name in names:
            parts = answer_parts(name)
            at[name] = slice(len(columns), len(columns) + len(parts))
            columns += [f"h_{name}_{part}" for part in parts]
        senders = self.pairs is not None and "address" in names and "consignor" in names
        columns += ["h_address_new_senders_30d"] if senders else []
        # one column-major block that the keys fill in place: the frame takes it without copying
        block = np.empty((len(query), len(columns)), np.float64, order="F")
        # the keys visit the rows in time order: as they come when the batch is sorted (one check)
        in_order = len(seconds) < 2 or bool((seconds[1:] >= seconds[:-1]).all())
        time_order = None if in_order else np.argsort(seconds, kind="stable")

        def count_senders(
            address: tuple[np.ndarray, ...], consignor: tuple[np.ndarray, ...], batch: _Batch
        ) -> None:
            block[:, -1] = self._new_senders(address[0], consignor[0], address[1], batch)

        if threads == 1:
            batch = self._batch(query, seconds, prefetched, pre)
            keys = {n: self._fill_key(n, self._prepare_key(n, query, seconds, prefetched), batch, time_order,
                                      block[:, at[n]]) for n in names}  # fmt: skip
            if senders:
                count_senders(keys["address"], keys["consignor"], batch)
            return pd.DataFrame(block, index=query.index.copy(), columns=columns, copy=False)
        # Queued in this order: every key's lookups (they need not know which rows are new), then
        # the answers, which wait for `pending`: address and consignor first, so that the new-senders count
        # runs beside the other keys' answers rather than after them all.
        lead = ["address", "consignor"] if senders else []
        with ThreadPoolExecutor(1) as side, ThreadPoolExecutor(threads) as pool:
            pending = side.submit(self._batch, query, seconds, prefetched, pre)
            prepared = {
                n: pool.submit(self._prepare_key, n, query, seconds, prefetched)
                for n in dict.fromkeys(lead + names)
            }

            def answer(n: str) -> tuple[np.ndarray, Any]:
                return self._fill_key(n, prepared[n].result(), pending.result(), time_order, block[:, at[n]])

            answered = {n: pool.submit(answer, n) for n in lead}
            jobs = list(answered.values())
            if senders:
                address, consignor = answered["address"], answered["consignor"]
                jobs.append(
                    pool.submit(lambda: count_senders(address.result(), consignor.result(), pending.result()))
                )
            jobs += [pool.submit(answer, n) for n in names if n not in lead]
            for job in jobs:
                job.result()
        return pd.DataFrame(block, index=query.index.copy(), columns=columns, copy=False)

    def _batch(self, query: pd.DataFrame, seconds: np.ndarray, prefetched: PrefetchedCodes | None = None,
               pre: _Pre | None = None) -> _Batch:  # fmt: skip
        ids = query["declaration_id"].astype(str)
        stored = prefetched.codes(IDS) if prefetched is not None else None
        stored = self.stored_ids(ids) if stored is None else stored
        if prefetched is not None and prefetched.ids_unique:
            new = ~stored
        else:
            new = ~stored & ~ids.duplicated().to_numpy()
        rows = np.zeros(0, np.int64)
        o_s, o_hit = np.zeros(0, np.int64), np.zeros(0, bool)
        removed_rows, removed_s = np.zeros(0, np.int64), np.zeros(0, np.int64)
        if pre is not None:  # the rows before the query: their own newness; a query row the delta holds is stored
            n = len(pre.rows)
            new[:n] = pre.new
            new[n:] &= pre.delta_ids.get_indexer(ids[n:]) < 0
            rows, o_s, o_hit = pre.orphan_rows, pre.orphan_s, pre.orphan_hit
            removed_rows, removed_s = pre.removed_rows, pre.removed_s
        if len(self.orphans):
            new_ids = pd.Index(ids[new])
            pos = new_ids.get_indexer(self.orphans["declaration_id"].astype(str))
            mine = pos >= 0
            if mine.any():
                rows = np.r_[rows, np.flatnonzero(new)[pos[mine]]]
                o_s = np.r_[o_s, _seconds(self.orphans["known_at"][mine])]
                o_hit = np.r_[o_hit, self.orphans["label"].to_numpy(dtype=bool)[mine]]
        return _Batch(seconds, new, rows, o_s, o_hit, removed_rows, removed_s)

    def prepare_lookups(self) -> None:
        """Ready the hash table of the stored ids that a large batch is checked against: mapped from a saved
        index (built when it was saved), else built once per index (the daily job does this while the
        manifests are validated)."""
        self._id_table()

    def _id_table(self) -> Any:
        from targeting.history._compiled import StringTable

        if self._ids_table is None:
            saved = self._saved_id_table
            self._ids_table = StringTable(arrow_text(self.ids), None if saved is None else np.asarray(saved))
        return self._ids_table

    def stored_ids(self, ids: pd.Series) -> np.ndarray:
        """Which ids the store holds (see `stored_positions`)."""
        return self.stored_positions(ids) >= 0

    def stored_positions(self, ids: pd.Series) -> np.ndarray:
        """Each id's position among the stored ids, -1 where not stored. A large batch, or any batch when a
        saved index maps the table of stored ids, probes that table (Arrow's `is_in` would rebuild its own
        hash table on every call; a day's add costs the day, not the history); a small query on an index
        built in memory the pandas hash table of the ids, also built on first use and kept."""
        if len(ids) > SET_LOOKUP_ROWS or self._saved_id_table is not None:
            return self._id_table().positions(arrow_text(ids))
        return self.ids.get_indexer(ids)

    def stored_codes(self, name: str, values: pd.Series) -> np.ndarray:
        """Each value's code among the key's stored values, -1 where not stored or missing, the costly part of
        a large batch's codes: probed in the key's table of stored values when a saved index maps one (the
        cost follows the batch, not the history), else one Arrow set lookup (which hashes the stored
        values anew on every call)."""
        query = arrow_text(_values(values))
        if name in self._saved_value_tables:
            return self._value_table(name).positions(query)
        found = pc.index_in(query, value_set=arrow_text(self.keys[name].values))
        return found.fill_null(-1).to_numpy(zero_copy_only=False).astype(np.int64)

    def _value_table(self, name: str) -> Any:
        from targeting.history._compiled import StringTable

        if name not in self._value_tables:
            saved = self._saved_value_tables.get(name)
            self._value_tables[name] = StringTable(arrow_text(self.keys[name].values),
                                                   None if saved is None else np.asarray(saved))  # fmt: skip
        return self._value_tables[name]

    def _codes(self, name: str, values: pd.Series, stored: np.ndarray | None = None) -> np.ndarray:
        """Codes of the query's values: stored values keep their code, values never stored get codes after
        them (the same code for the same value), missing values -1. A large batch is looked up row by row
        in one Arrow set lookup (or takes its `stored_codes`, looked up beforehand), and only the values
        not found are factorized; a small one looks each distinct value up once in the kept pandas hash
        table."""
        key = self.keys[name]
        values = _values(values)
        if len(values) > SET_LOOKUP_ROWS:
            code = stored if stored is not None else self.stored_codes(name, values)
            unseen = (code < 0) & values.notna().to_numpy()
            if unseen.any():
                extra, _ = pd.factorize(values[unseen], use_na_sentinel=True)
                code[unseen] = len(key.values) + extra
            return code
        local, distinct = pd.factorize(values, use_na_sentinel=True)
        found = key.values.get_indexer(pd.Index(distinct)).astype(np.int64)
        unseen = found < 0
        found[unseen] = len(key.values) + np.arange(int(unseen.sum()))
        return np.append(found, -1)[local]  # a missing value (local -1) picks the appended -1

    def _prepare_key(self, name: str, query: pd.DataFrame, seconds: np.ndarray,
                     prefetched: PrefetchedCodes | None = None) -> tuple[np.ndarray, Any]:  # fmt: skip
        """The query's codes for this key (all that needs no knowledge of which rows are new) and, for the
        address, the (code, second) order that the new-senders count searches in."""
        column = self.keys[name].column
        stored = prefetched.codes(column) if prefetched is not None else None
        code = self._codes(name, query[column], stored)
        if name != "address":
            return code, None
        return code, np.argsort(_code_time(code, seconds))

    def _fill_key(self, name: str, prepared: tuple[np.ndarray, Any], batch: _Batch, time_order: np.ndarray | None,
                  out: np.ndarray) -> tuple[np.ndarray, Any]:  # fmt: skip
        """Write the `h_<name>_*` columns into `out`; returns what `_prepare_key` gave."""
        from targeting.history._compiled import answer_key

        key = self.keys[name]
        stored = tuple(getattr(key, part) for part in _KEY_ARRAYS)
        answer_key(prepared[0], batch.seconds, time_order, batch.new, len(key.values), stored, key.inspected,
                   _orphan_counts(prepared[0], batch), name in PARTY_KEYS, out)  # fmt: skip
        return prepared

    def _new_senders(
        self, addr: np.ndarray, sender: np.ndarray, order: np.ndarray, batch: _Batch
    ) -> np.ndarray:
        """Senders first seen at the address within 30 days before each query: the stored pair-first events,
        corrected by the batch's pairs that appear earlier than in the store (or not at all)."""
        from targeting.history import _compiled as kernels

        p = self.pairs
        assert p is not None
        window = WINDOW_DAYS * 86_400
        q_s = batch.seconds
        at = np.maximum(addr, 0).astype(np.int64) * _SPAN + q_s

        at_sorted = at[order]  # `order` sorts the query by (address, time): searches in ascending order

        def in_window(events: np.ndarray) -> np.ndarray:
            found = np.empty(len(at), np.int64)
            found[order] = kernels.lower_bounds(events, at_sorted) - kernels.lower_bounds(events, at_sorted - window)
            return found

        counts = in_window(p["events"]).astype(float)
        new = batch.new
        ok = new & (addr >= 0) & (sender >= 0)
        if ok.any():
            pair = addr[ok].astype(np.int64) * _PAIR + sender[ok]
            first = kernels.first_per_key(pair, q_s[ok])  # history.first_per_key's answer, hashed
            b_pair, b_first, b_addr = pair[first], q_s[ok][first], addr[ok][first]
            known = np.zeros(len(b_pair), bool)
            store_first = np.full(len(b_pair), np.iinfo(np.int64).max)
            if len(p["pair"]):  # the store's first time of each batch pair, where the store has the pair
                pos = np.minimum(kernels.lower_bounds(p["pair"], b_pair), len(p["pair"]) - 1)  # b_pair ascends
                known = p["pair"][pos] == b_pair
                store_first = np.where(known, p["first_s"][pos], store_first)
            moved = b_first < store_first
            added = np.sort(b_addr[moved].astype(np.int64) * _SPAN + b_first[moved])
            removed = np.sort(b_addr[moved & known].astype(np.int64) * _SPAN + store_first[moved & known])
            counts += in_window(added) - in_window(removed)
        return np.where(addr < 0, np.nan, counts)

    # ---- persistence ------------------------------------------------------------------------

    def save(self, folder: str | Path, fingerprint: dict[str, Any]) -> Path:
        """Write the index into `folder` (replaced whole): arrays as .npy, values and ids as Arrow
        IPC, the orphan outcomes as Parquet."""
        import shutil
        import tempfile

        folder = Path(folder)
        folder.parent.mkdir(parents=True, exist_ok=True)
        remove_stale(folder.parent, ".index-")  # left by a build that was killed
        tmp = Path(tempfile.mkdtemp(prefix=f".index-{os.getpid()}-", dir=folder.parent))
        try:
            self._write(tmp, fingerprint)
        except BaseException:  # a full disk, say: no half-written folder is left behind, the old index stays
            shutil.rmtree(tmp, ignore_errors=True)
            raise
        replace_folder(tmp, folder)  # a reader maps the old index whole or the new one whole
        return folder

    def _write(self, tmp: Path, fingerprint: dict[str, Any]) -> None:
        arrays: dict[str, np.ndarray] = {}
        for name, key in self.keys.items():
            for part in (*_KEY_ARRAYS, "inspected"):
                arrays[f"{name}.{part}"] = getattr(key, part)
            write_text_values(key.values.astype(str), tmp / f"values.{name}.arrow")
            np.save(tmp / f"values.{name}.table.npy", self._value_table(name).table, allow_pickle=False)
        for part, values in (self.pairs or {}).items():
            arrays[f"pairs.{part}"] = values
        for label, values in arrays.items():
            np.save(tmp / f"{label}.npy", values, allow_pickle=False)
        write_text_values(self.ids.astype(str), tmp / "ids.arrow")
        np.save(tmp / "ids.table.npy", self._id_table().table, allow_pickle=False)  # built once, here
        np.save(tmp / "ids.digest.npy", self.digests, allow_pickle=False)
        np.save(tmp / "ids.filed_s.npy", np.asarray(self.row_filed_s, np.int64), allow_pickle=False)
        np.save(tmp / "ids.out_s.npy", np.asarray(self.row_out_s, np.int64), allow_pickle=False)
        np.save(tmp / "ids.out_hit.npy", np.asarray(self.row_out_hit, bool), allow_pickle=False)
        for name, codes in self.row_codes.items():
            np.save(tmp / f"rows.{name}.npy", codes, allow_pickle=False)
        self.orphans.to_parquet(tmp / "orphans.parquet")
        meta = {"format": INDEX_FORMAT, "fingerprint": fingerprint,
                "keys": {name: key.column for name, key in self.keys.items()}, "pairs": self.pairs is not None}  # fmt: skip
        (tmp / "index.json").write_text(json.dumps(meta, indent=2))

    @classmethod
    def load(cls, folder: str | Path) -> HistoryIndex:
        folder = Path(folder)
        meta = json.loads((folder / "index.json").read_text())

        def array(label: str) -> np.ndarray:
            # mapped read-only from the page cache, not copied into fresh memory: they are only read, and
            # most of them are never touched by a day's batch
            return np.load(folder / f"{label}.npy", mmap_mode="r", allow_pickle=False)

        keys = {}
        for name, column in meta["keys"].items():
            values = read_text_values(folder / f"values.{name}.arrow")
            keys[name] = _Key(column, values, *[array(f"{name}.{part}") for part in (*_KEY_ARRAYS, "inspected")])
        pairs = {p: array(f"pairs.{p}") for p in ("pair", "first_s", "events")} if meta["pairs"] else None
        ids = read_text_values(folder / "ids.arrow")
        orphans = pd.read_parquet(folder / "orphans.parquet")
        index = cls.__new__(cls)  # the saved arrays, not a store to index again
        index.keys, index.pairs, index.ids, index.orphans, index._ids_table = keys, pairs, ids, orphans, None
        index._saved_id_table = array("ids.table")
        index._value_tables = {}
        index._saved_value_tables = {name: array(f"values.{name}.table") for name in meta["keys"]}
        index.digests = array("ids.digest")
        index.row_filed_s = array("ids.filed_s")
        index.row_out_s, index.row_out_hit = array("ids.out_s"), array("ids.out_hit")
        index.row_codes = {name: array(f"rows.{name}") for name in meta["keys"]}
        return index


def _orphan_counts(code: np.ndarray, batch: _Batch) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Stored outcomes of the query's new rows, known strictly before each row: count, hits, last hit
    second; three empty arrays when the batch has none (the compiled loop then adds nothing). Only the
    rows whose key value has such an outcome are searched (a delta's few outcomes touch few keys)."""
    if len(batch.orphan_rows) == 0 and len(batch.removed_rows) == 0:
        return np.zeros(0, np.int64), np.zeros(0, np.int64), np.zeros(0)
    o_code = code[batch.orphan_rows].astype(np.int64)
    r_code = code[batch.removed_rows].astype(np.int64)
    touched = np.flatnonzero(np.isin(code, np.unique(np.r_[o_code, r_code])) & (code >= 0))
    inspected, n_hits, last = np.zeros(len(code), np.int64), np.zeros(len(code), np.int64), np.full(len(code), np.nan)
    t_code = code[touched].astype(np.int64)
    at_all = t_code * _SPAN + batch.seconds[touched]
    keep = o_code >= 0
    events = np.sort(o_code[keep] * _SPAN + batch.orphan_s[keep])
    hits = np.sort((o_code * _SPAN + batch.orphan_s)[keep & batch.orphan_hit])
    base = t_code * _SPAN

    def count(ev: np.ndarray) -> np.ndarray:
        return np.searchsorted(ev, at_all) - np.searchsorted(ev, base)

    t_hits = count(hits)
    last_i = np.searchsorted(hits, at_all) - 1
    last[touched] = np.where(t_hits > 0, hits[np.maximum(last_i, 0)] - base if len(hits) else 0, np.nan)
    n_hits[touched] = t_hits
    inspected[touched] = count(events)
    if len(batch.removed_rows):  # indexed outcomes replaced by a delta's: no longer counted
        r_keep = r_code >= 0
        inspected[touched] -= count(np.sort(r_code[r_keep] * _SPAN + batch.removed_s[r_keep]))
    valid = code >= 0
    return np.where(valid, inspected, 0), np.where(valid, n_hits, 0), np.where(valid, last, np.nan)
